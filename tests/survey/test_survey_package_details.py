"""Study-package details that earlier tests left open (found by mutation testing): every rule of the
`predictions` field, the exact problem texts, and the fingerprint's documented byte format."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

from survey.package import (
    MANIFEST_NAME, PackageError, Problem, package_files, package_fingerprint, validate_manifest,
)
from survey.sample_package import make_sample_package


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("details") / "pkg"
    return make_sample_package(root, n_items=3, n_checks=1, with_masks=True)


def manifest_of(root: Path) -> dict:
    return json.loads((root / MANIFEST_NAME).read_text())


def problems_with(manifest: dict, predictions: object) -> list[tuple[str, str, str]]:
    item = manifest["items"][0]
    item["predictions"] = predictions
    problems = validate_manifest(manifest)
    return [(p.where, p.field, p.reason) for p in problems if p.field.startswith("predictions")]


ROW_RULE = 'must be {"label": str, "p": number in [0, 1]}'


def test_valid_predictions_pass(package: Path) -> None:
    good = {"vib": [{"label": "a", "p": 0.0}, {"label": "b", "p": 1}], "baseline": [{"label": "c", "p": 1.0}]}
    assert problems_with(manifest_of(package), good) == []
    assert problems_with(manifest_of(package), {}) == []


@pytest.mark.parametrize("row", [{"label": "a", "p": True}, {"label": "a", "p": 1.5},
                                 {"label": "a", "p": -0.1}, {"label": "a", "p": math.nan},
                                 {"label": "a", "p": math.inf}, {"label": 3, "p": 0.5},
                                 {"p": 0.5}, {"label": "a"}, {"label": "a", "p": "0.5"}, ["a", 0.5], None])
def test_each_bad_prediction_row_is_named_with_its_index(package: Path, row: object) -> None:
    m = manifest_of(package)
    item_id = m["items"][0]["id"]
    found = problems_with(m, {"vib": [{"label": "ok", "p": 0.5}, row]})
    assert found == [(item_id, "predictions.vib[1]", ROW_RULE)]


def test_bad_prediction_containers_and_methods(package: Path) -> None:
    m = manifest_of(package)
    item_id = m["items"][0]["id"]
    container = "must be an object {method: [{label, p}, ...]}"
    assert problems_with(m, [1]) == [(item_id, "predictions", container)]
    bad = {"lime": [], "vib": "x", "baseline": [{"label": "a", "p": 2}]}
    found = problems_with(manifest_of(package), bad)
    assert found == [(item_id, "predictions.lime", "unknown method 'lime'"),
                     (item_id, "predictions.vib", "must be a list of {label, p}"),
                     (item_id, "predictions.baseline[0]", ROW_RULE)]


def test_problem_and_error_texts() -> None:
    assert str(Problem("items[3]", "id", "bad")) == "items[3] / id: bad"
    assert str(Problem("example", "", "missing")) == "example: missing"
    assert str(Problem("i-1", "", "gone")) == "item i-1: gone"
    problems = [Problem("manifest", "name", "bad"), Problem("i-2", "image", "file not found: x.png")]
    error = PackageError(problems, Path("/data/pkg"))
    assert str(error) == ("2 problem(s) in study package /data/pkg:\n  - manifest / name: bad\n"
                          "  - item i-2 / image: file not found: x.png")
    assert error.problems == problems and error.problems is not problems
    assert str(PackageError(problems[:1])) == "1 problem(s) in study manifest:\n  - manifest / name: bad"


def reference_fingerprint(root: Path, manifest: dict, files: list[str]) -> str:
    """docs: sha256 of the sorted-key JSON manifest, then per file (sorted) NUL path NUL bytes."""
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    for relative in sorted(files):
        digest.update(b"\x00" + relative.encode("utf-8") + b"\x00" + (root / relative).read_bytes())
    return digest.hexdigest()


def test_fingerprint_format_and_what_it_depends_on(tmp_path: Path) -> None:
    root = make_sample_package(tmp_path / "pkg", n_items=2, n_checks=0, with_masks=True)
    m = manifest_of(root)
    files = package_files(root, m)
    item = m["items"][0]
    assert files == sorted(files) and item["image"] in files and item["mask"] in files
    assert set(item["maps"].values()) <= set(files) and len(files) == len(set(files))
    first = package_fingerprint(root, m)
    assert first == reference_fingerprint(root, m, files)
    reordered = json.loads(json.dumps(m), object_pairs_hook=lambda pairs: dict(reversed(pairs)))
    assert package_fingerprint(root, reordered) == first  # key order does not matter
    m["items"][0]["label"] = "café"  # non-ASCII text is hashed as UTF-8, not escaped
    assert package_fingerprint(root, m) == reference_fingerprint(root, m, files) != first
    big = root / item["image"]
    big.write_bytes(big.read_bytes() + b"\x00" * (1 << 20))  # more than one read block
    assert package_fingerprint(root, m) == reference_fingerprint(root, m, files)
