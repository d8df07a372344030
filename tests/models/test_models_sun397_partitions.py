"""SUN397's ten official partitions: --partition N reads Training_0N.txt / Testing_0N.txt (not only 01)."""
from __future__ import annotations

from pathlib import Path

import pytest

from models.data import build_datasets
from tests.models.test_models_data import make_sun397, parse


def write_partition(root: Path, number: int, train_per_class: int) -> tuple[list[str], list[str]]:
    """Partition `number`: the first `train_per_class` images of each class train, the rest test."""
    classes = [line for line in (root / "ClassName.txt").read_text().split() if line]
    train, test = [], []
    for cls in classes:
        files = sorted(f"{cls}/{p.name}" for p in (root / cls.strip("/")).iterdir())
        train += files[:train_per_class]
        test += files[train_per_class:]
    (root / "Partitions" / f"Training_{number:02d}.txt").write_text("\n".join(train) + "\n")
    (root / "Partitions" / f"Testing_{number:02d}.txt").write_text("\n".join(test) + "\n")
    return train, test


@pytest.mark.parametrize("number", [2, 7, 10])
def test_other_official_partitions_are_read(tmp_path: Path, number: int) -> None:
    make_sun397(tmp_path)  # writes partition 01 (4 train / 2 test per class)
    train, test = write_partition(tmp_path, number, train_per_class=1)
    data = build_datasets(parse("--data", "sun397", "--data-root", str(tmp_path), "--image-size", "32",
                                "--partition", str(number)))
    assert f"official partition {number:02d}" in data.description
    assert f"Training_{number:02d}.txt" in data.description
    assert f"Testing_{number:02d}.txt" in data.description
    assert len(data.train) == 3 and len(data.val) == 15
    assert sorted(f"/{data.val.sample(i).id}" for i in range(len(data.val))) == sorted(test)
    assert sorted(data.train.labels) == [0, 1, 2] and sorted(data.val.labels) == [0] * 5 + [1] * 5 + [2] * 5
    assert data.options["partition"] == number
    first = build_datasets(parse("--data", "sun397", "--data-root", str(tmp_path), "--image-size", "32"))
    assert len(first.train) == 12 and "official partition 01" in first.description  # default stays 01


def test_a_missing_partition_falls_back_to_a_stratified_split_and_says_so(tmp_path: Path) -> None:
    make_sun397(tmp_path)
    data = build_datasets(parse("--data", "sun397", "--data-root", str(tmp_path), "--partition", "3",
                                "--train-size", "6", "--val-size", "3"))
    assert "stratified" in data.description and "Training_03.txt" in data.description
    assert len(data.train) == 6 and len(data.val) == 3
