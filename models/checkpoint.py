"""Checkpoints: one typed state (:class:`CheckpointState`), written atomically, read with weights_only=True.

:class:`CheckpointState` is the one place the file's keys are listed (docs/training.md): ``model, arch,
head, num_classes, class_names, class_labels, options, data`` rebuild a model; ``beta, epoch, epochs,
args, best_acc, metrics, optimizer, scheduler, scaler, rng`` serve ``--resume`` and the reports. On disk
it is a plain dict of tensors and primitives (plus ``format``), so ``torch.load(weights_only=True)``
reads it and no code is ever unpickled.
"""
from __future__ import annotations

import hashlib
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import torch
from torch import nn

from fileio import atomic_path
from models.errors import CheckpointError
from models.factory import build_model

__all__ = ["FORMAT", "BEST_NAME", "LAST_NAME", "CheckpointError", "CheckpointState", "CheckpointInfo",
           "save_checkpoint", "read_checkpoint", "resolve_checkpoint", "load_model", "file_sha256"]

FORMAT = "vibcam.checkpoint/1"
BEST_NAME = "best.pt"
LAST_NAME = "last.pt"


@dataclass(frozen=True)
class CheckpointState:
    """Everything a checkpoint file holds. Fields without a default are required to rebuild the model;
    a file that lacks one is refused with a message naming it, instead of failing later on a KeyError."""

    model: dict[str, torch.Tensor]
    arch: str
    head: str
    num_classes: int
    class_names: list[str]
    class_labels: list[str]
    options: dict
    data: dict
    beta: float | None = None
    epoch: int = 0
    epochs: int = 0
    args: dict = field(default_factory=dict)
    best_acc: float = 0.0
    metrics: list[dict] = field(default_factory=list)
    optimizer: dict | None = None
    scheduler: dict | None = None
    scaler: dict | None = None
    rng: dict | None = None

    @classmethod
    def required_keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING)

    def to_dict(self) -> dict:
        """What ``torch.save`` writes: the fields and the format tag (None-valued optional ones kept)."""
        return {"format": FORMAT, **{f.name: getattr(self, f.name) for f in fields(self)}}

    @classmethod
    def from_dict(cls, raw: object, path: Path) -> CheckpointState:
        """The typed state of a loaded file, or a CheckpointError that names ``path`` and what is wrong."""
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise CheckpointError(f"{path} is not a vibcam checkpoint (no format {FORMAT!r}); "
                                  "for torchvision weights use build_model(..., weights=PATH)")
        missing = [key for key in cls.required_keys() if key not in raw]
        if missing:
            raise CheckpointError(f"{path} is an incomplete vibcam checkpoint: missing {', '.join(missing)}")
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in raw.items() if key in known})

    @property
    def model_options(self) -> dict:
        """The model options; a VIB saved before ``sigma_parametrisation`` existed is "legacy"."""
        options = dict(self.options)
        if self.head == "vib":
            options.setdefault("sigma_parametrisation", "legacy")
        return options


@dataclass
class CheckpointInfo:
    """What a checkpoint says about its model, and where it came from (no tensors: cheap to pass around)."""

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

    @classmethod
    def of(cls, state: CheckpointState, path: Path) -> CheckpointInfo:
        return cls(arch=state.arch, head=state.head, num_classes=int(state.num_classes),
                   class_names=list(state.class_names), class_labels=list(state.class_labels),
                   options=state.model_options, beta=None if state.beta is None else float(state.beta),
                   data=dict(state.data), path=path, sha256=file_sha256(path), epoch=int(state.epoch),
                   epochs=int(state.epochs), args=dict(state.args), metrics=list(state.metrics))


def save_checkpoint(state: CheckpointState, path: str | Path) -> None:
    """Write ``state`` to ``path`` atomically, so a crash never leaves half a file."""
    if not isinstance(state, CheckpointState):
        raise TypeError(f"save_checkpoint takes a CheckpointState, not {type(state).__name__}")
    with atomic_path(path) as temporary:
        torch.save(state.to_dict(), temporary)


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


def read_checkpoint(path: str | Path) -> CheckpointState:
    """The checkpoint at `path` (run folder or file), loaded safely (weights_only=True), or a CheckpointError."""
    path = resolve_checkpoint(path)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt, truncated or pickled with code: one line, no traceback
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path} is not a readable vibcam checkpoint ({reason[:200]})") from None
    return CheckpointState.from_dict(raw, path)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    resolved = resolve_checkpoint(path)
    state = read_checkpoint(resolved)
    info = CheckpointInfo.of(state, resolved)
    check_expected(info, arch, num_classes)
    try:
        model = build_model(info.arch, info.num_classes, info.head, **info.options)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{resolved} describes a model this version cannot build: {error}") from None
    restore_weights(model, state.model, resolved)
    return model.to(device).eval(), info
