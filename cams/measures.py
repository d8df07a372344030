"""Automatic explanation metrics on one heatmap (H x W, values in [0, 1] from `cams.render`).

Definitions (docs/cams.md has the long form):
- pointing game: 1 if the map's maximum lies inside the mask. With ties, the share of maximal
  pixels inside the mask, so a flat map scores the mask's area (chance), not a free hit.
- energy in mask: the share of the map's total mass inside the mask (Wang et al. 2020's
  energy-based pointing game).
- Gini (sparseness, Chalasani et al. 2020): 0 for a flat map, (N - 1) / N for a single hot pixel.
- entropy: Shannon entropy of the map as a distribution, divided by log N (1 = flat, 0 = one pixel).
- deletion / insertion AUC (Petsiuk et al. 2018): the model's probability of the explained class
  while the most salient pixels are removed (replaced by the dataset mean, i.e. 0 after
  normalisation) or inserted (into a blurred copy), area under that curve over the fraction of pixels.

A map with no mass at all (no positive evidence anywhere) is treated as flat: it points nowhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torchvision.transforms.functional as TF
from torch import Tensor

MASK_THRESHOLD = 0.5  # mask pixels are 0..255 (L mode); inside = above half
DEFAULT_STEPS = 20


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


def saliency_order(heatmap: Tensor, seed: int = 0) -> Tensor:
    """Rank of every pixel (0 = most salient); ties broken by a seeded random order, not raster
    order, so a flat map deletes pixels at random instead of top rows first."""
    flat = heatmap.detach().flatten().double().cpu().numpy()
    tie_breaker = torch.randperm(flat.size, generator=torch.Generator().manual_seed(seed)).numpy()
    order = torch.from_numpy(np.lexsort((tie_breaker, -flat)))  # by value, random among exact ties
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(order.numel())
    return ranks.view_as(heatmap)


def blurred(image: Tensor) -> Tensor:
    """The insertion start: a strong Gaussian blur (sigma = 1/40 of the image side, like RISE's
    sigma 5 at 224 px), which keeps colours but removes the shapes that identify a class."""
    side = max(image.shape[-2:])
    sigma = max(side / 40.0, 0.5)
    kernel = 2 * math.ceil(3 * sigma) + 1
    return TF.gaussian_blur(image, [kernel, kernel], [sigma, sigma])


def perturbation_batch(
    image: Tensor, heatmap: Tensor, mode: str, steps: int = DEFAULT_STEPS, seed: int = 0
) -> tuple[Tensor, np.ndarray]:
    """All `steps + 1` perturbed copies of one normalised image (3 x H x W) as one batch, and the
    fractions of pixels changed (0 ... 1). `mode` is "deletion" or "insertion"."""
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"unknown mode {mode!r}; choose deletion or insertion")
    if tuple(heatmap.shape) != tuple(image.shape[-2:]):
        raise ValueError(f"heatmap {tuple(heatmap.shape)} and image {tuple(image.shape[-2:])} differ in size")
    ranks = saliency_order(heatmap, seed).to(image.device)
    n = ranks.numel()
    counts = torch.round(torch.linspace(0, n, steps + 1, dtype=torch.float64)).long().to(image.device)
    chosen = ranks[None] < counts[:, None, None]  # (S+1) x H x W: the top-k pixels at each step
    if mode == "deletion":
        start, end = image, torch.zeros_like(image)
    else:
        start, end = blurred(image[None])[0], image
    batch = torch.where(chosen[:, None], end[None], start[None])
    return batch, (counts.double() / n).cpu().numpy()


def perturbation_auc(probabilities: np.ndarray, fractions: np.ndarray) -> float:
    """Area under the probability curve over the fraction of pixels (trapezoid rule, x in [0, 1])."""
    return float(np.trapezoid(np.asarray(probabilities, dtype=np.float64), fractions))


def deletion_insertion_auc(
    score: Callable[[Tensor], Tensor],
    image: Tensor,
    heatmap: Tensor,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
) -> tuple[float, float]:
    """(deletion AUC, insertion AUC) for one image; `score(batch)` returns the explained class's
    probability per image. Both curves go through `score` as one batch of 2 (steps + 1) images."""
    deletion, fractions = perturbation_batch(image, heatmap, "deletion", steps, seed)
    insertion, _ = perturbation_batch(image, heatmap, "insertion", steps, seed)
    probs = score(torch.cat([deletion, insertion])).detach().float().cpu().numpy()
    return perturbation_auc(probs[: steps + 1], fractions), perturbation_auc(probs[steps + 1 :], fractions)
