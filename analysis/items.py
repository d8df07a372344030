"""Item-level results (the paper's Table 2): per item, did the majority prefer the proposed map?

Counting items instead of votes makes each unit independent of the others' raters, at the price of
throwing away how strong each majority was. Ties (equal votes both ways) are reported separately
and left out of the binomial test over items, as in a sign test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.binomial import binomial_summary


def per_item_table(comparisons: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """One row per item: label, votes `n`, proposed chosen `k`, `rate`, Wilson interval, `outcome`.

    `outcome` is "won" (majority for the proposed map), "lost" or "tie". Items with only
    no-preference votes have n = 0 and outcome "no votes".
    """
    decided = comparisons[comparisons["y"].notna()]
    grouped = decided.groupby("item", sort=True)["y"].agg(["sum", "size"])
    labels = comparisons.groupby("item", sort=True)["label"].first()
    none = (
        comparisons.assign(none=comparisons["chosen_method"] == "").groupby("item", sort=True)["none"].sum()
    )
    table = pd.DataFrame({"label": labels}).join(grouped).fillna({"sum": 0, "size": 0})
    table = table.join(none.rename("no_preference"))
    k, n = table["sum"].to_numpy(int), table["size"].to_numpy(int)
    table = table.drop(columns=["sum", "size"]).assign(k=k, n=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        table["rate"] = np.where(n > 0, k / np.maximum(n, 1), np.nan)
    low, high = wilson_interval(k, n, confidence)
    table["ci_low"], table["ci_high"] = low, high
    table["outcome"] = np.select([n == 0, 2 * k > n, 2 * k < n], ["no votes", "won", "lost"], default="tie")
    table.index.name = "item"
    return table.reset_index()


def wilson_interval(k: np.ndarray, n: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised Wilson score interval (NaN where n == 0); same formula as statsmodels' "wilson"."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    z = stats.norm.ppf(0.5 + confidence / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        # The interval always contains p and lies in [0, 1]; clipping removes only rounding (~1e-16),
        # which would otherwise put a unanimous item's rate a hair outside its own interval.
        low, high = np.clip(centre - half, 0.0, p), np.clip(centre + half, p, 1.0)
    return np.where(n > 0, low, np.nan), np.where(n > 0, high, np.nan)


def item_level_summary(table: pd.DataFrame, confidence: float = 0.95) -> dict:
    """Items won / total with ties separate, and the exact binomial test over decided items."""
    counts = table["outcome"].value_counts()
    won, lost, ties = int(counts.get("won", 0)), int(counts.get("lost", 0)), int(counts.get("tie", 0))
    test = binomial_summary(won, won + lost, confidence=confidence)
    return {
        "won": won,
        "lost": lost,
        "ties": ties,
        "total": int((table["n"] > 0).sum()),
        "without_votes": int(counts.get("no votes", 0)),
        "rate": test["rate"],
        "p_two_sided": test["p_two_sided"],
        "p_greater": test["p_greater"],
        "ci_exact": test["ci_exact"],
    }
