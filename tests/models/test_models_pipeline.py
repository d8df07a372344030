"""The input pipeline of issue 12: reduced-size JPEG decoding, seeded persistent loaders, worker counts,
the pre-resized copy, --eval-every and --compile."""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

import models.data.loading as loading
import models.train as train_module
from models import build_model
from models.data import build_datasets
from models.data.decode import load_train_crop
from models.data.images import load_rgb
from models.data.loading import available_cores, choose_workers, make_train_loader, workers_option
from models.data.prepare import main as prepare_main, prepare
from models.data.synthetic import SyntheticScenes
from models.data.transforms import TrainCrop, crop_box, train_augmentation
from models.train import main as train_main

SIZE = 64  # crop size of the tests: small, so the 1024 x 768 test photo allows 1/2, 1/4 and 1/8 decoding


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """Gradients plus smooth noise at two scales plus fine noise: compresses and decodes like a photo."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([90 + 80 * xs / width, 60 + 120 * ys / height, 140 - 60 * xs / width], -1)
    for cells, amplitude in ((6, 40), (40, 20)):
        small = rng.integers(0, 256, (max(2, cells * height // width), cells, 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC), np.float32)
        image += amplitude * (smooth / 127.5 - 1)
    image += rng.normal(0, 3, image.shape)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")


def hwc(pixels: torch.Tensor) -> np.ndarray:
    """3 x H x W uint8 tensor -> H x W x 3 float array, to compare with a PIL image."""
    return pixels.permute(1, 2, 0).numpy().astype(np.float32)


@pytest.fixture(scope="module")
def jpeg(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "photo.jpg"
    photo_like(1024, 768).save(path, quality=90)
    return path


def test_crop_box_is_torchvisions_random_resized_crop() -> None:
    """Same boxes from the same RNG state, for many sizes (including the fallback central crop)."""
    for width, height in ((640, 480), (300, 200), (50, 400), (999, 17)):
        for seed in range(25):
            torch.manual_seed(seed)
            ours = crop_box(width, height)
            torch.manual_seed(seed)
            theirs = T.RandomResizedCrop.get_params(Image.new("RGB", (width, height)), [0.08, 1.0], [3 / 4, 4 / 3])
            assert ours == theirs, (width, height, seed)


def test_train_crop_on_an_image_equals_torchvisions_transforms(jpeg: Path) -> None:
    image = load_rgb(jpeg)
    reference = T.Compose([T.RandomResizedCrop(SIZE, antialias=True), T.RandomHorizontalFlip()])
    for seed in range(6):
        torch.manual_seed(seed)
        expected = np.asarray(reference(image))
        torch.manual_seed(seed)
        assert np.array_equal(np.asarray(TrainCrop(SIZE)(image)), expected)
    assert train_augmentation(SIZE, 0.6) == TrainCrop(SIZE, (0.6, 1.0))


def test_reduced_decoding_keeps_the_crop_and_only_saves_resolution_the_crop_does_not_need(jpeg: Path) -> None:
    crop, full = TrainCrop(SIZE), load_rgb(jpeg)
    factors, differences, mirrored = [], [], []
    for seed in range(60):
        torch.manual_seed(seed)
        top, left, height, width = crop.box(*full.size)
        torch.manual_seed(seed)
        expected = np.asarray(crop(full), np.float32)
        torch.manual_seed(seed)
        reduced, factor = load_train_crop(jpeg, crop)
        assert reduced.shape == (3, SIZE, SIZE) and reduced.dtype == torch.uint8
        # the decoder dropped only resolution the crop did not need: the crop still spans >= SIZE pixels
        assert width / factor >= SIZE and height / factor >= SIZE
        if factor < 8:  # and it took the largest reduction that keeps that true
            assert width / (2 * factor) < SIZE or height / (2 * factor) < SIZE
        got = hwc(reduced)
        factors.append(factor)
        differences.append(np.abs(got - expected).mean())
        mirrored.append(np.abs(got - expected[:, ::-1]).mean())
        torch.manual_seed(seed)
        same_as_full, one = load_train_crop(jpeg, crop, reduced=False)
        assert one == 1 and np.abs(hwc(same_as_full) - expected).mean() < 1.0
    assert set(factors) == {2, 4, 8} and np.mean(factors) > 2  # the mechanism is used, at every scale
    large = TrainCrop(320)  # a crop smaller than 320 px is decoded at full size
    large_factors = [load_train_crop(jpeg, large)[1] for _ in range(30)]
    assert 1 in large_factors and 2 in large_factors
    # same crop boxes and flips: the pixels differ by ~1 grey level on average (DCT-domain vs bilinear
    # prefiltering, torch vs Pillow rounding), while the same crop mirrored (wrong flip) differs by many times more
    assert np.mean(differences) < 2.0 and max(differences) < 4.0
    assert np.mean(differences) < 0.25 * np.mean(mirrored)


def test_reduced_decoding_follows_exif_rotation(tmp_path: Path) -> None:
    """A portrait photo stored landscape with EXIF orientation 6: the crop is taken from the upright image."""
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    photo_like(640, 480, seed=1).save(path, quality=90, exif=exif)
    upright = load_rgb(path)
    assert upright.size == (480, 640)
    crop = TrainCrop(SIZE)
    factors = []
    for seed in range(20):
        torch.manual_seed(seed)
        expected = np.asarray(crop(upright), np.float32)
        torch.manual_seed(seed)
        got, factor = load_train_crop(path, crop)
        factors.append(factor)
        assert np.abs(hwc(got) - expected).mean() < 4.0
    assert max(factors) >= 4


def test_non_jpeg_files_are_cropped_as_before(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    photo_like(320, 240).save(path)
    crop = TrainCrop(SIZE)
    for seed in range(5):
        torch.manual_seed(seed)
        expected = np.asarray(crop(load_rgb(path)), np.float32)
        torch.manual_seed(seed)
        got, factor = load_train_crop(path, crop)
        assert factor == 1 and np.abs(hwc(got) - expected).mean() < 1.0


def test_worker_count_follows_the_available_cores(monkeypatch, tmp_path: Path) -> None:
    assert choose_workers(16, 1, gpu=True) == 15      # one core left for the training process
    assert choose_workers(128, 8, gpu=True) == 15     # 8 GPUs share 128 cores
    assert choose_workers(8, 8, gpu=True) == 1
    assert choose_workers(256, 1, gpu=True) == loading.MAX_WORKERS
    assert choose_workers(16, 1, gpu=False) == 4 and choose_workers(2, 1, gpu=False) == 1
    monkeypatch.setattr(loading, "available_cores", lambda: 16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert workers_option("auto") == 7 and workers_option("3") == 3
    for bad in ("-1", "many"):
        with pytest.raises(argparse.ArgumentTypeError):
            workers_option(bad)
    monkeypatch.undo()
    affinity = len(__import__("os").sched_getaffinity(0))
    quota = tmp_path / "cpu.max"
    monkeypatch.setattr(loading, "CGROUP_CPU_MAX", quota)
    quota.write_text("max 100000\n")
    assert available_cores() == affinity
    quota.write_text("50000 100000\n")  # half a core of quota: still one worker's worth
    assert available_cores() == 1


def batches(loader, epoch: int) -> list[torch.Tensor]:
    loader.sampler.set_epoch(epoch)
    return [images for images, _ in loader]


def test_loader_augmentation_depends_on_seed_epoch_and_index_only() -> None:
    """Persistent workers keep their RNG between epochs, so each item is seeded from (seed, epoch, index):
    then 0 and 2 workers give the very same batches, and every epoch gets new crops."""
    scenes = SyntheticScenes(3, 32, 8, seed=0, split="train", augment=TrainCrop(32, (0.3, 1.0)))
    alone = make_train_loader(scenes, batch_size=4, seed=5, workers=0)
    pooled = make_train_loader(scenes, batch_size=4, seed=5, workers=2)
    assert pooled.persistent_workers and pooled.prefetch_factor == loading.PREFETCH_BATCHES
    first = batches(pooled, 0)
    workers = pooled._iterator
    again = batches(pooled, 1)
    assert pooled._iterator is workers  # the same worker processes served the second epoch
    assert all(torch.equal(a, b) for a, b in zip(first, batches(alone, 0)))
    assert all(torch.equal(a, b) for a, b in zip(again, batches(alone, 1)))
    assert not any(torch.equal(a, b) for a, b in zip(first, again))
    state = torch.get_rng_state()
    batches(alone, 2)
    assert torch.equal(state, torch.get_rng_state())  # the caller's RNG (VIB noise) is left alone


def test_uint8_batches_normalised_on_the_device_equal_the_float_path() -> None:
    """Training workers ship uint8 images; DeviceBatches normalises them to the very same floats."""
    scenes = SyntheticScenes(3, 32, 8, seed=0, split="train", augment=TrainCrop(32, (0.3, 1.0)))
    floats = batches(make_train_loader(scenes, batch_size=4, seed=1, workers=0), 0)
    scenes.uint8 = True
    raw = make_train_loader(scenes, batch_size=4, seed=1, workers=0)
    assert all(images.dtype == torch.uint8 for images in batches(raw, 0))
    raw.sampler.set_epoch(0)
    normalised = [images for images, _ in loading.DeviceBatches(raw, torch.device("cpu"))]
    assert len(normalised) == len(floats) == 2
    assert all(torch.equal(a, b) for a, b in zip(normalised, floats))


def make_sun397_copy_source(root: Path) -> None:
    classes = ["/a/abbey", "/b/bakery/shop"]
    (root / "Partitions").mkdir(parents=True)
    (root / "ClassName.txt").write_text("\n".join(classes) + "\n")
    lines = []
    for c_index, cls in enumerate(classes):
        folder = root / cls.strip("/")
        folder.mkdir(parents=True)
        photo_like(600, 400, seed=c_index).save(folder / "sun_big.jpg", quality=90)
        photo_like(160, 120, seed=c_index).save(folder / "sun_small.jpg", quality=90)
        photo_like(400, 500, seed=c_index).save(folder / "sun_lossless.png")
        lines += [f"{cls}/sun_big.jpg", f"{cls}/sun_small.jpg", f"{cls}/sun_lossless.png"]
    (root / "b/bakery/shop/sun_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "Partitions" / "Training_01.txt").write_text("\n".join(lines[0::2]) + "\n")
    (root / "Partitions" / "Testing_01.txt").write_text("\n".join(lines[1::2] + ["/b/bakery/shop/sun_broken.jpg"]) + "\n")


def files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_prepare_writes_the_same_layout_with_smaller_images(tmp_path: Path) -> None:
    source, out = tmp_path / "SUN397", tmp_path / "SUN397-256"
    make_sun397_copy_source(source)
    summary = prepare(source, out, short_side=128, workers=2, progress=False)
    assert files(out) == files(source) | {"prepared.json"}
    assert not list(tmp_path.glob(".*partial*"))  # nothing half-written left behind
    for name in ("ClassName.txt", "Partitions/Training_01.txt", "Partitions/Testing_01.txt",
                 "a/abbey/sun_small.jpg", "b/bakery/shop/sun_broken.jpg"):
        assert (out / name).read_bytes() == (source / name).read_bytes(), name
    with Image.open(out / "a/abbey/sun_big.jpg") as big, Image.open(out / "a/abbey/sun_lossless.png") as png:
        assert (big.format, big.size) == ("JPEG", (192, 128)) and (png.format, png.size) == ("PNG", (128, 160))
    assert summary["this_run"] == {"resized": 4, "copied": 2, "unreadable": 1}
    assert json.loads((out / "prepared.json").read_text())["short_side"] == 128
    options = {"data": "sun397", "image_size": 32, "skip_bad_images": True}
    original, copy = build_datasets({**options, "data_root": source}), build_datasets({**options, "data_root": out})
    assert copy.train.items == original.train.items and copy.val.items == original.val.items
    assert copy.skipped.keys() == original.skipped.keys() == {"b/bakery/shop/sun_broken.jpg"}
    assert "pre-resized copy (short side 128)" in copy.description
    assert copy.train[0][0].shape == (3, 32, 32)


def test_prepare_refuses_to_overwrite_and_continues_after_an_interruption(tmp_path: Path, capsys) -> None:
    source, out = tmp_path / "SUN397", tmp_path / "copy"
    make_sun397_copy_source(source)
    partial = tmp_path / ".copy.partial" / "a" / "abbey"
    partial.mkdir(parents=True)
    (partial / "sun_big.jpg").write_bytes(b"written before the interruption")
    assert prepare_main(["--data-root", str(source), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (out / "a/abbey/sun_big.jpg").read_bytes() == b"written before the interruption"  # not redone
    assert json.loads((out / "prepared.json").read_text())["this_run"]["resized"] == 3
    assert prepare_main(["--data-root", str(source), "--out", str(out), "--no-progress"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert prepare_main(["--data-root", str(source), "--out", str(source / "inside"), "--no-progress"]) == 1
    assert "inside --data-root" in capsys.readouterr().err
    with pytest.raises(SystemExit) as help_exit:
        prepare_main(["--help"])
    assert help_exit.value.code == 0 and "--short-side" in capsys.readouterr().out


TINY = ["--arch", "resnet18", "--image-size", "32", "--num-classes", "3", "--train-size", "12", "--val-size", "6",
        "--batch-size", "6", "--lr", "0.05", "--workers", "0", "--no-progress", "--warmup-epochs", "1"]


def test_eval_every_skips_evaluations_but_always_evaluates_the_last_epoch(tmp_path: Path, monkeypatch) -> None:
    evaluated = []
    real_evaluate = train_module.evaluate

    def counting(*args, **kwargs):
        evaluated.append(1)
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate", counting)
    assert train_main([*TINY, "--epochs", "3", "--eval-every", "2", "--out", str(tmp_path / "run")]) == 0
    assert len(evaluated) == 2  # after epochs 2 and 3 (the last), not after epoch 1
    with open(tmp_path / "run" / "metrics.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert [r["val_acc"] == "" for r in rows] == [True, False, False]
    assert rows[0]["loss"] != "" and float(rows[2]["val_acc"]) >= 0
    assert train_main([*TINY, "--epochs", "1", "--eval-every", "0", "--out", str(tmp_path / "bad")]) == 1


def test_accelerate_turns_on_cudnn_autotuning_and_needs_a_compiler_to_compile_on_cpu(monkeypatch) -> None:
    model = torch.nn.Linear(2, 2)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    assert train_module.accelerate(model, argparse.Namespace(compile=False), torch.device("cpu")) is model
    assert torch.backends.cudnn.benchmark is False
    assert train_module.accelerate(model, argparse.Namespace(compile=False), torch.device("cuda")) is model
    assert torch.backends.cudnn.benchmark is True
    monkeypatch.setattr(train_module.shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match="C compiler"):
        train_module.accelerate(model, argparse.Namespace(compile=True), torch.device("cpu"))


@pytest.mark.slow
def test_compiled_model_gives_the_eager_eval_logits() -> None:
    """--compile (torch.compile, inductor; on CPU it generates and builds C++ kernels) computes the same
    function as the eager model: eval logits agree to float32 rounding."""
    torch.manual_seed(0)
    model = build_model("resnet18", 3, "vib").eval()
    compiled = train_module.accelerate(model, argparse.Namespace(compile=True), torch.device("cpu"))
    assert compiled is not model
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        eager, fused = model(images), compiled(images)
    assert fused.shape == (2, 3)
    torch.testing.assert_close(fused, eager, rtol=1e-4, atol=1e-4)
