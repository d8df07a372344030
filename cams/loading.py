"""Which checkpoints a study compares, loaded once each, and checked against each other and the data.

A method is `[NAME=]RUN_OR_CKPT[:cam|:gradcam]`: a name for the manifest, a run folder or .pt file,
and the CAM method (default `cam`). Two methods may share a checkpoint (CAM and Grad-CAM of the
same VIB model); the model is then loaded once (and run once per batch: `cams.explain`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cams.base import CamMethod
from cams.methods import METHODS, make_method
from models.checkpoint import CheckpointError, CheckpointInfo, load_model, resolve_checkpoint

NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


class StudyInputError(ValueError):
    """Bad input for a CAM command; the message is one line that names the input and the fix."""


@dataclass(frozen=True)
class MethodSpec:
    """One method as given on the command line."""

    name: str
    path: Path
    cam: str = "cam"
    named: bool = True  # False when the name is the command's default, not the user's


@dataclass
class LoadedMethod:
    """A method ready to run: its spec, the model (shared between specs of one checkpoint), the
    CAM method on that model, and what the checkpoint says about itself."""

    spec: MethodSpec
    model: nn.Module
    method: CamMethod
    info: CheckpointInfo

    @property
    def name(self) -> str:
        return self.spec.name


def parse_method_spec(text: str, default_name: str | None = None) -> MethodSpec:
    """`[NAME=]PATH[:cam|:gradcam]` -> MethodSpec; without NAME, `default_name` (or an error)."""
    name, sep, rest = text.partition("=")
    named = bool(sep) and "/" not in name and bool(NAME_PATTERN.fullmatch(name))
    if not named:
        name, rest = (default_name or ""), text
    cam = "cam"
    head, colon, tail = rest.rpartition(":")
    if colon and tail in METHODS:
        rest, cam = head, tail
    if not name:
        raise StudyInputError(f"--method {text!r} needs a name: write NAME=RUN_OR_CKPT[:gradcam]")
    if not NAME_PATTERN.fullmatch(name):
        raise StudyInputError(f"method name {name!r} must match [A-Za-z0-9_-]{{1,64}}")
    if not rest:
        raise StudyInputError(f"method {name!r} has no checkpoint path; write NAME=RUN_OR_CKPT[:gradcam]")
    return MethodSpec(name, Path(rest), cam, named)


def load_methods(specs: list[MethodSpec], device: str | torch.device = "cpu") -> list[LoadedMethod]:
    """Load every checkpoint once (in eval mode) and build each spec's CAM method on it."""
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise StudyInputError(
            f"method name(s) {', '.join(duplicates)} used twice; give each method its own name"
        )
    cache: dict[Path, tuple[nn.Module, CheckpointInfo]] = {}
    loaded = []
    for spec in specs:
        try:
            resolved = resolve_checkpoint(spec.path).resolve()
            if resolved not in cache:
                cache[resolved] = load_model(resolved, device)
        except CheckpointError as error:
            raise StudyInputError(f"method {spec.name!r}: {error}") from None
        model, info = cache[resolved]
        loaded.append(LoadedMethod(spec, model, make_method(spec.cam, model), info))
    return loaded


def check_comparable(
    loaded: list[LoadedMethod], class_names: list[str] | None = None, data_description: str = "the data"
) -> None:
    """Every checkpoint must have the same architecture (a fair comparison of heads) and know the
    same classes, in the same order, as each other and the data: otherwise "class 3" means
    different things and the maps are not comparable."""
    first = loaded[0]
    for other in loaded[1:]:
        if other.info.arch != first.info.arch:
            raise StudyInputError(
                f"{other.name} ({other.info.path}) is a {other.info.arch} but {first.name} "
                f"({first.info.path}) is a {first.info.arch}; compare checkpoints of one architecture"
            )
        if other.info.class_names != first.info.class_names:
            raise StudyInputError(
                _class_mismatch(
                    f"{other.name} ({other.info.path})",
                    other.info.class_names,
                    f"{first.name} ({first.info.path})",
                    first.info.class_names,
                )
            )
    if class_names is not None and class_names != first.info.class_names:
        raise StudyInputError(
            _class_mismatch(
                f"{first.name} ({first.info.path})", first.info.class_names, data_description, class_names
            )
            + "; pass the data options the checkpoints were trained with"
        )


def _class_mismatch(a: str, a_names: list[str], b: str, b_names: list[str]) -> str:
    if len(a_names) != len(b_names):
        return f"{a} has {len(a_names)} classes but {b} has {len(b_names)}"
    index = next(i for i, (x, y) in enumerate(zip(a_names, b_names)) if x != y)
    return f"{a} and {b} have different class lists (class {index}: {a_names[index]!r} vs {b_names[index]!r})"

