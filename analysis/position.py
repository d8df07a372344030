"""Position (left/right) bias: do raters favour a side regardless of the method shown there?

Sides are randomised, so a side preference adds noise rather than bias to the method comparison,
but a strong one signals raters who did not look, and an unbalanced design would turn it into bias.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.binomial import binomial_summary


def position_bias(
    frame: pd.DataFrame, *, side_threshold: float = 0.9, min_votes: int = 10, confidence: float = 0.95
) -> dict:
    """Left-choice rate with its binomial test, side as a covariate, and one-sided raters.

    `frame` holds the votes to inspect (comparison trials, repeats included). Returns `left_rate`,
    `p_two_sided` (and the full binomial summary), `by_side` (proposed rate when shown left and
    right, their difference and Fisher's exact test) and `flagged_raters`: raters with at least
    `min_votes` decided votes who chose the same side at least `side_threshold` of the time.
    """
    decided = frame[frame["chose_left"].notna()]
    left = int(decided["chose_left"].sum())
    test = binomial_summary(left, len(decided), confidence=confidence)

    pair = decided[decided["y"].notna()]
    by_side: dict = {}
    for name, mask in (("proposed_left", pair["proposed_left"]), ("proposed_right", ~pair["proposed_left"])):
        y = pair.loc[mask, "y"]
        by_side[name] = {"k": int(y.sum()), "n": int(len(y)), "rate": float(y.mean()) if len(y) else None}
    if by_side["proposed_left"]["n"] and by_side["proposed_right"]["n"]:
        a, b = by_side["proposed_left"], by_side["proposed_right"]
        table = np.array([[a["k"], a["n"] - a["k"]], [b["k"], b["n"] - b["k"]]])
        by_side["difference"] = a["rate"] - b["rate"]
        by_side["fisher_p"] = float(stats.fisher_exact(table).pvalue)

    per_rater = decided.groupby("rater", sort=True)["chose_left"].agg(["sum", "size"])
    per_rater["left_rate"] = per_rater["sum"] / per_rater["size"]
    one_sided = (per_rater["size"] >= min_votes) & (
        (per_rater["left_rate"] >= side_threshold) | (per_rater["left_rate"] <= 1 - side_threshold)
    )
    flagged = [
        {"rater": str(r), "votes": int(row["size"]), "left_rate": float(row["left_rate"])}
        for r, row in per_rater[one_sided].iterrows()
    ]
    return {
        "left_rate": test["rate"],
        "p_two_sided": test["p_two_sided"],
        "binomial": test,
        "by_side": by_side,
        "flagged_raters": flagged,
        "rule": f"raters with >= {min_votes} decided votes choosing one side >= {side_threshold:.0%} of the time",
    }
