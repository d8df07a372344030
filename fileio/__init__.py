"""Atomic file writes: the one helper every package uses (models, cams, survey, analysis, scripts).

Why one: a reader (the rater app, a resumed training, an analyst re-running a report) must see either
the old file or the new one, never half of one, and a crash must not leave temporary files behind.
Each write goes to a unique temporary file in the target's folder (same file system, so the final
``os.replace`` is atomic), is flushed and fsynced, then renamed over the target; on any failure the
temporary file is removed and the target is untouched. Torch-free and dependency-free on purpose, so
the survey server and the analyst's notebook can use it.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

__all__ = ["atomic_path", "open_atomic", "write_text_atomic", "write_bytes_atomic", "copy_atomic",
           "write_with_atomic"]


def _fsync(path: Path) -> None:
    with open(path, "rb") as stream:
        os.fsync(stream.fileno())


@contextmanager
def atomic_path(target: str | Path, *, suffix: str = ".tmp", durable: bool = True) -> Iterator[Path]:
    """Yields a fresh temporary path beside ``target`` for a writer that wants a path (``torch.save``,
    ``fig.savefig``, ``image.save``); on a clean exit it is fsynced and renamed over ``target``.
    ``suffix`` lets writers that pick the format from the name (Pillow, matplotlib) see the right one.
    ``durable=False`` skips the fsync: still never half a file after a crash of the process, but a power
    cut may lose it; for bulk files that can be rebuilt (100k resized images)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        if durable:
            _fsync(temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def open_atomic(target: str | Path, mode: str = "w", *, encoding: str | None = "utf-8",
                newline: str | None = None) -> Iterator[IO]:
    """``open()`` for writing whose result appears at ``target`` only when the block ends without error.
    Text mode is UTF-8 unless told otherwise; ``newline=""`` for the csv module."""
    if not mode.startswith("w"):
        raise ValueError(f"open_atomic writes whole files: mode must start with 'w', not {mode!r}")
    binary = "b" in mode
    with atomic_path(target) as temporary:
        with open(temporary, mode, encoding=None if binary else encoding,
                  newline=None if binary else newline) as stream:
            yield stream


def write_text_atomic(target: str | Path, text: str, *, encoding: str = "utf-8", newline: str | None = None) -> None:
    """Writes ``text`` to ``target`` atomically (UTF-8 unless told otherwise)."""
    with open_atomic(target, "w", encoding=encoding, newline=newline) as stream:
        stream.write(text)


def write_bytes_atomic(target: str | Path, data: bytes) -> None:
    """Writes ``data`` to ``target`` atomically."""
    with open_atomic(target, "wb") as stream:
        stream.write(data)


def write_with_atomic(target: str | Path, write: Callable[[Path], object], *, suffix: str = ".tmp",
                      durable: bool = True) -> None:
    """Calls ``write(temporary_path)`` and moves the result onto ``target`` atomically."""
    with atomic_path(target, suffix=suffix, durable=durable) as temporary:
        write(temporary)


def copy_atomic(source: str | Path, target: str | Path, *, durable: bool = True) -> None:
    """Copies ``source`` to ``target`` so that ``target`` is never seen half-copied."""
    with atomic_path(target, durable=durable) as temporary:
        shutil.copyfile(source, temporary)
