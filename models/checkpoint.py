"""Checkpoints: one dict of tensors and primitives, written atomically, read with weights_only=True.

Keys (see docs/training.md): format, model, optimizer, scheduler, epoch, epochs, args, arch, head,
num_classes, class_names, class_labels, options, beta, data, rng, best_acc, metrics.
Only `format, model, arch, head, num_classes, class_names, class_labels, options, data` are needed
to rebuild a model; the rest serves `--resume`.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

FORMAT = "vibcam.checkpoint/1"
BEST_NAME = "best.pt"
LAST_NAME = "last.pt"
REQUIRED_KEYS = ("model", "arch", "head", "num_classes", "class_names", "class_labels", "options", "data")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message is one line that names the file and the fix."""


@dataclass
class CheckpointInfo:
    """What a checkpoint says about its model, and where it came from."""

    arch: str
    head: str
    num_classes: int
    class_names: list[str]
    class_labels: list[str]
    options: dict
    beta: float | None
    data: dict
    path: Path
    sha256: str
    epoch: int = 0
    epochs: int = 0
    args: dict = field(default_factory=dict)
    metrics: list[dict] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when the run reached its final epoch."""
        return self.epochs > 0 and self.epoch >= self.epochs


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Write `state` to `path` through a temporary file and a rename, so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        torch.save(state, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder means its best.pt (else last.pt); a file is used as it is."""
    path = Path(path)
    if path.is_dir():
        for name in (BEST_NAME, LAST_NAME):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"run folder {path} has no {BEST_NAME} or {LAST_NAME}; train it first "
                              f"(python -m models.train --out {path})")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; pass a run folder or a .pt file")
    return path


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict at `path`, loaded safely (weights_only=True), or a CheckpointError."""
    path = resolve_checkpoint(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt, truncated or pickled with code: one line, no traceback
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path} is not a readable vibcam checkpoint ({reason[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a vibcam checkpoint (no format {FORMAT!r}); "
                              "for torchvision weights use build_model(..., weights=PATH)")
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path} is an incomplete vibcam checkpoint: missing {', '.join(missing)}")
    return state


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_options(state: dict) -> dict:
    """The checkpoint's model options; a VIB saved before `sigma_parametrisation` existed is "legacy"."""
    options = dict(state["options"])
    if state["head"] == "vib":
        options.setdefault("sigma_parametrisation", "legacy")
    return options


def checkpoint_info(state: dict, path: Path) -> CheckpointInfo:
    beta = state.get("beta")
    return CheckpointInfo(
        arch=state["arch"], head=state["head"], num_classes=int(state["num_classes"]),
        class_names=list(state["class_names"]), class_labels=list(state["class_labels"]),
        options=model_options(state), beta=None if beta is None else float(beta), data=dict(state["data"]),
        path=path, sha256=file_sha256(path), epoch=int(state.get("epoch", 0)),
        epochs=int(state.get("epochs", 0)), args=dict(state.get("args", {})),
        metrics=list(state.get("metrics", [])),
    )


def check_expected(info: CheckpointInfo, arch: str | None, num_classes: int | None) -> None:
    if arch is not None and info.arch != arch:
        raise CheckpointError(f"{info.path} holds a {info.arch} model, expected {arch}; "
                              f"pass --arch {info.arch} or another checkpoint")
    if num_classes is not None and info.num_classes != num_classes:
        raise CheckpointError(f"{info.path} was trained for {info.num_classes} classes, expected "
                              f"{num_classes}; use a checkpoint trained on the same classes")


def restore_weights(model: nn.Module, state_dict: dict, path: Path) -> None:
    """load_state_dict, with a mismatch reported as one CheckpointError line instead of a long trace."""
    expected = model.state_dict()
    missing = sorted(expected.keys() - state_dict.keys())
    unexpected = sorted(state_dict.keys() - expected.keys())
    wrong = sorted(k for k in expected.keys() & state_dict.keys() if expected[k].shape != state_dict[k].shape)
    if missing or unexpected or wrong:
        sample = (missing or unexpected or wrong)[0]
        raise CheckpointError(f"weights in {path} do not fit the model it describes ({len(missing)} missing, "
                              f"{len(unexpected)} unexpected, {len(wrong)} mis-shaped keys, e.g. {sample})")
    model.load_state_dict(state_dict)


def load_model(
    path: str | Path,
    device: str | torch.device = "cpu",
    *,
    arch: str | None = None,
    num_classes: int | None = None,
) -> tuple[nn.Module, CheckpointInfo]:
    """The model stored at `path` (run folder or .pt) in eval mode, and what the checkpoint says.

    `arch` / `num_classes`, when given, are checked against the checkpoint (CheckpointError if not)."""
    from models.factory import build_model  # here, not at the top: factory imports CheckpointError

    resolved = resolve_checkpoint(path)
    state = read_checkpoint(resolved)
    info = checkpoint_info(state, resolved)
    check_expected(info, arch, num_classes)
    try:
        model = build_model(info.arch, info.num_classes, info.head, **info.options)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{resolved} describes a model this version cannot build: {error}") from None
    restore_weights(model, state["model"], resolved)
    return model.to(device).eval(), info
