"""Images as raters receive them: freshly encoded bytes at one display size, with no metadata.

Blinding: the browser gets pixels only. Files are read through :func:`survey.package.resolve_inside`
(so a path can never leave its package), decoded, fitted into a fixed square box (the photo and both
maps of a pair come out the same size) and written to a *new* image without EXIF, ICC, comments or
text chunks. Streamlit then serves the bytes under ``/media/<hash>.jpg``: no file name, no path.

Format: JPEG at quality 92 without chroma subsampling. A noisy, photo-like 448 px overlay is ~300 kB
as PNG and takes ~150-250 ms to encode on our CPUs; as JPEG it is ~80 kB and ~25 ms, which is what
keeps the next pair "at once" on a phone connection. Both maps of a pair go through the same encoder, so the
format carries no hint. ``DISPLAY_FORMAT = "PNG"`` switches to lossless if a study needs it.

Speed: results are cached in memory keyed by path, modification time and size (a changed file is
re-read), and :func:`prefetch_folder` warms the cache for a whole package in one background thread,
so the next pair is ready before the rater clicks.
"""
from __future__ import annotations

import functools
import io
import os
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path

from survey.package import IMAGE_SUFFIXES, UnsafePathError, resolve_inside

DISPLAY_PX = 448  # longest side of every image shown (columns are ~350 CSS px at 1280 x 800)
DISPLAY_FORMAT = "JPEG"  # or "PNG" (lossless, ~4x larger, ~6x slower to encode; see the docstring)
JPEG_QUALITY = 92
CACHE_ENTRIES = 600  # 50-80 kB each at 448 px: under 50 MB, a whole study in practice

_prefetched_roots: set[Path] = set()
_prefetch_lock = threading.Lock()


def inside_package(root: Path, path: Path | str) -> Path:
    """``path`` (absolute, or relative to ``root``) checked by ``resolve_inside``; raises UnsafePathError."""
    path = Path(path)
    if path.is_absolute():
        try:
            relative = path.resolve().relative_to(Path(root).resolve())
        except ValueError:
            raise UnsafePathError(f"{path} is outside the package folder {root}") from None
        return resolve_inside(root, relative.as_posix())
    return resolve_inside(root, path.as_posix())


def encode_display(data: bytes, box: int = DISPLAY_PX, fmt: str = DISPLAY_FORMAT) -> bytes:
    """``data`` (PNG/JPEG bytes) fitted into a ``box`` x ``box`` square, as a metadata-free RGB image."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as source:
        source.load()
        rgb = source.convert("RGB")
    fitted = ImageOps.contain(rgb, (box, box), method=Image.Resampling.LANCZOS)
    clean = Image.new("RGB", fitted.size)  # a new image carries no .info (icc_profile, exif, text)
    clean.paste(fitted)
    out = io.BytesIO()
    if fmt == "JPEG":
        clean.save(out, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    else:
        clean.save(out, format="PNG")
    return out.getvalue()


@functools.lru_cache(maxsize=CACHE_ENTRIES)
def _cached_display(path: str, mtime_ns: int, size: int, box: int, fmt: str) -> bytes:
    del mtime_ns, size  # part of the cache key only: a rewritten file gets a new entry
    return encode_display(Path(path).read_bytes(), box, fmt)


def display_image(root: Path, path: Path | str, box: int = DISPLAY_PX) -> bytes:
    """The display bytes of an image of the package at ``root`` (cached; safe from any thread)."""
    safe = inside_package(root, path)
    stat = safe.stat()
    return _cached_display(str(safe), stat.st_mtime_ns, stat.st_size, box, DISPLAY_FORMAT)


def cache_info() -> functools._CacheInfo:
    """Hits and misses of the image cache (benchmarks and tests read it)."""
    return _cached_display.cache_info()


def clear_cache() -> None:
    _cached_display.cache_clear()
    with _prefetch_lock:
        _prefetched_roots.clear()


def _image_files(root: Path) -> Iterable[Path]:
    """Image files under ``root``, symlinks not followed, at most the cache size."""
    count = 0
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(IMAGE_SUFFIXES):
                yield Path(folder) / name
                count += 1
                if count >= CACHE_ENTRIES:
                    return


def _warm(root: Path, box: int) -> int:
    warmed = 0
    for path in _image_files(root):
        try:
            display_image(root, path, box)
            warmed += 1
        except (OSError, ValueError):  # a broken or escaping file: the page reports it when shown
            continue
    return warmed


def prefetch_folder(root: Path, box: int = DISPLAY_PX) -> Future | None:
    """Warms the cache for every image of a package once per process, in a background thread.

    Returns a Future with the number of images warmed (tests wait on it), or None when this folder
    was already scheduled. The thread is a daemon, so it never delays a server shutdown.
    """
    key = Path(root).resolve()
    with _prefetch_lock:
        if key in _prefetched_roots:
            return None
        _prefetched_roots.add(key)
    done: Future = Future()

    def run() -> None:
        try:
            done.set_result(_warm(key, box))
        except BaseException as exc:  # noqa: BLE001 (reported through the Future)
            done.set_exception(exc)

    threading.Thread(target=run, name="survey-prefetch", daemon=True).start()
    return done
