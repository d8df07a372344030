"""More than two methods: pairwise win matrix, Bradley-Terry strengths, Holm-corrected pairwise tests.

Bradley-Terry says method a beats b with probability s_a / (s_a + s_b). It is fitted with Hunter's
(2004) MM algorithm, vectorised over bootstrap replicates, which converges whenever the maximum
likelihood estimate exists (every method both wins and loses within a connected comparison graph).
When it does not exist, 0.5 pseudo-wins are added to each direction of every compared pair and a
warning says so. Bootstrap intervals resample raters and items together, as in `analysis.crossed`.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from statsmodels.stats.multitest import multipletests

from analysis.binomial import binomial_summary
from analysis.crossed import multinomial_weights, percentile_interval


def decided_pairs(frame: pd.DataFrame) -> pd.DataFrame:
    """First-showing, non-check votes with a winner: columns rater, item, winner, loser."""
    votes = frame[~frame["attention_check"] & (frame["repeat"] == 0) & frame["decisive"]]
    loser = np.where(
        votes["chosen_method"] == votes["left_method"], votes["right_method"], votes["left_method"]
    )
    return pd.DataFrame(
        {
            "rater": votes["rater"].to_numpy(),
            "item": votes["item"].to_numpy(),
            "winner": votes["chosen_method"].to_numpy(),
            "loser": loser,
        }
    )


def win_matrix(pairs: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """wins.loc[a, b] = votes where a was chosen over b."""
    table = pd.crosstab(pairs["winner"], pairs["loser"])
    return table.reindex(index=methods, columns=methods, fill_value=0).astype(int)


def mle_exists(wins: np.ndarray) -> bool:
    """Bradley-Terry MLE exists iff the directed 'beat' graph is strongly connected (Hunter 2004)."""
    graph = sparse.csr_matrix(wins > 0)
    return connected_components(graph, directed=True, connection="strong")[0] == 1


def bradley_terry(wins: np.ndarray, *, iterations: int = 10000, tol: float = 1e-10) -> np.ndarray:
    """Log-strengths (mean 0) from wins[..., a, b] (a over b); leading axes are fitted independently."""
    wins = np.asarray(wins, float)
    games = wins + np.swapaxes(wins, -1, -2)
    total_wins = wins.sum(-1)
    p = np.ones(wins.shape[:-1])
    for _ in range(iterations):
        denom = (games / (p[..., :, None] + p[..., None, :])).sum(-1)
        new = np.where(denom > 0, total_wins / np.where(denom > 0, denom, 1), p)
        new = np.maximum(new, 1e-300)
        new /= np.exp(np.log(new).mean(-1, keepdims=True))
        done = np.max(np.abs(np.log(new) - np.log(p))) < tol
        p = new
        if done:
            break
    return np.log(p)


def _bootstrap_wins(pairs: pd.DataFrame, methods: list[str], replicates: int, seed: int) -> np.ndarray:
    """replicates x M x M win matrices under two-way (rater x item) resampling."""
    r_codes, raters = pd.factorize(pairs["rater"], sort=True)
    i_codes, items = pd.factorize(pairs["item"], sort=True)
    index = {m: k for k, m in enumerate(methods)}
    win_idx, lose_idx = pairs["winner"].map(index).to_numpy(), pairs["loser"].map(index).to_numpy()
    rng = np.random.default_rng(seed)
    w = multinomial_weights(len(raters), replicates, rng)
    z = multinomial_weights(len(items), replicates, rng)
    out = np.zeros((replicates, len(methods), len(methods)))
    for a, b in itertools.permutations(range(len(methods)), 2):
        mask = (win_idx == a) & (lose_idx == b)
        if not mask.any():
            continue
        cells = sparse.csr_matrix(
            (np.ones(mask.sum()), (r_codes[mask], i_codes[mask])), shape=(len(raters), len(items))
        )
        out[:, a, b] = np.einsum("br,rb->b", w, cells @ z.T)
    return out


def compare_methods(
    frame: pd.DataFrame,
    methods: list[str] | tuple[str, ...],
    *,
    replicates: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """Win matrix, Bradley-Terry strengths with bootstrap CIs, and Holm-corrected pairwise tests.

    Pairwise tests are exact binomial tests of "a beats b" among votes comparing a and b (vote level,
    so they share the optimism of the pooled test); the bootstrap interval next to each rate
    accounts for the crossed design.
    """
    methods = list(methods)
    pairs = decided_pairs(frame)
    pairs = pairs[pairs["winner"].isin(methods) & pairs["loser"].isin(methods)]
    wins = win_matrix(pairs, methods)
    w = wins.to_numpy(float)
    warnings: list[str] = []
    prior = 0.0
    if not mle_exists(w):
        prior = 0.5
        warnings.append(
            "Bradley-Terry: some method never wins or never loses (or the comparisons are not "
            "connected), so the maximum likelihood estimate does not exist; added 0.5 pseudo-wins "
            "each way to every compared pair"
        )
    compared = (w + w.T) > 0
    log_strength = bradley_terry(w + prior * compared)
    boot = (
        _bootstrap_wins(pairs, methods, replicates, seed)
        if len(pairs)
        else np.zeros((0, len(methods), len(methods)))
    )
    boot_strength = bradley_terry(boot + prior * compared) if len(boot) else boot[:, :, 0]
    strengths = [
        {
            "method": m,
            "log_strength": float(log_strength[k]),
            "ci": percentile_interval(boot_strength[:, k], confidence) if len(boot) else None,
        }
        for k, m in enumerate(methods)
    ]

    tests = []
    for a, b in itertools.combinations(range(len(methods)), 2):
        n = int(w[a, b] + w[b, a])
        if n == 0:
            continue
        summary = binomial_summary(int(w[a, b]), n, confidence=confidence)
        with np.errstate(invalid="ignore", divide="ignore"):
            boot_rate = boot[:, a, b] / (boot[:, a, b] + boot[:, b, a])
        tests.append(
            {
                "a": methods[a],
                "b": methods[b],
                "a_wins": int(w[a, b]),
                "n": n,
                "a_rate": summary["rate"],
                "p_two_sided": summary["p_two_sided"],
                "ci_two_way": percentile_interval(boot_rate, confidence),
            }
        )
    if tests:
        holm = multipletests([t["p_two_sided"] for t in tests], method="holm")[1]
        for t, p in zip(tests, holm):
            t["p_holm"] = float(p)
    return {
        "methods": methods,
        "wins": wins.to_dict(orient="index"),
        "bradley_terry": strengths,
        "pairwise": tests,
        "warnings": warnings,
    }
