"""Registry of CAM methods by name (`--method NAME=CKPT:gradcam` picks from it)."""

from __future__ import annotations

from torch import nn

from cams.base import CamMethod
from cams.cam import CAM
from cams.gradcam import GradCAM

METHODS: dict[str, type[CamMethod]] = {cls.name: cls for cls in (CAM, GradCAM)}


def make_method(name: str, model: nn.Module) -> CamMethod:
    """An instance of the method called `name` on `model`."""
    try:
        return METHODS[name](model)
    except KeyError:
        raise ValueError(f"unknown CAM method {name!r}; choose one of {', '.join(METHODS)}") from None
