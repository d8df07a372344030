"""Decoded + augmented training images/s: the old input path against each improvement, same run.

    .venv/bin/python bench/data_pipeline.py [--out DIR] [--images 480] [--size 224] [--workers N]

1. Generates (or reuses, in --out) a SUN397-like folder: ClassName.txt, a/<class>/sun_*.jpg,
   Training_01.txt / Testing_01.txt, with photo-like JPEGs from about 300 x 200 to 1600 x 1200
   (area log-uniform, landscape and portrait), made of gradients, multi-scale smooth noise, textured
   shapes and sensor noise, saved at quality 90 so that they compress (bits per pixel printed) and
   decode like photos.
2. Writes the pre-resized copy with `models.data.prepare` (short side 256) and times it.
3. Per core: one process, one torch thread, every path over the same images in interleaved chunks
   (the machine is shared; CPU time of this process is the clean measure, wall time is printed too):
     old        full-size PIL decode, RandomResizedCrop + flip, tensor (the path before issue 12)
     tv-decode  torchvision.io.decode_jpeg (libjpeg-turbo, full size) + tensor crop: the alternative
     reduced    the crop chosen from the header, JPEG decoded at 1/2^k scale (models/data/decode.py)
     reduced+uint8  ... and uint8 out, normalised on the device: the training default now
     prepared   the old path on the short-side-256 copy (models.data.prepare)
     prepared+reduced+uint8  everything
4. All cores: DataLoader with --workers processes over 2 epochs: the old loader (new workers every
   epoch) against the new one (`make_train_loader`: persistent workers, per-item seeding).
Ratios are against the old path measured in the same run. `--loader-only` runs only step 4 for
the new loader (the GPU check uses it); `--generate-only` stops after step 1.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.v2.functional as F2
from PIL import Image, ImageDraw
from torch.utils.data import DataLoader, DistributedSampler
from torchvision.io import ImageReadMode, decode_jpeg, read_file


from models.data.base import FileDataset
from models.data.loading import available_cores, make_train_loader
from models.data.prepare import prepare
from models.data.sun397 import load_sun397
from models.data.transforms import IMAGENET_MEAN, IMAGENET_STD, TrainCrop, eval_geometry

from testing.benchmark import add_smoke_flag, print_header

MARKER = "bench_data_pipeline.json"
MIN_SIZE, MAX_SIZE = (300, 200), (1600, 1200)
ASPECTS = (4 / 3, 4 / 3, 3 / 2, 16 / 9, 1.0, 3 / 4, 2 / 3)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the generated dataset (reused when it exists; default: a temp folder)")
    parser.add_argument("--images", type=int, default=480, help="images to generate")
    parser.add_argument("--classes", type=int, default=12, help="classes to spread them over")
    parser.add_argument("--size", type=int, default=224, help="training crop size")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds of the per-core measurement")
    parser.add_argument("--workers", type=int, default=0, help="loader workers for step 4 (0: all available cores)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--generate-only", action="store_true", help="only write the dataset (step 1)")
    parser.add_argument("--loader-only", action="store_true", help="only the new loader at --workers (step 4)")
    parser.add_argument("--epochs", type=int, default=4, help="--loader-only: epochs to time")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    add_smoke_flag(parser)
    return parser


# ---------------------------------------------------------------------------------------- dataset

def smooth_noise(width: int, height: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """H x W x 3 float noise in [-1, 1], smooth at a scale of width / cells pixels."""
    small = rng.integers(0, 256, (max(2, round(cells * height / width)), cells, 3), dtype=np.uint8)
    big = Image.fromarray(small, "RGB").resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(big, np.float32) / 127.5 - 1.0


def photo(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """A photo-like RGB image: a lit gradient, textures at several scales, shapes, sensor noise."""
    top, bottom = rng.uniform(40, 230, 3), rng.uniform(20, 200, 3)
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    image = top * (1 - ramp) + bottom * ramp + np.zeros((1, width, 1), np.float32)
    for cells, amplitude in ((3, 45), (12, 28), (48, 16), (max(64, width // 8), 10)):
        image += amplitude * smooth_noise(width, height, cells, rng)
    canvas = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(4, 12))):  # objects: edges and flat-ish regions, as in scenes
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        x1, y1 = x0 + rng.uniform(0.05, 0.4) * width, y0 + rng.uniform(0.05, 0.4) * height
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.4 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
    image = np.asarray(canvas, np.float32)
    image += 12 * smooth_noise(width, height, max(64, width // 4), rng)  # texture over the objects too
    image += rng.normal(0.0, 3.0, image.shape).astype(np.float32)       # sensor noise
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")


def photo_size(rng: np.random.Generator) -> tuple[int, int]:
    """Area log-uniform between 300 x 200 and 1600 x 1200, a common aspect ratio, clipped to the range."""
    area = math.exp(rng.uniform(math.log(MIN_SIZE[0] * MIN_SIZE[1]), math.log(MAX_SIZE[0] * MAX_SIZE[1])))
    aspect = ASPECTS[int(rng.integers(len(ASPECTS)))]
    width = int(np.clip(round(math.sqrt(area * aspect)), MIN_SIZE[1], MAX_SIZE[0]))
    height = int(np.clip(round(area / width), MIN_SIZE[1], MAX_SIZE[0] if aspect < 1 else MAX_SIZE[1]))
    return width, height


def write_photo(job: tuple[Path, int, int]) -> tuple[int, int, int]:
    path, seed, index = job
    rng = np.random.default_rng([seed, index])
    width, height = photo_size(rng)
    photo(width, height, rng).save(path, quality=90)
    return width, height, path.stat().st_size


def generate(root: Path, images: int, classes: int, seed: int) -> dict:
    """Write the SUN397-like folder (see the module docstring); returns its size statistics."""
    import multiprocessing

    names = [f"a/class_{c:02d}" for c in range(classes)]
    jobs, lines = [], {n: [] for n in names}
    for index in range(images):
        name = names[index % classes]
        (root / name).mkdir(parents=True, exist_ok=True)
        relative = f"{name}/sun_{index:05d}.jpg"
        jobs.append((root / relative, seed, index))
        lines[name].append("/" + relative)
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(available_cores()) as pool:
        sizes = pool.map(write_photo, jobs, chunksize=4)
    (root / "ClassName.txt").write_text("".join(f"/{n}\n" for n in names))
    train = [f for n in names for f in lines[n][0::2]]
    test = [f for n in names for f in lines[n][1::2]]
    (root / "Training_01.txt").write_text("\n".join(train) + "\n")
    (root / "Testing_01.txt").write_text("\n".join(test) + "\n")
    pixels = [w * h for w, h, _ in sizes]
    info = {"images": images, "classes": classes, "seed": seed, "seconds": round(time.perf_counter() - started, 1),
            "median_megapixels": statistics.median(pixels) / 1e6, "mean_megapixels": statistics.mean(pixels) / 1e6,
            "bits_per_pixel": 8 * sum(b for *_, b in sizes) / sum(pixels),
            "mean_kb": statistics.mean(b for *_, b in sizes) / 1024}
    (root / MARKER).write_text(json.dumps(info, indent=2) + "\n")
    return info


def dataset_root(args: argparse.Namespace, scratch: Path) -> tuple[Path, dict]:
    root = args.out or scratch / "sun397-like"
    if (root / MARKER).is_file():
        return root, json.loads((root / MARKER).read_text())
    if root.exists() and any(root.iterdir()):
        raise SystemExit(f"error: --out {root} exists but was not written by this benchmark; choose an empty folder")
    root.mkdir(parents=True, exist_ok=True)
    return root, generate(root, args.images, args.classes, args.seed)


# ---------------------------------------------------------------------------------------- paths

class TorchvisionDecode(torch.utils.data.Dataset):
    """libjpeg-turbo through torchvision.io at full size, crop + resize on the uint8 tensor."""

    def __init__(self, root: Path, items: list[tuple[str, int]], crop: TrainCrop) -> None:
        self.root, self.items, self.crop = root, items, crop
        self.mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        relative, label = self.items[index]
        image = decode_jpeg(read_file(str(self.root / relative)), mode=ImageReadMode.RGB)
        top, left, height, width = self.crop.box(image.shape[2], image.shape[1])
        image = F2.resized_crop(image, top, left, height, width, [self.crop.size] * 2, antialias=True)
        if self.crop.flip():
            image = image.flip(-1)
        return (image.float().div_(255) - self.mean) / self.std, label


def old_dataset(root: Path, items: list, size: int) -> FileDataset:
    """The training path before issue 12: decode all pixels, then torchvision's crop and flip."""
    augment = T.Compose([T.RandomResizedCrop(size, antialias=True), T.RandomHorizontalFlip()])
    return FileDataset(root, items, eval_geometry(size), augment=augment)


