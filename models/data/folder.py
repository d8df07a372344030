"""Any ImageFolder-style tree: ROOT/train/<class>/**/image and ROOT/val/<class>/**/image."""
from __future__ import annotations

from pathlib import Path

from models.data.images import is_image_file


def readable(name: str) -> str:
    return name.replace("_", " ").replace("-", " ").strip()


def list_split(root: Path, split: str, classes: list[str]) -> list[tuple[str, int]]:
    items = []
    for label, name in enumerate(classes):
        folder = root / split / name
        if folder.is_dir():
            items += [(f.relative_to(root).as_posix(), label)
                      for f in sorted(folder.rglob("*")) if f.is_file() and is_image_file(f)]
    return items


def load_folder(root: Path, num_classes: int | None = None) -> tuple[list, list, list[str], list[str]]:
    """(train items, val items, class names, readable labels); classes are train/'s sub-folders."""
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise ValueError(f"{root / split} not found; --data folder expects ROOT/train/<class>/ and ROOT/val/<class>/")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    unknown = sorted(p.name for p in (root / "val").iterdir() if p.is_dir() and p.name not in classes)
    if unknown:
        raise ValueError(f"{root / 'val'} has classes missing from train/: {', '.join(unknown[:5])}")
    if num_classes is not None:
        classes = classes[:num_classes]
    if not classes:
        raise ValueError(f"{root / 'train'} has no class folders")
    train, val = list_split(root, "train", classes), list_split(root, "val", classes)
    if not train or not val:
        raise ValueError(f"{root} has no images in {'train' if not train else 'val'}/<class>/")
    return train, val, classes, [readable(c) for c in classes]
