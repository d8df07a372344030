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
from testing.packages import make_package


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("details") / "pkg"
    return make_package(root, n_items=3, n_checks=1, with_masks=True)


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
    root = make_package(tmp_path / "pkg", n_items=2, n_checks=0, with_masks=True)
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


# ------------------------------------------------------------------- file checks, exact texts
def _fresh(tmp_path: Path) -> tuple[Path, dict]:
    root = make_package(tmp_path / "pkg", n_items=2, n_checks=0, with_masks=True)
    return root, manifest_of(root)


def _problems(root: Path, manifest: dict) -> list[tuple[str, str, str]]:
    from survey.package import validate_package

    (root / MANIFEST_NAME).write_text(json.dumps(manifest))
    return [(p.where, p.field, p.reason) for p in validate_package(root)]


def _png(path: Path, size: tuple[int, int], mode: str = "RGB") -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size).save(path, format="PNG")


def test_maps_of_one_item_must_share_a_size(tmp_path: Path) -> None:
    root, m = _fresh(tmp_path)
    item = m["items"][0]
    first, second = list(item["maps"])
    _png(root / "maps" / "odd.png", (40, 30))
    item["maps"][second] = "maps/odd.png"
    assert _problems(root, m) == [(item["id"], f"maps.{second}",
                                   "map is 40x30 but another map of this item is 48x48; "
                                   "the pair is shown at the same size")]
    item["maps"][first], item["maps"][second] = "maps/odd.png", m["items"][1]["maps"][first]
    assert _problems(root, m) == [(item["id"], f"maps.{second}",
                                   "map is 48x48 but another map of this item is 40x30; "
                                   "the pair is shown at the same size")]


def test_mask_must_match_a_non_square_image(tmp_path: Path) -> None:
    root, m = _fresh(tmp_path)
    item = m["items"][0]
    _png(root / "images" / "wide.png", (50, 40))
    _png(root / "masks" / "small.png", (30, 20), mode="L")
    item["image"], item["mask"] = "images/wide.png", "masks/small.png"
    assert _problems(root, m) == [(item["id"], "mask", "mask is 30x20 but the image is 50x40")]


def test_every_missing_escaping_or_broken_file_is_reported_with_its_path(tmp_path: Path) -> None:
    root, m = _fresh(tmp_path)
    (tmp_path / "outside").mkdir()
    _png(tmp_path / "outside" / "x.png", (48, 48))
    (root / "out").symlink_to(tmp_path / "outside")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    _png(root / "anim.png", (48, 48))
    from PIL import Image

    Image.new("RGB", (48, 48)).save(root / "gif.png", format="GIF")
    first, second = m["items"]
    first["image"], first["mask"] = "out/x.png", "masks/none.png"
    second["image"] = "broken.png"
    second["maps"][list(second["maps"])[0]] = "gif.png"
    found = {(w, f): r for w, f, r in _problems(root, m)}
    assert "outside the package" in found[(first["id"], "image")]
    assert found[(first["id"], "mask")] == "file not found: masks/none.png"
    assert found[(second["id"], "image")].startswith("broken.png: does not decode as an image (")
    gif_field = f"maps.{list(second['maps'])[0]}"
    assert found[(second["id"], gif_field)] == "gif.png: GIF image; only PNG and JPEG are allowed"


def test_heatmaps_are_checked_to_exist_but_not_decoded_as_images(tmp_path: Path) -> None:
    import numpy as np

    root, m = _fresh(tmp_path)
    item = m["items"][0]
    (root / "heatmaps").mkdir()
    for method in item["maps"]:
        np.save(root / "heatmaps" / f"h{len(method)}{method[0]}.npy", np.zeros((48, 48), np.float16))
    item["heatmaps"] = {method: f"heatmaps/h{len(method)}{method[0]}.npy" for method in item["maps"]}
    assert _problems(root, m) == []
    item["heatmaps"][next(iter(item["maps"]))] = "heatmaps/gone.npy"
    assert [(f, r) for _, f, r in _problems(root, m)] == [
        (f"heatmaps.{next(iter(item['maps']))}", "file not found: heatmaps/gone.npy")]


def test_content_name_suffixes() -> None:
    from survey.package import content_name

    digest = hashlib.sha256(b"abc").hexdigest()[:20]
    assert content_name(b"abc", ".PNG") == digest + ".png"
    assert content_name(b"abc", "npy") == digest + ".npy"
    for bad in (".p-g", ".", ".toolongsuffix"):
        with pytest.raises(ValueError, match=r"bad file suffix .*; expected something like '\.png'"):
            content_name(b"abc", bad)


# ----------------------------------------------------------------------- path texts, exactly
SYNTAX = [
    (3, "must be a relative path string, got int"),
    ("", "empty path"),
    ("a\x00b.png", "path contains a NUL character"),
    ("maps\\a.png", "use '/' as the separator (backslash found)"),
    ("/etc/passwd", "absolute path '/etc/passwd' not allowed; paths are relative to the package folder"),
    ("C:x.png", "absolute path 'C:x.png' not allowed; paths are relative to the package folder"),  # a drive
    ("../x.png", "path '../x.png' climbs out of the package with '..'"),
    ("maps//x.png", "path 'maps//x.png' has empty or '.' components; write it plainly like 'maps/x.png'"),
]


@pytest.mark.parametrize(("value", "reason"), SYNTAX)
def test_each_unsafe_path_has_its_own_reason(package: Path, value: object, reason: str) -> None:
    from survey.package import UnsafePathError, resolve_inside

    with pytest.raises(UnsafePathError) as error:
        resolve_inside(package, value)  # type: ignore[arg-type]
    assert str(error.value) == reason
    m = manifest_of(package)
    item = m["items"][0]
    item["image"] = value
    assert (item["id"], "image", reason) in [(p.where, p.field, p.reason) for p in validate_manifest(m)]


def test_path_suffix_and_method_name_texts(package: Path) -> None:
    m = manifest_of(package)
    item = m["items"][0]
    item["image"] = "images/photo.bmp"
    item["maps"]["vib"] = "maps/vib_map.png"
    found = {(p.field, p.reason) for p in validate_manifest(m) if p.where == item["id"]}
    assert ("image", "'images/photo.bmp' must end with one of .png, .jpg, .jpeg") in found
    assert ("maps.vib", "path 'maps/vib_map.png' names method 'vib'; use survey.package.content_name()") in found


def test_map_sizes_are_compared_within_an_item_not_across_items(tmp_path: Path) -> None:
    root, m = _fresh(tmp_path)
    second = m["items"][1]
    for index, method in enumerate(second["maps"]):
        _png(root / "maps" / f"small{index}.png", (40, 30))
        second["maps"][method] = f"maps/small{index}.png"
    assert _problems(root, m) == []  # item 1's maps agree with each other; item 0's are another size