def new_dataset(root: Path, items: list, size: int, uint8: bool = True) -> FileDataset:
    """The training path now: crop from the header, reduced decoding, uint8 out (normalised on the device)."""
    dataset = FileDataset(root, items, eval_geometry(size), augment=TrainCrop(size), reduced_decode=True)
    dataset.uint8 = uint8
    return dataset


def paths(root: Path, prepared: Path, items: list, size: int) -> dict[str, torch.utils.data.Dataset]:
    return {
        "old": old_dataset(root, items, size),
        "tv-decode": TorchvisionDecode(root, items, TrainCrop(size)),
        "reduced": new_dataset(root, items, size, uint8=False),
        "reduced+uint8": new_dataset(root, items, size),
        "prepared": old_dataset(prepared, items, size),
        "prepared+reduced+uint8": new_dataset(prepared, items, size),
    }


def per_core(datasets: dict, rounds: int, seed: int) -> dict[str, dict[str, float]]:
    """img/s per core (CPU time and wall) of every path, over the same images in interleaved chunks."""
    torch.set_num_threads(1)
    count = len(next(iter(datasets.values())))
    chunks = [list(range(count))[r::rounds] for r in range(rounds)]
    spent = {name: [0.0, 0.0] for name in datasets}
    for name, dataset in datasets.items():  # warm-up: imports, page cache
        for index in range(min(4, count)):
            dataset[index]
    order = list(datasets)
    for r, chunk in enumerate(chunks):
        random.Random(seed + r).shuffle(order)
        for name in order:
            torch.manual_seed(seed + r)
            wall, cpu = time.perf_counter(), time.process_time()
            for index in chunk:
                datasets[name][index]
            spent[name][0] += time.process_time() - cpu
            spent[name][1] += time.perf_counter() - wall
    return {name: {"cpu_img_s": count / cpu, "wall_img_s": count / wall} for name, (cpu, wall) in spent.items()}


