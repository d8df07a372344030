"""The one atomic-write helper: a reader sees the old file or the new one, never half, and nothing is
left behind when the writer fails."""
from __future__ import annotations

from pathlib import Path

import pytest

from fileio import atomic_path, copy_atomic, open_atomic, write_bytes_atomic, write_text_atomic, write_with_atomic


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_text_is_written_as_utf8_and_replaces_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "labels.csv"  # missing folders are created
    write_text_atomic(target, "old\n")
    write_text_atomic(target, "café, Zürich 東京\n")
    assert target.read_bytes() == "café, Zürich 東京\n".encode()
    assert _leftovers(target.parent, {"labels.csv"}) == []


def test_a_failing_writer_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "votes.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with open_atomic(target) as stream:
            stream.write("half of the new")
            raise RuntimeError("disk on fire")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path, {"votes.csv"}) == []

    def broken(path: Path) -> None:
        path.write_bytes(b"partial")
        raise OSError("no space left")

    with pytest.raises(OSError):
        write_with_atomic(target, broken)
    assert target.read_text() == "old" and _leftovers(tmp_path, {"votes.csv"}) == []


def test_the_new_content_is_invisible_until_the_block_ends(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    target.write_text("{}")
    with open_atomic(target) as stream:
        stream.write('{"new": true}')
        stream.flush()
        assert target.read_text() == "{}"  # a reader in the meantime sees the old file
    assert target.read_text() == '{"new": true}'


def test_path_writers_get_the_suffix_they_need_and_bytes_and_copies_work(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "map.png", suffix=".png") as temporary:
        assert temporary.suffix == ".png" and temporary.parent == tmp_path and temporary.name.startswith(".map.png.")
        temporary.write_bytes(b"\x89PNG")
    write_bytes_atomic(tmp_path / "blob.bin", b"\x00\x01")
    copy_atomic(tmp_path / "blob.bin", tmp_path / "copy.bin", durable=False)
    assert (tmp_path / "map.png").read_bytes() == b"\x89PNG"
    assert (tmp_path / "copy.bin").read_bytes() == b"\x00\x01"
    assert _leftovers(tmp_path, {"map.png", "blob.bin", "copy.bin"}) == []


def test_csv_newlines_and_modes(tmp_path: Path) -> None:
    with open_atomic(tmp_path / "a.csv", newline="") as stream:
        stream.write("a,b\r\n")
    assert (tmp_path / "a.csv").read_bytes() == b"a,b\r\n"
    with pytest.raises(ValueError, match="mode must start with 'w'"):
        with open_atomic(tmp_path / "a.csv", "a"):
            pass
