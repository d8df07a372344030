"""`build_model`: the one way to make a baseline or VIB ResNet, random or from local weights."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models.errors import CheckpointError
from models.resnet import ARCHS, CamClassifier, split_resnet, torchvision_resnet
from models.vib import VIBClassifier

HEADS = ("baseline", "vib")


def build_model(
    arch: str,
    num_classes: int,
    head: str = "baseline",
    *,
    weights: str | Path | None = None,
    **options,
) -> nn.Module:
    """A ResNet classifier with `.features` and `.fc`.

    `weights` is a torchvision-format state dict file (e.g. ImageNet weights downloaded by the user);
    every key must match except the classifier (`fc.*`), which is always new. `options` are the VIB
    head's (samples, eval_mode, eval_samples, kl_reduction, attention_temperature, sigma_offset).
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if head == "baseline" and options:
        raise ValueError(f"the baseline head takes no options, got {sorted(options)}")
    net = torchvision_resnet(arch)
    if weights is not None:
        load_backbone_weights(net, Path(weights), arch)
    features, channels = split_resnet(net)
    fc = nn.Linear(channels, num_classes)
    if head == "vib":
        return VIBClassifier(arch, features, fc, **options)
    return CamClassifier(arch, features, fc)


def load_backbone_weights(net: nn.Module, path: Path, arch: str) -> None:
    """Load a torchvision state dict strictly, except the classifier (its class count differs)."""
    if not path.is_file():
        raise CheckpointError(f"weights file {path} not found; pass the path of a torchvision state dict")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: say which and why, in one line
        raise CheckpointError(f"cannot read weights {path}: {type(error).__name__}: {error}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} is not a torchvision state dict (name -> tensor)")
    backbone = {k: v for k, v in state.items() if not k.startswith("fc.")}
    expected = {k: v.shape for k, v in net.state_dict().items() if not k.startswith("fc.")}
    missing = sorted(expected.keys() - backbone.keys())
    unexpected = sorted(backbone.keys() - expected.keys())
    wrong_shape = sorted(k for k in expected.keys() & backbone.keys() if backbone[k].shape != expected[k])
    if missing or unexpected or wrong_shape:
        details = [f"{len(keys)} {what} (e.g. {keys[0]})" for what, keys in
                   (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong_shape)) if keys]
        raise CheckpointError(f"weights {path} do not fit {arch}: {'; '.join(details)}; "
                              f"use weights saved from torchvision's {arch}")
    net.load_state_dict(backbone, strict=False)
