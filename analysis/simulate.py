"""Crossed-design preference maths (contract D): numpy only.

Every rater votes on (a subset of) the same items, so votes share raters and items. The chance that
rater r prefers the proposed map on item i is logistic(logit(rate) + u_r + v_i) with
u_r ~ N(0, rater_sd^2) and v_i ~ N(0, item_sd^2). The power analysis (`analysis.power`) and the demo's
simulated raters (`scripts/simulate_raters.py`) draw their votes from these probabilities; the
synthetic vote tables that tests and benchmarks use are built on them in `testing.simulated_votes`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def logistic(x: np.ndarray | float) -> np.ndarray:
    """Numerically stable logistic function."""
    x = np.asarray(x, dtype=float)
    return np.exp(-np.logaddexp(0.0, -x))


def logit(p: float | np.ndarray) -> np.ndarray:
    """log(p / (1 - p)), refusing 0 and 1 (which have no finite logit)."""
    p = np.asarray(p, dtype=float)
    if np.any((p <= 0) | (p >= 1)):
        raise ValueError(f"rate must lie strictly between 0 and 1, got {p}")
    return np.log(p) - np.log1p(-p)


def crossed_preference_probabilities(
    n_raters: int, n_items: int, rate: float, rater_sd: float, item_sd: float, rng: np.random.Generator
) -> np.ndarray:
    """R x I probabilities that rater r prefers the proposed map on item i.

    logistic(logit(rate) + u_r + v_i) with independent normal rater effects u (sd `rater_sd`) and
    item effects v (sd `item_sd`). `rate` is therefore the preference of a typical rater on a typical
    item; the population-average rate is `marginal_rate(rate, rater_sd, item_sd)` (closer to 0.5).
    """
    if n_raters < 1 or n_items < 1:
        raise ValueError(f"need at least one rater and one item, got {n_raters} raters x {n_items} items")
    if rater_sd < 0 or item_sd < 0:
        raise ValueError(f"standard deviations must be >= 0, got rater_sd={rater_sd}, item_sd={item_sd}")
    rater_effect = rng.normal(0.0, rater_sd, size=n_raters) if rater_sd > 0 else np.zeros(n_raters)
    item_effect = rng.normal(0.0, item_sd, size=n_items) if item_sd > 0 else np.zeros(n_items)
    return logistic(logit(rate) + rater_effect[:, None] + item_effect[None, :])


#: Default slope of the metric-driven raters: logit units per unit of energy-in-mask difference.
#: A map with 0.1 more of its energy on the object is preferred with p = logistic(1.5) = 0.82.
DEFAULT_SENSITIVITY = 15.0


def metric_driven_probabilities(
    n_raters: int,
    differences: Sequence[float] | np.ndarray,
    sensitivity: float,
    rater_sd: float,
    item_sd: float,
    rng: np.random.Generator,
    rate: float = 0.5,
) -> np.ndarray:
    """R x I probabilities that rater r prefers the proposed map on item i, driven by what is on screen.

    logistic(logit(rate) + sensitivity * d_i + u_r + v_i): d_i is the per-item difference of an
    automatic metric between the two maps (energy in mask, proposed - baseline), u_r ~ N(0, rater_sd^2)
    is a rater's bias towards the proposed method's look, v_i ~ N(0, item_sd^2) what the metric misses
    about item i. With identical maps (d = 0) and rate 0.5 the raters have no preference on average.
    """
    d = np.asarray(differences, dtype=float)
    if d.ndim != 1 or d.size < 1 or not np.all(np.isfinite(d)):
        raise ValueError(f"differences must be a non-empty 1-D array of finite numbers, got shape {d.shape}")
    if sensitivity < 0:
        raise ValueError(f"sensitivity must be >= 0, got {sensitivity}")
    if n_raters < 1:
        raise ValueError(f"need at least one rater, got {n_raters}")
    if rater_sd < 0 or item_sd < 0:
        raise ValueError(f"standard deviations must be >= 0, got rater_sd={rater_sd}, item_sd={item_sd}")
    rater_effect = rng.normal(0.0, rater_sd, size=n_raters) if rater_sd > 0 else np.zeros(n_raters)
    item_effect = rng.normal(0.0, item_sd, size=d.size) if item_sd > 0 else np.zeros(d.size)
    return logistic(logit(rate) + sensitivity * d[None, :] + rater_effect[:, None] + item_effect[None, :])


def metric_differences(
    rows: Sequence[Mapping[str, str]], proposed: str, baseline: str, metric: str = "energy_in_mask"
) -> dict[str, float]:
    """item -> metric(proposed) - metric(baseline), from rows of a cams.metrics CSV (item, method, ...).

    Items that lack either method or have an empty cell are left out."""
    values: dict[tuple[str, str], float] = {}
    for row in rows:
        if metric not in row:
            raise ValueError(f"the metrics file has no column {metric!r}; make it with python -m cams.metrics")
        if row[metric] not in ("", None):
            values[(row["item"], row["method"])] = float(row[metric])
    items = {item for item, _ in values}
    return {item: values[(item, proposed)] - values[(item, baseline)] for item in sorted(items)
            if (item, proposed) in values and (item, baseline) in values}


def marginal_rate(rate: float, rater_sd: float, item_sd: float, nodes: int = 64) -> float:
    """Population-average preference E[logistic(logit(rate) + u + v)] (Gauss-Hermite quadrature).

    This is the estimand of the pooled rate and of the two-way bootstrap, so coverage is checked
    against it. u + v is normal with variance rater_sd^2 + item_sd^2.
    """
    sd = float(np.hypot(rater_sd, item_sd))
    if sd == 0:
        return float(logistic(logit(rate)))
    x, w = np.polynomial.hermite_e.hermegauss(nodes)  # weight exp(-x^2/2)
    return float(np.sum(w * logistic(logit(rate) + sd * x)) / np.sqrt(2 * np.pi))
