"""Deletion and insertion (Petsiuk et al. 2018): the model's probability of the explained class while
the most salient pixels are removed (replaced by the dataset mean, i.e. 0 after normalisation) or
inserted (into a blurred copy); the metric is the area under that curve over the fraction of pixels.

Split into the perturbed batch and the area under the curve so that a scorer can put every step of
every method of one model into shared forward passes (`cams.scoring`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torchvision.transforms.functional as TF
from torch import Tensor

DEFAULT_STEPS = 20
MODES = ("deletion", "insertion")


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
    if mode not in MODES:
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
