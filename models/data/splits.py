"""Seeded, stratified choices of images per class (the same seed always picks the same files)."""
from __future__ import annotations

import numpy as np


def even_quotas(total: int, num_classes: int) -> list[int]:
    """`total` spread over classes as evenly as possible (the first classes take the remainder)."""
    base, extra = divmod(total, num_classes)
    return [base + (1 if c < extra else 0) for c in range(num_classes)]


def shuffled(files: list[str], seed: int, class_index: int) -> list[str]:
    order = np.random.default_rng([seed, class_index]).permutation(len(files))
    return [files[i] for i in order]


def stratified_split(files_by_class: list[list[str]], names: list[str], train_size: int | None,
                     val_size: int | None, seed: int) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Disjoint train/val lists of (file, label). Without sizes every class is split in half."""
    train: list[tuple[str, int]] = []
    val: list[tuple[str, int]] = []
    count = len(files_by_class)
    train_quota = even_quotas(train_size, count) if train_size is not None else None
    val_quota = even_quotas(val_size, count) if val_size is not None else None
    for label, files in enumerate(files_by_class):
        files = shuffled(sorted(files), seed, label)
        n_train = train_quota[label] if train_quota else (len(files) + 1) // 2
        n_val = val_quota[label] if val_quota else len(files) - n_train
        if n_train + n_val > len(files):
            raise ValueError(f"class {names[label]!r} has {len(files)} images, fewer than the {n_train} + {n_val} "
                             "that --train-size/--val-size ask of each class; lower them")
        train += [(f, label) for f in files[:n_train]]
        val += [(f, label) for f in files[n_train:n_train + n_val]]
    return train, val


def stratified_subset(items: list[tuple[str, int]], num_classes: int, size: int | None, seed: int,
                      names: list[str]) -> list[tuple[str, int]]:
    """`size` items drawn evenly across classes (all items when size is None)."""
    if size is None:
        return items
    by_class: list[list[str]] = [[] for _ in range(num_classes)]
    for file, label in items:
        by_class[label].append(file)
    chosen: list[tuple[str, int]] = []
    for label, quota in enumerate(even_quotas(size, num_classes)):
        if quota > len(by_class[label]):
            raise ValueError(f"class {names[label]!r} has {len(by_class[label])} images in this split, fewer than "
                             f"the {quota} the requested size needs; lower --train-size/--val-size")
        chosen += [(f, label) for f in shuffled(sorted(by_class[label]), seed, label)[:quota]]
    return chosen
