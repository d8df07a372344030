"""Datasets for every command: synthetic scenes, SUN397 from a local folder, ImageFolder-style trees.

Every command (`models.train`, `cams.generate`, `cams.metrics`) adds the same options with
`add_data_arguments(parser)` and builds data with `build_datasets(args)`. A checkpoint stores the
resolved options (`Datasets.options`), so `build_datasets(info.data)` rebuilds the very same eval set.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.data.base import FileDataset, Sample, SceneDataset
from models.data.folder import load_folder
from models.data.images import BadImageError, find_bad_images
from models.data.loading import workers_option
from models.data.splits import stratified_subset
from models.data.sun397 import load_sun397
from models.data.synthetic import SyntheticScenes
from models.data.synthetic import class_names as synthetic_class_names
from models.data.transforms import eval_geometry, train_augmentation

__all__ = ["DATA_KINDS", "BadImageError", "Datasets", "Sample", "SceneDataset", "add_data_arguments",
           "build_datasets", "data_options"]

DATA_KINDS = ("synthetic", "sun397", "folder")
PREPARED_INFO = "prepared.json"  # written by `python -m models.data.prepare` into the copy's root
# 112 px is the smallest round size whose ResNet layer-4 maps are 4 x 4 (64 px gives 2 x 2, too coarse
# for a CAM to point at anything: pointing game 0.08 against 0.75 at 112 px on synthetic scenes).
DEFAULT_IMAGE_SIZE = {"synthetic": 112, "sun397": 224, "folder": 224}
SYNTHETIC_DEFAULTS = {"num_classes": 10, "train_size": 1000, "val_size": 300}
SYNTHETIC_MIN_CROP = 0.6  # training crops keep most of the scene, so the object usually stays in view
OPTION_NAMES = ("data", "data_root", "image_size", "num_classes", "train_size", "val_size", "data_seed",
                "partition", "skip_bad_images", "full_decode")


@dataclass
class Datasets:
    """Train and eval datasets plus what a checkpoint must remember about them."""

    train: SceneDataset
    val: SceneDataset
    class_names: list[str]
    class_labels: list[str]
    options: dict[str, Any]
    description: str = ""
    skipped: dict[str, str] = field(default_factory=dict)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The data options shared by every command (documented in docs/training.md)."""
    group = parser.add_argument_group("data")
    group.add_argument("--data", choices=DATA_KINDS, default="synthetic",
                       help="dataset kind (default: synthetic scenes, nothing to download)")
    group.add_argument("--data-root", type=Path, default=None,
                       help="dataset folder (sun397: the extracted SUN397; folder: ROOT with train/ and val/)")
    group.add_argument("--image-size", type=int, default=None,
                       help="square input size in pixels (default: 112 synthetic, 224 otherwise)")
    group.add_argument("--num-classes", type=int, default=None,
                       help="synthetic: number of classes (default 10); sun397/folder: keep only the first K")
    group.add_argument("--train-size", type=int, default=None,
                       help="training images (synthetic default 1000; sun397/folder default: all of the split)")
    group.add_argument("--val-size", type=int, default=None,
                       help="eval images (synthetic default 300; sun397/folder default: all of the split)")
    group.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic scenes and of data splits")
    group.add_argument("--partition", type=int, default=1,
                       help="sun397: official partition N (Training_0N.txt / Testing_0N.txt) when present")
    group.add_argument("--skip-bad-images", action="store_true",
                       help="check every image first and leave unreadable ones out (counted and reported)")
    group.add_argument("--full-decode", action="store_true",
                       help="decode training JPEGs at full size before cropping (default: at the smallest 1/2^k scale "
                            "that still holds the crop: same crops, ~1.9x faster per core, docs/benchmarks.md)")
    group.add_argument("--workers", type=workers_option, default="auto",
                       help="data-loading worker processes (0: in-process; auto: all cores of this process's share "
                            "but one with a GPU, a quarter of them on CPU; see docs/training.md)")


