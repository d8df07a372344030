"""The one way to explain a batch with several methods: one backbone pass per model, then every method
on those same feature maps.

A study compares methods that often share a model (CAM and Grad-CAM of one VIB checkpoint), and the
backbone is nearly all of the cost; running it once per model, not once per method, is what makes
generation, the sanity check and the benchmark fast, and it guarantees that every method of a model
explains the very same forward pass (same logits, same predicted class). Study generation, the metrics'
sanity check and bench/cam_throughput.py all call `explain`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from cams.base import CamBatch, CamMethod, check_images


@torch.no_grad()
def explain(
    methods: Mapping[str, CamMethod],
    images: Tensor,
    labels: Tensor | list[int] | None = None,
    *,
    target: str = "truth",
    classes: Mapping[str, Tensor | list[int]] | None = None,
) -> dict[str, CamBatch]:
    """Each named method's `CamBatch` (raw maps, logits, explained classes) for `images`.

    The models are those of the methods (`method.model`): each distinct one runs its backbone once.
    A method's classes are `classes[name]` when given (e.g. a wrong class for a catch trial, or the
    class recorded in a package), else chosen by `target` ("truth" needs `labels`, or "predicted").
    """
    check_images(images)
    by_model: dict[int, list[str]] = {}
    for name, method in methods.items():
        by_model.setdefault(id(method.model), []).append(name)
    explained: dict[str, CamBatch] = {}
    for names in by_model.values():
        features = methods[names[0]].features(images)
        for name in names:
            chosen = None if classes is None else classes.get(name)
            explained[name] = methods[name].from_features(features, labels, target=target, classes=chosen)
    return {name: explained[name] for name in methods}
