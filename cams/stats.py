"""Percentile bootstrap confidence intervals for per-item metric means and paired differences.

Items are the unit of resampling: each item's metric is one observation (maps of the same item
are paired across methods, so differences are taken per item before resampling). Pooled over
several packages (training seeds), `two_level_bootstrap` resamples packages, then items within each,
because seeds, not only items, vary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 2000


@dataclass(frozen=True)
class Estimate:
    """A mean with its bootstrap CI over `n` items (NaN bounds when n < 2)."""

    mean: float
    low: float
    high: float
    n: int

    def format(self, digits: int = 3) -> str:
        if self.n == 0:
            return "n/a"
        if not np.isfinite(self.low):
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def bootstrap_mean(
    values: np.ndarray | list[float], resamples: int = DEFAULT_RESAMPLES, level: float = 0.95, seed: int = 0
) -> Estimate:
    """Mean of the finite values and a percentile bootstrap CI of that mean."""
    data = np.asarray(values, dtype=np.float64)
    data = data[np.isfinite(data)]
    if data.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    if data.size < 2:
        return Estimate(float(data.mean()), float("nan"), float("nan"), int(data.size))
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Estimate(float(data.mean()), float(low), float(high), int(data.size))


def paired_difference(
    first: np.ndarray | list[float],
    second: np.ndarray | list[float],
    resamples: int = DEFAULT_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Mean of first - second over items where both are finite, with a bootstrap CI."""
    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths, got {a.shape} and {b.shape}")
    return bootstrap_mean(a - b, resamples, level, seed)


def two_level_bootstrap(
    groups: list[np.ndarray], resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> Estimate:
    """Mean over all finite values, CI from resampling groups, then values within each group."""
    groups = [g[np.isfinite(g)] for g in groups]
    groups = [g for g in groups if g.size]
    if not groups:
        return Estimate(math.nan, math.nan, math.nan, 0)
    pooled = np.concatenate(groups)
    if len(groups) < 2:
        return bootstrap_mean(pooled, resamples, seed=seed)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for r in range(resamples):
        picked = [groups[k] for k in rng.integers(0, len(groups), len(groups))]
        means[r] = np.concatenate([g[rng.integers(0, g.size, g.size)] for g in picked]).mean()
    low, high = np.quantile(means, [0.025, 0.975])
    return Estimate(float(pooled.mean()), float(low), float(high), int(pooled.size))
