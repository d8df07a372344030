"""Metrics of one heatmap on its own or against the item's mask (H x W, values in [0, 1] from
`cams.render`). Plain numpy: nothing here needs the model.

- pointing game: 1 if the map's maximum lies inside the mask. With ties, the share of maximal
  pixels inside the mask, so a flat map scores the mask's area (chance), not a free hit.
- energy in mask: the share of the map's total mass inside the mask (Wang et al. 2020's
  energy-based pointing game).
- Gini (sparseness, Chalasani et al. 2020): 0 for a flat map, (N - 1) / N for a single hot pixel.
- entropy: Shannon entropy of the map as a distribution, divided by log N (1 = flat, 0 = one pixel).

A map with no mass at all (no positive evidence anywhere) is treated as flat: it points nowhere.
"""

from __future__ import annotations

import math

import numpy as np

MASK_THRESHOLD = 0.5  # mask pixels are 0..255 (L mode); inside = above half


def mask_to_bool(mask: np.ndarray) -> np.ndarray:
    """An L-mode mask (uint8 0..255, or floats in [0, 1]) as a boolean array."""
    mask = np.asarray(mask)
    scale = 255.0 if mask.dtype == np.uint8 else 1.0
    return (mask.astype(np.float64) / scale) > MASK_THRESHOLD


def as_distribution(heatmap: np.ndarray) -> np.ndarray:
    """The map as non-negative weights summing to one (uniform when the map has no mass)."""
    values = np.clip(np.asarray(heatmap, dtype=np.float64).ravel(), 0.0, None)
    total = values.sum()
    if not np.isfinite(total) or total <= 0:
        return np.full(values.size, 1.0 / values.size)
    return values / total


def _check_same_shape(heatmap: np.ndarray, mask: np.ndarray) -> None:
    if np.shape(heatmap) != np.shape(mask):
        raise ValueError(f"heatmap {np.shape(heatmap)} and mask {np.shape(mask)} differ in size")


def pointing_game(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Share of the map's maximal pixels that lie inside the mask (1.0 = a hit)."""
    _check_same_shape(heatmap, mask)
    values = np.asarray(heatmap, dtype=np.float64)
    peak = values == values.max()
    return float(mask_to_bool(mask)[peak].mean())


def energy_in_mask(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Share of the map's mass inside the mask."""
    _check_same_shape(heatmap, mask)
    return float(as_distribution(heatmap)[mask_to_bool(mask).ravel()].sum())


def gini(heatmap: np.ndarray) -> float:
    """Gini index of the map's values: 0 = evenly spread, (N - 1) / N = one pixel holds everything."""
    values = np.sort(as_distribution(heatmap))
    n = values.size
    ranks = np.arange(1, n + 1)
    return float(((2 * ranks - n - 1) * values).sum() / n)


def entropy(heatmap: np.ndarray) -> float:
    """Shannon entropy of the map as a distribution, normalised by log N to [0, 1]."""
    p = as_distribution(heatmap)
    if p.size < 2:
        return 0.0
    nonzero = p[p > 0]
    return float(-(nonzero * np.log(nonzero)).sum() / math.log(p.size))
