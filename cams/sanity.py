"""Model-randomisation sanity check (Adebayo et al. 2018, "Sanity Checks for Saliency Maps").

Re-initialise the classifier (`fc`), then the feature blocks from the top down, cumulatively, and
compare each randomised model's maps with the original ones by Spearman rank correlation. A map
that still looks the same after the weights it claims to explain are gone explains the image
(edges, texture), not the model. Randomisation uses each module's own `reset_parameters`
(PyTorch's default initialisation; batch-norm statistics are reset too), on a copy of the model.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn


def randomization_stages(model: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """(stage name, modules to re-initialise at that stage), in order: fc, then the children of
    `model.features` that hold parameters, last block first ("fc", "layer4", ..., "conv1")."""
    stages: list[tuple[str, list[nn.Module]]] = [("fc", [model.fc])]
    for name, child in reversed(list(model.features.named_children())):
        if any(True for _ in child.parameters()):
            stages.append((name, [child]))
    return stages


def _reset(module: nn.Module) -> None:
    for sub in module.modules():
        if hasattr(sub, "reset_running_stats"):
            sub.reset_running_stats()
        if hasattr(sub, "reset_parameters"):
            sub.reset_parameters()


def cascading_randomizations(model: nn.Module, seed: int = 0) -> Iterator[tuple[str, nn.Module]]:
    """Yield ("fc", model with fc randomised), ("layer4", ... also layer4), ... on one deep copy
    (the caller's model is never touched)."""
    torch.manual_seed(seed)
    randomized = copy.deepcopy(model).eval()
    for name, modules in randomization_stages(randomized):
        for module in modules:
            _reset(module)
        yield name, randomized


def spearman(first: np.ndarray, second: np.ndarray) -> float:
    """Spearman rank correlation of two maps (average ranks for ties); NaN if one map is constant."""
    a = np.asarray(first, dtype=np.float64).ravel()
    b = np.asarray(second, dtype=np.float64).ravel()
    if a.size != b.size:
        raise ValueError(f"maps differ in size: {a.size} vs {b.size} pixels")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)
