"""Data: synthetic scenes, a SUN397-layout tree made here, ImageFolder trees, image modes, bad files."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.data import add_data_arguments, build_datasets
from models.data.images import BadImageError, load_rgb
from models.data.synthetic import COLOURS, MAX_CLASSES, SyntheticScenes, class_names
from models.data.transforms import to_model_input


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_data_arguments(parser)
    return parser.parse_args(list(argv))


def test_synthetic_scenes_are_deterministic_and_masked() -> None:
    data = build_datasets(parse("--num-classes", "6", "--train-size", "12", "--val-size", "12", "--image-size", "48"))
    again = build_datasets(data.options)
    other_seed = build_datasets({**data.options, "data_seed": 1})
    for index in (0, 5, 11):
        sample = data.val.sample(index)
        assert sample.image.mode == "RGB" and sample.image.size == (48, 48)
        assert sample.mask.mode == "L" and sample.mask.size == (48, 48)
        assert sample.label == index % 6 and sample.id == f"synthetic-0-val-{index}"
        assert np.array_equal(np.asarray(sample.image), np.asarray(again.val.sample(index).image))
        assert not np.array_equal(np.asarray(sample.image), np.asarray(other_seed.val.sample(index).image))
        fraction = (np.asarray(sample.mask) > 127).mean()
        assert 0.02 < fraction < 0.3
        tensor, label = data.val[index]
        assert label == sample.label and torch.equal(tensor, to_model_input([sample.image])[0])
    assert not np.array_equal(np.asarray(data.val.sample(0).image), np.asarray(data.train.load(0).image))
    assert data.train[0][0].shape == (3, 48, 48)


def test_the_mask_covers_the_class_object() -> None:
    """Class 0 is a plain red object: the pixels under its mask must be that red."""
    scenes = SyntheticScenes(8, 64, 40, seed=3, split="val")
    for index in range(0, 40, 8):
        sample = scenes.sample(index)
        pixels = np.asarray(sample.image, dtype=float)[np.asarray(sample.mask) > 127]
        assert np.abs(pixels.mean(0) - np.asarray(COLOURS["red"])).max() < 35


def test_synthetic_classes_are_distinct_and_bounded() -> None:
    names = class_names(MAX_CLASSES)
    assert len(set(names)) == MAX_CLASSES
    assert names[:2] == ["red_plain_circle", "green_striped_square"]
    with pytest.raises(ValueError, match="--num-classes"):
        class_names(MAX_CLASSES + 1)


def save(image: Image.Image, path: Path, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)


def odd_mode_images() -> list[tuple[str, Image.Image, dict]]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (40, 52, 3), dtype=np.uint8), "RGB")
    deep = Image.fromarray((rng.integers(0, 65535, (40, 52))).astype(np.uint16))
    return [("jpg", rgb, {}), ("png", rgb.convert("L"), {}), ("png", rgb.convert("P"), {}),
            ("jpg", rgb.convert("CMYK"), {}), ("png", rgb.convert("RGBA"), {}), ("png", deep, {})]


def make_sun397(root: Path, partition: bool = True) -> None:
    classes = ["/a/abbey", "/a/apartment_building/outdoor", "/b/bakery/shop"]
    (root / "ClassName.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "ClassName.txt").write_text("\n".join(classes) + "\n")
    modes = odd_mode_images()
    lines = {c: [] for c in classes}
    for c_index, cls in enumerate(classes):
        for i in range(6):
            suffix, image, kwargs = modes[(c_index + i) % len(modes)]
            relative = f"{cls}/sun_{c_index}{i}.{suffix}"
            save(image, root / relative.strip("/"), **kwargs)
            lines[cls].append(relative)
    if partition:
        train = [f for c in classes for f in lines[c][:4]]
        test = [f for c in classes for f in lines[c][4:]]
        (root / "Partitions").mkdir()
        (root / "Partitions" / "Training_01.txt").write_text("\n".join(train) + "\n")
        (root / "Partitions" / "Testing_01.txt").write_text("\n".join(test) + "\n")


def test_sun397_layout_with_official_partition(tmp_path: Path) -> None:
    make_sun397(tmp_path)
    data = build_datasets(parse("--data", "sun397", "--data-root", str(tmp_path), "--image-size", "32"))
    assert data.class_names == ["abbey", "apartment_building/outdoor", "bakery/shop"]
    assert data.class_labels == ["abbey", "apartment building (outdoor)", "bakery (shop)"]
    assert len(data.train) == 12 and len(data.val) == 6
    assert "official partition 01" in data.description
    ids = [data.val.sample(i).id for i in range(len(data.val))]
    assert "a/apartment_building/outdoor/sun_14.png" in ids
    assert sorted(data.val.labels) == [0, 0, 1, 1, 2, 2]
    for index in range(len(data.val)):  # every odd mode decodes to RGB at the eval size
        sample = data.val.sample(index)
        assert sample.image.mode == "RGB" and sample.image.size == (32, 32) and sample.mask is None
    assert all(data.train[i][0].shape == (3, 32, 32) for i in range(len(data.train)))
    assert data.options["num_classes"] == 3 and data.options["data_root"] == str(tmp_path.resolve())


def test_sun397_without_partition_gets_a_seeded_stratified_split(tmp_path: Path) -> None:
    make_sun397(tmp_path, partition=False)
    args = parse("--data", "sun397", "--data-root", str(tmp_path), "--train-size", "6", "--val-size", "3")
    data = build_datasets(args)
    assert sorted(data.train.labels) == [0, 0, 1, 1, 2, 2] and sorted(data.val.labels) == [0, 1, 2]
    train_ids = {f for f, _ in data.train.items}
    assert not train_ids & {f for f, _ in data.val.items}
    assert train_ids == {f for f, _ in build_datasets(args).train.items}  # same seed, same split
    assert "stratified" in data.description
    with pytest.raises(ValueError, match="fewer than"):
        build_datasets(parse("--data", "sun397", "--data-root", str(tmp_path), "--train-size", "18", "--val-size", "3"))


def test_image_modes_become_rgb(tmp_path: Path) -> None:
    for index, (suffix, image, kwargs) in enumerate(odd_mode_images()):
        path = tmp_path / f"image{index}.{suffix}"
        image.save(path, **kwargs)
        loaded = load_rgb(path)
        assert loaded.mode == "RGB" and loaded.size == (52, 40), image.mode
    deep = Image.fromarray(np.full((4, 4), 65535, np.uint16))
    deep.save(tmp_path / "white16.png")
    assert np.asarray(load_rgb(tmp_path / "white16.png")).min() == 255
    clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert np.asarray(to_rgb_via_file(clear, tmp_path)).min() == 255  # transparent -> white, not black


def to_rgb_via_file(image: Image.Image, folder: Path) -> Image.Image:
    image.save(folder / "clear.png")
    return load_rgb(folder / "clear.png")


def make_folder_tree(root: Path, corrupt: bool = False) -> None:
    rgb = Image.new("RGB", (20, 20), (10, 200, 30))
    for split, count in (("train", 3), ("val", 2)):
        for name in ("cat", "dog_house"):
            for i in range(count):
                save(rgb, root / split / name / f"{i}.png")
    if corrupt:
        (root / "train" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")


def test_image_folder_tree_and_bad_images(tmp_path: Path) -> None:
    make_folder_tree(tmp_path, corrupt=True)
    strict = build_datasets(parse("--data", "folder", "--data-root", str(tmp_path), "--image-size", "16"))
    assert strict.class_names == ["cat", "dog_house"] and strict.class_labels == ["cat", "dog house"]
    assert len(strict.train) == 7 and len(strict.val) == 4
    broken = [i for i, (f, _) in enumerate(strict.train.items) if f.endswith("broken.jpg")][0]
    with pytest.raises(BadImageError, match="broken.jpg.*--skip-bad-images"):
        strict.train[broken]
    lenient = build_datasets(parse("--data", "folder", "--data-root", str(tmp_path), "--skip-bad-images"))
    assert lenient.skipped.keys() == {"train/cat/broken.jpg"} and len(lenient.train) == 6


def test_data_option_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--data-root"):
        build_datasets(parse("--data", "sun397"))
    with pytest.raises(ValueError, match="train/<class>"):
        build_datasets(parse("--data", "folder", "--data-root", str(tmp_path)))
    with pytest.raises(ValueError, match="--image-size"):
        build_datasets(parse("--image-size", "0"))
