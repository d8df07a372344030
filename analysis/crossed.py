"""Crossed-design intervals: resample raters and items at the same time (two-way bootstrap).

Votes share raters and items, so a pooled binomial interval treats 450 correlated votes as 450
independent ones and is too narrow. The two-way ("pigeonhole", Owen 2007) bootstrap draws raters
with replacement and, independently, items with replacement, and recomputes the pooled rate over
every (drawn rater, drawn item) vote. It needs no model, targets the same population-average rate
as the pooled estimate, and is known to be slightly conservative.

Everything is vectorised: votes are summed per (rater, item) cell into sparse matrices S (chosen
proposed) and N (votes), and replicate b's rate is (w_b' S z_b) / (w_b' N z_b) for multinomial
rater counts w_b and item counts z_b, so cost grows linearly with the number of cells.

Groups that share items but not raters (methods of the distinction task: raters nested in methods,
items crossed with them) use `grouped_replicates`: one item draw per replicate for every group,
raters drawn within strata, so the groups' rates and their differences come from the same draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse


@dataclass(frozen=True)
class CellTable:
    """Per (rater, item) sums of a 0/1 outcome: `successes` and `trials` as sparse R x I matrices."""

    successes: sparse.csr_matrix
    trials: sparse.csr_matrix
    raters: np.ndarray
    items: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.trials.shape


def cell_table(
    rater: pd.Series | np.ndarray, item: pd.Series | np.ndarray, y: pd.Series | np.ndarray
) -> CellTable:
    """Aggregate 0/1 outcomes by (rater, item); NaN outcomes are ignored."""
    y = np.asarray(y, dtype=float)
    keep = ~np.isnan(y)
    # Series (possibly categorical, as `analysis.load` makes them) factorize fast; unused levels drop out.
    r_codes, raters = pd.factorize(
        pd.Series(rater)[keep] if len(keep) else pd.Series([], dtype=object), sort=True
    )
    i_codes, items = pd.factorize(
        pd.Series(item)[keep] if len(keep) else pd.Series([], dtype=object), sort=True
    )
    shape = (len(raters), len(items))
    successes = sparse.csr_matrix((y[keep], (r_codes, i_codes)), shape=shape)  # duplicates are summed
    trials = sparse.csr_matrix((np.ones(keep.sum()), (r_codes, i_codes)), shape=shape)
    return CellTable(successes, trials, np.asarray(raters), np.asarray(items))


def multinomial_weights(n: int, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """replicates x n bootstrap counts: how often each of n units is drawn in each resample."""
    if n == 0:
        return np.zeros((replicates, 0))
    # n draws with replacement per replicate, counted: Multinomial(n, 1/n) without a per-row loop.
    draws = rng.integers(0, n, size=(replicates, n)) + (np.arange(replicates) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=replicates * n).reshape(replicates, n).astype(float)


def weighted_sums(matrix_csc: sparse.csc_matrix, w: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Per replicate b: sum over cells of w[b, r] * M[r, i] * z[b, i] (rater weights w, item weights z).

    The one kernel of every crossed bootstrap: designs that share item draws between groups (e.g.
    methods in `analysis.distinction`) call it once per group with the same `z`.
    """
    return np.einsum("br,rb->b", w, matrix_csc @ z.T)


def bilinear_replicates(
    table: CellTable,
    replicates: int,
    rng: np.random.Generator,
    *,
    resample_raters: bool = True,
    resample_items: bool = True,
    block: int = 256,
) -> np.ndarray:
    """Bootstrap replicates of the pooled rate sum(S) / sum(N) under rater and/or item resampling.

    Replicates whose drawn raters and items share no vote (possible in sparse designs) are NaN.
    Work is done in blocks of `block` replicates to bound memory at R x block floats.
    """
    n_raters, n_items = table.shape
    out = np.empty(replicates)
    s_csc, n_csc = table.successes.tocsc(), table.trials.tocsc()
    for start in range(0, replicates, block):
        b = min(block, replicates - start)
        if resample_raters and resample_items:
            w, z = multinomial_weights(n_raters, b, rng), multinomial_weights(n_items, b, rng)
            num, den = weighted_sums(s_csc, w, z), weighted_sums(n_csc, w, z)
        elif resample_items:  # one-way: only the item margins matter
            z = multinomial_weights(n_items, b, rng)
            num, den = z @ np.asarray(s_csc.sum(0)).ravel(), z @ np.asarray(n_csc.sum(0)).ravel()
        else:
            w = multinomial_weights(n_raters, b, rng)
            num, den = w @ np.asarray(s_csc.sum(1)).ravel(), w @ np.asarray(n_csc.sum(1)).ravel()
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + b] = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    return out