def old_loader_epochs(dataset, batch: int, workers: int, epochs: int, seed: int) -> float:
    """img/s of the pre-issue-12 loader: a new DataLoader (new worker processes) every epoch."""
    started, seen = time.perf_counter(), 0
    for epoch in range(epochs):
        sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=workers, drop_last=True,
                            generator=torch.Generator().manual_seed(seed + epoch))
        for images, _ in loader:
            seen += len(images)
    return seen / (time.perf_counter() - started)


def new_loader_epochs(dataset, batch: int, workers: int, epochs: int, seed: int) -> float:
    """img/s of `make_train_loader` over `epochs` epochs, worker start-up included."""
    return new_loader_rates(dataset, batch, workers, epochs, seed)[0]


def new_loader_rates(dataset, batch: int, workers: int, epochs: int, seed: int) -> tuple[float, float]:
    """(img/s over all epochs with worker start-up, img/s of the epochs after the first: steady state)."""
    loader = make_train_loader(dataset, batch_size=batch, seed=seed, workers=workers)
    started, seen, after_first = time.perf_counter(), 0, None
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        for images, _ in loader:
            seen += len(images)
        if epoch == 0:
            after_first, seen_first = time.perf_counter(), seen
    ended = time.perf_counter()
    del loader
    steady = (seen - seen_first) / (ended - after_first) if epochs > 1 else float("nan")
    return seen / (ended - started), steady


