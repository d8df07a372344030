"""Write a pre-resized copy of a dataset: `python -m models.data.prepare --help`.

Every epoch of training decodes every image again. SUN397's photos are up to 1600 x 1200 and more;
a copy whose short side is 256 (the eval resize) decodes several times faster, for 100 epochs and
every run of a sweep. The copy has the same layout: every folder and every non-image file
(ClassName.txt, Training_01.txt, Partitions/, ...) is copied as is and every image keeps its
relative path and format, so `--data-root COPY` is a drop-in replacement and the official
partitions still apply. Images whose short side is already small enough are copied byte for byte,
unreadable files are copied unchanged (so `--skip-bad-images` still finds them), EXIF rotation is
applied (the copy is upright) and every mode is converted to RGB as the loader would.

Nothing half-written is left at OUT: files go to OUT's sibling `.OUT.partial/` (each written to a
temporary name and renamed), which is renamed to OUT at the end. Running the same command after an
interruption continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import time
from pathlib import Path

from PIL import Image, ImageOps
from tqdm import tqdm

from fileio import copy_atomic, write_text_atomic, write_with_atomic
from models.cli import DefaultsHelpFormatter, one_line
from models.data import PREPARED_INFO
from models.data.images import is_image_file, to_rgb
from models.data.loading import available_cores

FORMAT = "vibcam.prepared/1"
SAVE_OPTIONS = {"JPEG": {"optimize": False}, "PNG": {"compress_level": 1}}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m models.data.prepare",
        description="Write a copy of a dataset folder (sun397 or folder layout) with every image resized so its "
                    "short side is at most --short-side; same layout, same partition files.",
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("--data-root", type=Path, required=True, help="the dataset folder to copy")
    parser.add_argument("--out", type=Path, required=True, help="the new folder (must not exist yet)")
    parser.add_argument("--short-side", type=int, default=256,
                        help="largest short side in pixels (256 = the eval resize at 224 px; never upscales)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of resized JPEGs")
    parser.add_argument("--workers", type=int, default=0, help="processes (0: one per available core)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    return parser


def resized_size(width: int, height: int, short_side: int) -> tuple[int, int] | None:
    """The new (width, height), or None when the short side is already <= short_side."""
    short = min(width, height)
    if short <= short_side:
        return None
    factor = short_side / short
    return max(1, round(width * factor)), max(1, round(height * factor))


def prepare_image(job: tuple[Path, Path, int, int]) -> str:
    """Resize one image into `target`; returns 'resized', 'copied' or 'unreadable'."""
    source, target, short_side, quality = job
    try:
        with Image.open(source) as image:
            image_format = image.format
            rotated = image.getexif().get(0x0112, 1) not in (0, 1)
            new_size = resized_size(*image.size, short_side)
            if new_size is None and not rotated and image.mode == "RGB":
                kind = "copied"
            else:
                if new_size is not None and image.format == "JPEG":
                    image.draft("RGB", (new_size[0] * 2, new_size[1] * 2))  # as Image.thumbnail does
                image = ImageOps.exif_transpose(image)
                image.load()
                image = to_rgb(image)
                new_size = resized_size(*image.size, short_side)
                if new_size is not None:
                    image = image.resize(new_size, Image.Resampling.LANCZOS)
                options = dict(SAVE_OPTIONS.get(image_format or "", {}))
                if image_format == "JPEG":
                    options["quality"] = quality
                write_with_atomic(target, lambda path: image.save(path, format=image_format, **options),
                                  durable=False)  # the folder is renamed into place only when complete
                return "resized"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        kind = "unreadable"
    copy_atomic(source, target, durable=False)
    return kind


def plan(source: Path) -> tuple[list[Path], list[Path]]:
    """(image files, other files) under `source`, relative to it, sorted."""
    images, others = [], []
    for folder, subfolders, files in os.walk(source):
        subfolders.sort()
        for name in sorted(files):
            relative = (Path(folder) / name).relative_to(source)
            (images if is_image_file(relative) else others).append(relative)
    return images, others


def prepare(source: Path, out: Path, short_side: int = 256, quality: int = 90, workers: int = 0,
            progress: bool = True) -> dict:
    """Write the pre-resized copy of `source` to `out` (see the module docstring); returns its summary."""
    source, out = source.expanduser().resolve(), out.expanduser().resolve()
    if not source.is_dir():
        raise ValueError(f"--data-root {source} is not a folder")
    if out.exists():
        raise ValueError(f"--out {out} already exists; remove it or choose another folder")
    if out == source or source in out.parents:
        raise ValueError(f"--out {out} is inside --data-root {source}; choose a folder outside it")
    if short_side < 32:
        raise ValueError(f"--short-side must be >= 32, got {short_side}")
    if not 1 <= quality <= 100:
        raise ValueError(f"--quality must be 1-100, got {quality}")
    partial = out.with_name(f".{out.name}.partial")
    started = time.perf_counter()
    images, others = plan(source)
    if not images:
        raise ValueError(f"--data-root {source} holds no image files")
    for relative in others:
        (partial / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / relative, partial / relative)
    for folder in sorted({(partial / r).parent for r in images}):
        folder.mkdir(parents=True, exist_ok=True)
    todo = [(source / r, partial / r, short_side, quality) for r in images if not (partial / r).exists()]
    counts = {"resized": 0, "copied": 0, "unreadable": 0}
    bar = tqdm(total=len(images), initial=len(images) - len(todo), desc="preparing", unit="img",
               disable=not progress, dynamic_ncols=True)
    processes = workers or available_cores()
    if processes > 1 and len(todo) > 1:
        with multiprocessing.Pool(processes) as pool:
            for kind in pool.imap_unordered(prepare_image, todo, chunksize=8):
                counts[kind] += 1
                bar.update()
    else:
        for job in todo:
            counts[prepare_image(job)] += 1
            bar.update()
    bar.close()
    summary = {"format": FORMAT, "source": str(source), "short_side": short_side, "quality": quality,
               "images": len(images), "other_files": len(others), "this_run": counts,
               "seconds": round(time.perf_counter() - started, 1)}
    write_text_atomic(partial / PREPARED_INFO, json.dumps(summary, indent=2) + "\n")
    os.replace(partial, out)
    return summary


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = prepare(args.data_root, args.out, args.short_side, args.quality, args.workers, args.progress)
    except KeyboardInterrupt:
        print("interrupted; run the same command again to continue", file=sys.stderr)
        return 130
    except (ValueError, OSError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 1
    counts = summary["this_run"]
    print(f"wrote {args.out}: {summary['images']} images ({counts['resized']} resized to short side "
          f"{summary['short_side']}, {counts['copied']} already small enough, {counts['unreadable']} unreadable "
          f"copied unchanged) and {summary['other_files']} other files in {summary['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