def data_options(args_or_dict: argparse.Namespace | dict) -> dict[str, Any]:
    """The data options from parsed arguments or a checkpoint's `data` dict, with defaults resolved."""
    given = vars(args_or_dict) if isinstance(args_or_dict, argparse.Namespace) else dict(args_or_dict)
    options = {name: given.get(name) for name in OPTION_NAMES}
    kind = options["data"] or "synthetic"
    if kind not in DATA_KINDS:
        raise ValueError(f"unknown --data {kind!r}; choose one of {', '.join(DATA_KINDS)}")
    options["data"] = kind
    options["data_seed"] = int(options["data_seed"] if options["data_seed"] is not None else 0)
    options["partition"] = int(options["partition"] if options["partition"] is not None else 1)
    options["skip_bad_images"] = bool(options["skip_bad_images"])
    options["full_decode"] = bool(options["full_decode"])
    if options["image_size"] is None:
        options["image_size"] = DEFAULT_IMAGE_SIZE[kind]
    if kind == "synthetic":
        for name, default in SYNTHETIC_DEFAULTS.items():
            options[name] = int(options[name] if options[name] is not None else default)
        options["data_root"] = None
    else:
        if options["data_root"] is None:
            raise ValueError(f"--data {kind} needs --data-root PATH (the dataset folder)")
        options["data_root"] = str(Path(options["data_root"]).expanduser().resolve())
    for name in ("image_size", "num_classes", "train_size", "val_size"):
        if options[name] is not None and int(options[name]) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {options[name]}")
    return options


def prepared_note(root: Path) -> str:
    """'; pre-resized copy (short side 256) of SRC' when ROOT was written by `python -m models.data.prepare`."""
    try:
        info = json.loads((root / PREPARED_INFO).read_text(encoding="utf-8"))
        return f"; pre-resized copy (short side {info['short_side']}) of {info['source']}"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def build_datasets(args_or_dict: argparse.Namespace | dict, *, progress: bool = True) -> Datasets:
    """Train and eval datasets for the given data options (parsed arguments or a `data` dict).

    Raises ValueError (with the fix in the message) for a bad folder or option."""
    options = data_options(args_or_dict)
    kind, size, seed = options["data"], options["image_size"], options["data_seed"]
    if kind == "synthetic":
        k = options["num_classes"]
        train = SyntheticScenes(k, size, options["train_size"], seed, "train",
                                augment=train_augmentation(size, SYNTHETIC_MIN_CROP))
        val = SyntheticScenes(k, size, options["val_size"], seed, "val")
        names = synthetic_class_names(k)
        return Datasets(train, val, names, [n.replace("_", " ") for n in names], options,
                        f"synthetic scenes: {k} classes, {len(train)} train / {len(val)} val, {size} px")
    root = Path(options["data_root"])
    if kind == "sun397":
        train_items, val_items, names, labels, how = load_sun397(
            root, options["partition"], options["train_size"], options["val_size"], seed, options["num_classes"])
    else:
        train_items, val_items, names, labels = load_folder(root, options["num_classes"])
        how = f"{root}/train and {root}/val"
        if options["train_size"] is not None or options["val_size"] is not None:
            train_items = stratified_subset(train_items, len(names), options["train_size"], seed, names)
            val_items = stratified_subset(val_items, len(names), options["val_size"], seed, names)
    skipped: dict[str, str] = {}
    if options["skip_bad_images"]:
        files = sorted({root / f for f, _ in train_items + val_items})
        bad = find_bad_images(files, progress=progress)
        skipped = {p.relative_to(root).as_posix(): reason for p, reason in bad.items()}
        train_items = [i for i in train_items if i[0] not in skipped]
        val_items = [i for i in val_items if i[0] not in skipped]
        if skipped:
            print(f"skipped {len(skipped)} unreadable image(s), e.g. {next(iter(skipped))}", file=sys.stderr)
    else:
        missing = [f for f, _ in train_items + val_items if not (root / f).is_file()]
        if missing:
            raise ValueError(f"{len(missing)} listed image(s) missing under {root}, e.g. {missing[0]}; "
                             "restore them or pass --skip-bad-images")
    if not train_items or not val_items:
        raise ValueError(f"no readable {'training' if not train_items else 'eval'} images left under {root}")
    train = FileDataset(root, train_items, eval_geometry(size), augment=train_augmentation(size),
                        reduced_decode=not options["full_decode"])
    val = FileDataset(root, val_items, eval_geometry(size))
    options["num_classes"] = len(names)
    how += prepared_note(root)
    return Datasets(train, val, names, labels, options,
                    f"{kind}: {len(names)} classes, {len(train)} train / {len(val)} val ({how}), {size} px", skipped)
