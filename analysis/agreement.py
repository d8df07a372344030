"""Agreement between raters (observed agreement, Fleiss' kappa, Krippendorff's alpha) and test-retest.

Answers are coded as the *method* chosen (or "none"), never as the side, so raters who agree on a
map shown on different sides count as agreeing. Everything is computed from the items x categories
count table, which makes the item bootstrap a few matrix products: replicate b uses item counts
z_b and weighted sums of per-item quantities.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.binomial import binomial_summary
from analysis.crossed import multinomial_weights, percentile_interval


def category_counts(comparisons: pd.DataFrame) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Items x categories table of how many raters chose each method ("none" = no preference)."""
    answer = comparisons["chosen_method"].where(comparisons["chosen_method"] != "", "none")
    item_codes, items = pd.factorize(comparisons["item"], sort=True)
    cat_codes, categories = pd.factorize(answer, sort=True)
    counts = np.bincount(
        item_codes * len(categories) + cat_codes, minlength=len(items) * len(categories)
    ).reshape(len(items), len(categories))
    return np.asarray(items), [str(c) for c in categories], counts.astype(float)


def _pairable(counts: np.ndarray) -> np.ndarray:
    return counts[counts.sum(1) >= 2]


def _statistics(counts: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Observed agreement, Fleiss' kappa and Krippendorff's alpha for each row of item `weights`."""
    n_u = counts.sum(1)
    agree_pairs = (counts * (counts - 1)).sum(1)
    p_item = agree_pairs / (n_u * (n_u - 1))  # share of agreeing rater pairs per item
    total_w = weights.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = weights @ p_item / total_w
        p_cat = (weights @ counts) / (weights @ n_u)[:, None]
        expected = (p_cat**2).sum(1)
        kappa = np.where(expected < 1 - 1e-12, (observed - expected) / (1 - expected), np.nan)
        n = weights @ n_u
        o_diag = weights @ (agree_pairs / (n_u - 1))  # sum_c o_cc
        n_c = weights @ counts
        denominator = n**2 - (n_c**2).sum(1)
        alpha = np.where(denominator > 1e-12, 1 - (n - 1) * (n - o_diag) / denominator, np.nan)
    return {"observed": observed, "fleiss_kappa": kappa, "krippendorff_alpha": alpha}


def fleiss_kappa(counts: np.ndarray) -> float | None:
    """Fleiss' kappa; with unequal raters per item, per-item agreement is averaged over items and
    chance agreement uses the pooled category shares (equals statsmodels' version for equal counts)."""
    table = _pairable(np.asarray(counts, float))
    if not len(table):
        return None
    value = _statistics(table, np.ones((1, len(table))))["fleiss_kappa"][0]
    return None if np.isnan(value) else float(value)


def krippendorff_alpha_nominal(counts: np.ndarray) -> float | None:
    """Krippendorff's alpha for nominal data from an items x categories count table (missing-data safe)."""
    table = _pairable(np.asarray(counts, float))
    if not len(table):
        return None
    value = _statistics(table, np.ones((1, len(table))))["krippendorff_alpha"][0]
    return None if np.isnan(value) else float(value)


def agreement_summary(
    comparisons: pd.DataFrame, *, replicates: int = 1000, seed: int = 0, confidence: float = 0.95
) -> dict:
    """Observed agreement, Fleiss' kappa, Krippendorff's alpha (first showings), item-bootstrap CIs.

    Values are None, with a `note`, when undefined: fewer than two raters per item, or every vote
    for the same method (chance agreement is then 1 and kappa is 0/0).
    """
    items, categories, counts = category_counts(comparisons)
    table = _pairable(counts)
    out: dict = {
        "observed": None,
        "fleiss_kappa": None,
        "krippendorff_alpha": None,
        "ci": {},
        "items_used": int(len(table)),
        "categories": categories,
    }
    if not len(table):
        out["note"] = "no item was rated by two or more raters: agreement is undefined"
        return out
    point = _statistics(table, np.ones((1, len(table))))
    for name, value in point.items():
        out[name] = None if np.isnan(value[0]) else float(value[0])
    if out["fleiss_kappa"] is None:
        out["note"] = (
            "every vote chose the same answer: chance agreement is 1, so kappa and alpha are undefined"
        )
    rng = np.random.default_rng(seed)
    weights = multinomial_weights(len(table), replicates, rng)
    boot = _statistics(table, weights)
    out["ci"] = {name: percentile_interval(values, confidence) for name, values in boot.items()}
    return out


def retest_consistency(frame: pd.DataFrame, confidence: float = 0.95) -> dict:
    """Consistency of raters who saw an item twice (repeat 1 shows the sides swapped).

    `same_method` is the share of repeat pairs where the rater chose the same method again; if raters
    answered by side instead, `same_side` would be high and `same_method` low.
    """
    trials = frame[frame["pair"] & ~frame["attention_check"]]
    first = trials[trials["repeat"] == 0].drop_duplicates(["rater", "item"]).set_index(["rater", "item"])
    second = trials[trials["repeat"] >= 1].drop_duplicates(["rater", "item"]).set_index(["rater", "item"])
    columns = [c for c in ("chosen_method", "chosen_side") if c in trials]
    both = first[columns].merge(second[columns], left_index=True, right_index=True, suffixes=("_1", "_2"))
    n = len(both)
    if n == 0:
        return {"pairs": 0, "same_method": None, "note": "no item was shown twice to the same rater"}
    same = int((both["chosen_method_1"] == both["chosen_method_2"]).sum())
    summary = binomial_summary(same, n, confidence=confidence)
    out = {"pairs": n, "same_method": same / n, "ci_wilson": summary["ci_wilson"]}
    if "chosen_side_1" in both:
        out["same_side"] = float((both["chosen_side_1"] == both["chosen_side_2"]).mean())
    return out