def percentile_interval(replicates: np.ndarray, confidence: float = 0.95) -> list[float] | None:
    """Percentile bootstrap interval, ignoring NaN replicates; None when none is finite."""
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return None
    tail = (1 - confidence) / 2
    low, high = np.quantile(finite, [tail, 1 - tail])
    return [float(low), float(high)]


def bootstrap_rate(
    table: CellTable,
    *,
    replicates: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    resample_raters: bool = True,
    resample_items: bool = True,
) -> dict:
    """Pooled rate with a bootstrap interval: two-way by default, one-way when a flag is off.

    Returns `estimate`, `ci`, `se` (bootstrap standard deviation), `replicates` (how many were
    drawn) and `failed` (replicates with no vote, left out of the interval).
    """
    total = table.trials.sum()
    if total == 0:
        return {"estimate": None, "ci": None, "se": None, "replicates": 0, "failed": 0}
    reps = bilinear_replicates(
        table,
        replicates,
        np.random.default_rng(seed),
        resample_raters=resample_raters,
        resample_items=resample_items,
    )
    finite = reps[np.isfinite(reps)]
    return {
        "estimate": float(table.successes.sum() / total),
        "ci": percentile_interval(reps, confidence),
        "se": float(finite.std(ddof=1)) if finite.size > 1 else None,
        "replicates": int(replicates),
        "failed": int(replicates - finite.size),
    }


def crossed_intervals(
    rater, item, y, *, replicates: int = 2000, seed: int = 0, confidence: float = 0.95
) -> dict:
    """Two-way, item-only and rater-only bootstrap intervals for the pooled preference rate."""
    table = cell_table(rater, item, y)
    return {
        "two_way": bootstrap_rate(table, replicates=replicates, seed=seed, confidence=confidence),
        "items_only": bootstrap_rate(
            table, replicates=replicates, seed=seed + 1, confidence=confidence, resample_raters=False
        ),
        "raters_only": bootstrap_rate(
            table, replicates=replicates, seed=seed + 2, confidence=confidence, resample_items=False
        ),
    }


# --- several groups sharing the item draws (e.g. methods with raters nested in them) ----------------


def aligned_tables(
    frame: pd.DataFrame, group: str, groups: Sequence[str], outcome: str = "y"
) -> tuple[dict[str, CellTable], np.ndarray, np.ndarray]:
    """One (rater x item) cell table per group over ONE rater and item index, so weights line up.

    Returns the tables, the rater ids and the item ids (row and column order of every table).
    """
    rater_codes, raters = pd.factorize(frame["rater"].astype(str), sort=True)
    item_codes, items = pd.factorize(frame["item"].astype(str), sort=True)
    y = frame[outcome].to_numpy(dtype=float)
    keys = frame[group].to_numpy()
    shape = (len(raters), len(items))
    tables = {}
    for name in groups:
        keep = (keys == name) & ~np.isnan(y)
        r, i = rater_codes[keep], item_codes[keep]
        tables[name] = CellTable(
            sparse.csr_matrix((y[keep], (r, i)), shape=shape),
            sparse.csr_matrix((np.ones(keep.sum()), (r, i)), shape=shape),
            np.asarray(raters),
            np.asarray(items),
        )
    return tables, np.asarray(raters), np.asarray(items)


def stratified_weights(strata: np.ndarray, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """replicates x R bootstrap counts: each stratum's raters drawn with replacement within it."""
    w = np.zeros((replicates, len(strata)))
    for stratum in np.unique(strata):
        members = np.flatnonzero(strata == stratum)
        w[:, members] = multinomial_weights(len(members), replicates, rng)
    return w


def grouped_replicates(
    tables: dict[str, CellTable],
    strata: np.ndarray,
    replicates: int,
    rng: np.random.Generator,
    *,
    resample_raters: bool = True,
    block: int = 256,
) -> dict[str, np.ndarray]:
    """Bootstrap replicates of every group's pooled rate under ONE draw of items per replicate.

    Items are shared by all groups (crossed), raters are drawn within `strata`; with
    `resample_raters=False` rater weights stay 1 (the naive "items only" variant). NaN marks a
    replicate in which a group has no answer.
    """
    first = next(iter(tables.values()))
    n_raters, n_items = first.shape
    csc = {name: (t.successes.tocsc(), t.trials.tocsc()) for name, t in tables.items()}
    out = {name: np.empty(replicates) for name in tables}
    for start in range(0, replicates, block):
        b = min(block, replicates - start)
        z = multinomial_weights(n_items, b, rng)
        w = stratified_weights(strata, b, rng) if resample_raters else np.ones((b, n_raters))
        for name, (s, n) in csc.items():
            num, den = weighted_sums(s, w, z), weighted_sums(n, w, z)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[name][start : start + b] = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    return out