def environment() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {available_cores()} cores available "
            f"(os.cpu_count {os.cpu_count()}), load average {load:.1f}, torch {torch.__version__}, "
            f"Pillow {Image.__version__}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.smoke:
        args.images, args.classes, args.rounds, args.workers, args.batch_size = 12, 3, 1, 1, 4
    workers = args.workers or available_cores()
    print_header("decoded + augmented training images/s (bench/data_pipeline.py)")
    print(environment(), flush=True)
    results: dict = {"environment": environment(), "size": args.size}
    with tempfile.TemporaryDirectory(prefix="bench-data-") as scratch:
        root, info = dataset_root(args, Path(scratch))
        results["dataset"] = info
        print(f"dataset {root}: {info['images']} JPEGs, median {info['median_megapixels']:.2f} MP, mean "
              f"{info['mean_megapixels']:.2f} MP, {info['bits_per_pixel']:.2f} bits/pixel, mean {info['mean_kb']:.0f} KB",
              flush=True)
        if args.generate_only:
            return 0
        train, val, *_ = load_sun397(root, 1, None, None, args.seed)
        items = train + val
        if args.loader_only:
            rate, steady = new_loader_rates(new_dataset(root, items, args.size), args.batch_size, workers,
                                            args.epochs, args.seed)
            print(f"new loader, {workers} workers, {args.epochs} epochs of {len(items)} images: {rate:.0f} img/s "
                  f"with worker start-up, {steady:.0f} img/s after the first epoch", flush=True)
            results["loader"] = {"workers": workers, "img_s": rate, "steady_img_s": steady, "epochs": args.epochs}
        else:
            prepared = Path(scratch) / "prepared-256"
            cpu = time.process_time()
            summary = prepare(root, prepared, 256, workers=1, progress=False)  # in this process: CPU time counts
            prepare_s = (time.process_time() - cpu) / summary["images"]
            print(f"prepared copy (short side 256): {1000 * prepare_s:.1f} ms CPU time per image", flush=True)
            results["prepare_cpu_ms_per_image"] = 1000 * prepare_s
            rates = per_core(paths(root, prepared, items, args.size), args.rounds, args.seed)
            results["per_core"] = rates
            old = rates["old"]["cpu_img_s"]
            print(f"\nper core ({args.size} px crops, 1 process, 1 torch thread, {len(items)} images x "
                  f"{args.rounds} interleaved rounds):")
            print(f"{'path':24s} {'img/s (CPU time)':>17s} {'img/s (wall)':>13s} {'vs old':>8s}")
            for name, rate in rates.items():
                print(f"{name:24s} {rate['cpu_img_s']:17.1f} {rate['wall_img_s']:13.1f} "
                      f"{rate['cpu_img_s'] / old:7.2f}x")
            saved = 1 / old - 1 / rates["prepared+reduced+uint8"]["cpu_img_s"]
            print(f"prepare costs {prepare_s / (1 / old):.1f} epochs of the old path and saves "
                  f"{saved / (1 / old):.0%} of every later epoch: paid back after {prepare_s / saved:.1f} epochs")
            results["prepare_payback_epochs"] = prepare_s / saved
            for name in ("reduced+uint8", "prepared+reduced+uint8"):
                print(f"projection, 16 cores (15 workers) on the {name} path: "
                      f"{15 * rates[name]['cpu_img_s']:.0f} img/s (old path: {15 * old:.0f} img/s)")
            print(f"\nall cores ({workers} workers, batch {args.batch_size}, 2 epochs of {len(items)} images):", flush=True)
            loaders = {
                "old loader, old path": old_loader_epochs(old_dataset(root, items, args.size), args.batch_size,
                                                          workers, 2, args.seed),
                "new loader, reduced+uint8": new_loader_epochs(
                    new_dataset(root, items, args.size), args.batch_size, workers, 2, args.seed),
                "new loader, prepared+reduced+uint8": new_loader_epochs(
                    new_dataset(prepared, items, args.size), args.batch_size, workers, 2, args.seed),
            }
            results["all_cores"] = {"workers": workers, **loaders}
            base = loaders["old loader, old path"]
            for name, rate in loaders.items():
                print(f"{name:36s} {rate:8.1f} img/s {rate / base:7.2f}x")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
