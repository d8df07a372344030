"""Tiny checkpoints written through the models' own checkpoint format (no training: random ResNet-18
weights, with the fc layer spread so maps and predictions differ between classes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models import build_model
from models.checkpoint import CheckpointState, save_checkpoint
from models.data import build_datasets, data_options

TINY_DATA = {"data": "synthetic", "image_size": 64, "num_classes": 3, "train_size": 3, "val_size": 24}


def make_checkpoint(
    path: Path,
    head: str = "baseline",
    *,
    arch: str = "resnet18",
    seed: int = 0,
    data: dict | None = None,
    favour: int | None = None,
) -> Path:
    """A vibcam checkpoint of an untrained model for `data`; `favour` biases fc so the model always
    predicts that class (to test filters deterministically)."""
    options = data_options(data or TINY_DATA)
    datasets = build_datasets(options, progress=False)
    torch.manual_seed(seed)
    model = build_model(arch, len(datasets.class_names), head)
    with torch.no_grad():
        model.fc.weight.normal_(0, 0.5)
        if favour is not None:
            model.fc.bias.zero_()
            model.fc.bias[favour] = 1e4
    save_checkpoint(
        CheckpointState(
            model=model.state_dict(), arch=arch, head=head, num_classes=len(datasets.class_names),
            class_names=datasets.class_names, class_labels=datasets.class_labels, options=dict(model.options),
            beta=0.01 if head == "vib" else None, data=datasets.options, epoch=1, epochs=1,
        ),
        path,
    )
    return path


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {
        "vib": make_checkpoint(root / "vib.pt", "vib", seed=1),
        "baseline": make_checkpoint(root / "baseline.pt", "baseline", seed=2),
    }
