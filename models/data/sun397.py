"""SUN397 from a local folder in its official layout.

    ROOT/ClassName.txt            one class per line: /a/abbey, /a/apartment_building/outdoor, ...
    ROOT/a/abbey/sun_*.jpg        images, one folder per class (sub-categories one level deeper)
    ROOT/Training_01.txt ...      optional official partitions (also looked for in ROOT/Partitions/),
    ROOT/Testing_01.txt           one image per line: /a/abbey/sun_aqswjsnjlrfzzhiz.jpg

Class names are the keys without the letter folder ("apartment_building/outdoor"); readable labels
replace underscores and put the sub-category in brackets ("apartment building (outdoor)").
Without partition files, a seeded stratified split is made (sizes from --train-size/--val-size).
"""
from __future__ import annotations

from pathlib import Path

from models.data.images import is_image_file
from models.data.splits import stratified_split, stratified_subset

CLASS_LIST = "ClassName.txt"


def class_key(line: str) -> str:
    """'/a/apartment_building/outdoor' -> 'apartment_building/outdoor'."""
    parts = [p for p in line.strip().split("/") if p]
    if len(parts) < 2 or len(parts[0]) != 1:
        raise ValueError(f"{line.strip()!r} is not a SUN397 class path such as /a/abbey")
    return "/".join(parts[1:])


def readable_label(key: str) -> str:
    """'apartment_building/outdoor' -> 'apartment building (outdoor)'."""
    name, *rest = key.split("/")
    label = name.replace("_", " ")
    return f"{label} ({', '.join(r.replace('_', ' ') for r in rest)})" if rest else label


def class_paths(root: Path) -> list[str]:
    """Class folders relative to ROOT ('a/abbey'), from ClassName.txt or else found on disk."""
    listing = root / CLASS_LIST
    if listing.is_file():
        lines = [line.strip() for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()]
        for line in lines:
            class_key(line)  # validates
        return [line.strip("/") for line in lines]
    found = []
    for letter in sorted(p for p in root.iterdir() if p.is_dir() and len(p.name) == 1):
        for folder in sorted(p for p in letter.rglob("*") if p.is_dir()):
            if any(is_image_file(f) for f in folder.iterdir() if f.is_file()):
                found.append(folder.relative_to(root).as_posix())
    if not found:
        raise ValueError(f"{root} has neither {CLASS_LIST} nor letter folders with images (a/abbey/*.jpg); "
                         "point --data-root at the extracted SUN397 folder")
    return found


def partition_files(root: Path, partition: int) -> tuple[Path, Path] | None:
    for folder in (root, root / "Partitions"):
        train, test = folder / f"Training_{partition:02d}.txt", folder / f"Testing_{partition:02d}.txt"
        if train.is_file() and test.is_file():
            return train, test
    return None


def read_partition(path: Path, label_of: dict[str, int], all_folders: set[str]) -> list[tuple[str, int]]:
    """Items of one partition file; classes left out by --num-classes are dropped, unknown ones refused."""
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        relative = line.strip().strip("/")
        folder = relative.rsplit("/", 1)[0]
        if folder not in all_folders:
            raise ValueError(f"{path}:{number}: {line.strip()!r} is not in a class listed in {CLASS_LIST}")
        if folder in label_of:
            items.append((relative, label_of[folder]))
    return items


def load_sun397(root: Path, partition: int, train_size: int | None, val_size: int | None, seed: int,
                num_classes: int | None = None) -> tuple[list, list, list[str], list[str], str]:
    """(train items, val items, class names, class labels, description of the split used)."""
    if not root.is_dir():
        raise ValueError(f"SUN397 folder {root} not found; pass --data-root with the extracted dataset")
    all_folders = class_paths(root)
    folders = all_folders[:num_classes] if num_classes is not None else all_folders
    names = [class_key(f) for f in folders]
    label_of = {folder: label for label, folder in enumerate(folders)}
    official = partition_files(root, partition)
    if official is not None:
        train_all = read_partition(official[0], label_of, set(all_folders))
        val_all = read_partition(official[1], label_of, set(all_folders))
        train = stratified_subset(train_all, len(names), train_size, seed, names)
        val = stratified_subset(val_all, len(names), val_size, seed, names)
        how = f"official partition {partition:02d} ({official[0].name}, {official[1].name})"
    else:
        files = [sorted(f.relative_to(root).as_posix() for f in (root / folder).iterdir()
                        if f.is_file() and is_image_file(f)) for folder in folders]
        for folder, listed in zip(folders, files):
            if not listed:
                raise ValueError(f"class folder {root / folder} has no images")
        train, val = stratified_split(files, names, train_size, val_size, seed)
        how = f"seeded stratified split (seed {seed}); no Training_{partition:02d}.txt/Testing_{partition:02d}.txt found"
    return train, val, names, [readable_label(n) for n in names], how
