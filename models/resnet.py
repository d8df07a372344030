"""The baseline classifier: a torchvision ResNet split into `features` and `fc`.

The split is the CAM contract: CAM code multiplies `fc.weight` with the output of `features`,
so the classifier's logits must be exactly `fc(features(x).mean((2, 3)))`. We compute the pooling
with that very expression (not `AdaptiveAvgPool2d`) so the equality is bit-exact, not approximate.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import torch
import torchvision
from torch import Tensor, nn

ARCHS = ("resnet18", "resnet34", "resnet50")
BACKBONE_LAYERS = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


class Prediction(NamedTuple):
    """What evaluation needs from one batch: class probabilities, and the KL per image (VIB only)."""

    probs: Tensor
    kl: Tensor | None


def torchvision_resnet(arch: str) -> torchvision.models.ResNet:
    """A randomly initialised torchvision ResNet (never downloads weights)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    return getattr(torchvision.models, arch)(weights=None)


def split_resnet(net: torchvision.models.ResNet) -> tuple[nn.Sequential, int]:
    """The convolutional trunk as one named Sequential (keys stay readable: features.layer4.0...)."""
    features = nn.Sequential(OrderedDict((name, getattr(net, name)) for name in BACKBONE_LAYERS))
    return features, net.fc.in_features


class CamClassifier(nn.Module):
    """ResNet trunk + global average pooling + linear classifier; the plain (baseline) model."""

    head = "baseline"

    def __init__(self, arch: str, features: nn.Sequential, fc: nn.Linear) -> None:
        super().__init__()
        self.arch = arch
        self.features = features
        self.fc = fc
        self.options: dict = {}

    @property
    def num_classes(self) -> int:
        return self.fc.out_features

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x).mean((2, 3)))

    @torch.no_grad()
    def predict(self, x: Tensor) -> Prediction:
        """Class probabilities for evaluation (the model must be in eval mode)."""
        return Prediction(self.forward(x).float().softmax(-1), None)
