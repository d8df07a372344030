"""The shape every CAM method shares: one forward pass, target selection, batch checks.

A method only says how it turns last-layer feature maps into one map per image
(`maps_from_features`); this base class owns everything around it, so every method sees the same
inputs and is compared through the same post-processing path (`cams.render`).

No hooks: the CAM contract of `models` (every model has `.features` and `.fc`, and eval logits are
exactly `fc(features(x).mean((2, 3)))`) lets us call the two halves ourselves. The logits we return
are therefore the model's own eval logits, computed from the same feature maps as the CAM.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

TARGETS = ("truth", "predicted")


@dataclass(frozen=True)
class CamBatch:
    """One batch of explanations: raw maps (B x h x w, before ReLU/normalisation), the logits
    (B x K) of the same forward pass, and the class each map explains (B)."""

    maps: Tensor
    logits: Tensor
    classes: Tensor


def check_cam_model(model: nn.Module) -> None:
    """Fail early, naming what is missing, if `model` does not follow the CAM contract."""
    missing = [name for name in ("features", "fc") if not isinstance(getattr(model, name, None), nn.Module)]
    if missing:
        raise TypeError(
            f"{type(model).__name__} has no {' or '.join(missing)} module; CAM methods need a model "
            "with .features (images -> feature maps) and .fc (nn.Linear), as models.build_model makes"
        )
    if not isinstance(model.fc, nn.Linear):
        raise TypeError(f"model.fc must be an nn.Linear, got {type(model.fc).__name__}")


def check_images(images: Tensor) -> None:
    if images.ndim != 4:
        raise ValueError(f"images must be a B x 3 x H x W batch, got shape {tuple(images.shape)}")


def check_classes(
    classes: Tensor | list[int], batch_size: int, num_classes: int, device: torch.device
) -> Tensor:
    """One class index per image, in range; anything else is an error (never broadcast or ignored)."""
    classes = torch.as_tensor(classes, dtype=torch.long, device=device)
    if classes.ndim != 1 or classes.numel() != batch_size:
        raise ValueError(
            f"need exactly one target class per image: got {tuple(classes.shape)} classes "
            f"for a batch of {batch_size} images"
        )
    if batch_size and (int(classes.min()) < 0 or int(classes.max()) >= num_classes):
        raise ValueError(f"target classes must lie in [0, {num_classes - 1}], got {classes.tolist()}")
    return classes


def select_targets(logits: Tensor, labels: Tensor | list[int] | None, target: str) -> Tensor:
    """The class to explain per image: the ground truth (`truth`, default) or the model's top-1."""
    if target == "predicted":
        return logits.argmax(1)
    if target != "truth":
        raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    if labels is None:
        raise ValueError(
            "target 'truth' needs the labels of the images; pass labels or use target='predicted'"
        )
    return check_classes(labels, logits.shape[0], logits.shape[1], logits.device)


class CamMethod(ABC):
    """Base class: `method(images, labels, target=...)` -> `CamBatch` from a single forward pass.

    Subclasses set `name` and implement `maps_from_features(features, classes)`; they never run the
    backbone themselves, so each image goes through `model.features` exactly once.
    """

    name: ClassVar[str]

    def __init__(self, model: nn.Module) -> None:
        check_cam_model(model)
        self.model = model

    @abstractmethod
    def maps_from_features(self, features: Tensor, classes: Tensor) -> Tensor:
        """Raw maps (B x h x w, fp32) for `classes` (B) from feature maps (B x C x h x w)."""

    @torch.inference_mode()
    def features(self, images: Tensor) -> Tensor:
        """The last conv feature maps (an inference-mode tensor: the backbone never needs a graph)."""
        check_images(images)
        feats = self.model.features(images)
        if feats.ndim != 4:
            raise ValueError(
                f"model.features must return B x C x h x w feature maps, got {tuple(feats.shape)}"
            )
        return feats

    def logits(self, features: Tensor) -> Tensor:
        """Eval logits exactly as the model computes them: fc(GAP(features))."""
        with torch.no_grad():
            return self.model.fc(features.mean((2, 3)))

    def from_features(
        self,
        features: Tensor,
        labels: Tensor | list[int] | None = None,
        *,
        target: str = "truth",
        classes: Tensor | list[int] | None = None,
    ) -> CamBatch:
        """Everything after the backbone, on feature maps it already computed: the eval logits, the class
        each map explains (`classes` if given, else picked by `target`) and the raw maps. Split from the
        backbone so that methods sharing a model share its one pass (`cams.explain.explain`)."""
        logits = self.logits(features)
        if classes is not None:
            chosen = check_classes(classes, features.shape[0], self.model.fc.out_features, features.device)
        else:
            chosen = select_targets(logits, labels, target)
        return CamBatch(self.maps_from_features(features, chosen), logits, chosen)

    def __call__(
        self, images: Tensor, labels: Tensor | list[int] | None = None, *, target: str = "truth"
    ) -> CamBatch:
        check_images(images)
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
        if target == "truth" and labels is not None:  # fail before the expensive forward pass
            check_classes(labels, images.shape[0], self.model.fc.out_features, images.device)
        return self.from_features(self.features(images), labels, target=target)

    def maps(self, images: Tensor, classes: Tensor | list[int]) -> Tensor:
        """Raw maps for explicitly chosen classes (one per image), e.g. a wrong class for a catch trial."""
        check_images(images)
        check_classes(classes, images.shape[0], self.model.fc.out_features, images.device)  # before the pass
        return self.from_features(self.features(images), classes=classes).maps

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={type(self.model).__name__})"
