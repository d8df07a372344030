"""Exact binomial tests and intervals for a preference rate (scipy.stats.binomtest).

This is the analysis the paper could have reported for "11 of 15": it treats every counted unit as
independent, which is right for items (one majority per item) and optimistic for votes, which share
raters and items (see `analysis.crossed`).
"""

from __future__ import annotations

from scipy import stats


def binomial_summary(k: int, n: int, p0: float = 0.5, confidence: float = 0.95) -> dict:
    """k successes of n: rate, exact two-sided and one-sided p-values, Clopper-Pearson and Wilson CIs.

    With n == 0 every statistic is None (there is nothing to test), never an exception.
    Values agree with R's binom.test (same algorithm: two-sided p sums the outcomes no more likely
    than the observed one).
    """
    k, n = int(k), int(n)
    if n == 0:
        return {
            "k": 0,
            "n": 0,
            "rate": None,
            "p_two_sided": None,
            "p_greater": None,
            "p_less": None,
            "ci_exact": None,
            "ci_wilson": None,
        }
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    two = stats.binomtest(k, n, p0, alternative="two-sided")
    exact = two.proportion_ci(confidence_level=confidence, method="exact")
    wilson = two.proportion_ci(confidence_level=confidence, method="wilson")
    return {
        "k": k,
        "n": n,
        "rate": k / n,
        "p_two_sided": float(two.pvalue),
        "p_greater": float(stats.binomtest(k, n, p0, alternative="greater").pvalue),
        "p_less": float(stats.binomtest(k, n, p0, alternative="less").pvalue),
        "ci_exact": [float(exact.low), float(exact.high)],
        "ci_wilson": [float(wilson.low), float(wilson.high)],
    }
