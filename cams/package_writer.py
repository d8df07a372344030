"""A study package folder that is either complete or absent.

Everything is written into a hidden temporary folder beside the destination; `commit()` checks the
result with the survey's own validator and renames it into place. Any error (or Ctrl-C) before
that removes the temporary folder, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np

from cams.loading import StudyInputError
from survey.package import MANIFEST_NAME, PackageError, content_name, validate_package, write_manifest


def check_destination(out: Path, overwrite: bool) -> None:
    """Refuse an existing `out` unless `overwrite`; even then, only replace a folder that is empty
    or holds a study package (never, say, a home folder given by mistake)."""
    if not out.exists() and not out.is_symlink():
        existing = next(p for p in out.parents if p.exists())
        if not existing.is_dir():
            raise StudyInputError(f"cannot create {out}: {existing} is not a folder")
        return
    if not overwrite:
        raise StudyInputError(f"{out} already exists; pass --overwrite to replace it or choose another --out")
    if not out.is_dir() or out.is_symlink():
        raise StudyInputError(f"{out} exists and is not a folder; remove it or choose another --out")
    if any(out.iterdir()) and not (out / MANIFEST_NAME).is_file():
        raise StudyInputError(
            f"{out} is not empty and holds no {MANIFEST_NAME}; --overwrite only replaces "
            "an earlier study package, so remove it yourself or choose another --out"
        )


class PackageFolder:
    """Context manager: `with PackageFolder(out, overwrite) as pkg: pkg.write_png(...); pkg.commit(m)`."""

    def __init__(self, out: Path, overwrite: bool = False) -> None:
        self.out = Path(out).absolute()
        self.overwrite = overwrite
        self.root: Path | None = None
        self.committed = False
        self.created_parents: list[Path] = []

    def __enter__(self) -> Self:
        check_destination(self.out, self.overwrite)
        self.created_parents = [p for p in self.out.parents if not p.exists()]  # e.g. studies/ on a first run
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.tmp-", dir=self.out.parent))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.root is not None and self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)
        if not self.committed:
            for folder in self.created_parents:  # innermost first; only the empty ones we made
                try:
                    folder.rmdir()
                except OSError:
                    break

    def write(self, folder: str, data: bytes, suffix: str) -> str:
        """Store `data` under `folder/<sha256 name><suffix>` (once per content); the relative path."""
        assert self.root is not None, "use PackageFolder as a context manager"
        relative = f"{folder}/{content_name(data, suffix)}"
        path = self.root / relative
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return relative

    def write_npy(self, folder: str, array: np.ndarray) -> str:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        return self.write(folder, buffer.getvalue(), ".npy")

    def commit(self, manifest: dict) -> Path:
        """Write the manifest, validate the whole package as the survey will, and move it into place."""
        assert self.root is not None, "use PackageFolder as a context manager"
        write_manifest(self.root, manifest)
        problems = validate_package(self.root)
        if problems:
            raise PackageError(problems, self.out)
        check_destination(self.out, self.overwrite)  # the world may have changed while we worked
        if self.out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.old-", dir=self.out.parent))
            os.replace(self.out, old / "package")
            os.replace(self.root, self.out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.root, self.out)
        self.committed = True
        return self.out
