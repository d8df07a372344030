"""The study-package validator (contract B): every problem found and reported, nothing escapes."""
from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path

import pytest

from survey.package import (
    MANIFEST_NAME, SCHEMA, PackageError, Problem, UnsafePathError, content_name, load_package,
    package_fingerprint, resolve_inside, validate_manifest, validate_package, write_manifest,
)
from testing.packages import make_package


@pytest.fixture()
def package(tmp_path: Path) -> Path:
    return make_package(tmp_path / "pkg", n_items=4, n_checks=1, with_masks=True)


def manifest_of(root: Path) -> dict:
    return json.loads((root / MANIFEST_NAME).read_text())


def rewrite(root: Path, manifest: dict) -> None:
    """Writes a manifest without validation, as a careless tool would."""
    (root / MANIFEST_NAME).write_text(json.dumps(manifest))


def fields(problems: list[Problem]) -> set[tuple[str, str]]:
    return {(p.where, p.field) for p in problems}


def test_sample_package_is_valid_and_loads(package: Path) -> None:
    assert validate_package(package) == []
    manifest = load_package(package)
    assert manifest["schema"] == SCHEMA
    assert sum(item["attention_check"] for item in manifest["items"]) == 1


def test_problem_str_names_item_field_and_reason() -> None:
    assert str(Problem("i-3fa2", "maps.vib", "file not found")) == "item i-3fa2 / maps.vib: file not found"
    assert str(Problem("manifest", "name", "bad")) == "manifest / name: bad"


def test_every_structural_problem_is_reported_not_only_the_first(package: Path) -> None:
    m = manifest_of(package)
    items = m["items"]
    regular = [it for it in items if not it["attention_check"]]
    check = next(it for it in items if it["attention_check"])
    m["question"] = "Which map is better?"                   # missing {label}
    m["proposed"] = "nope"                                   # not a method
    regular[0]["maps"].pop("vib")                            # map missing for a method
    regular[1]["maps"]["gradcam"] = regular[1]["maps"]["vib"]  # map for an unknown method
    regular[2]["id"] = regular[3]["id"]                      # duplicate id
    del check["expected"]                                    # attention check without expected
    regular[0]["extra"] = 1                                  # items are strict
    problems = validate_manifest(m)
    found = fields(problems)
    assert ("manifest", "question") in found
    assert ("manifest", "proposed") in found
    assert (regular[0]["id"], "maps.vib") in found
    assert (regular[1]["id"], "maps.gradcam") in found
    assert (regular[3]["id"], "id") in found and any("duplicate" in p.reason for p in problems)
    assert (check["id"], "expected") in found
    assert (regular[0]["id"], "extra") in found
    assert len(problems) >= 7
    rewrite(package, m)
    with pytest.raises(PackageError) as err:
        load_package(package)
    assert err.value.problems == validate_package(package)
    for problem in err.value.problems:  # the message lists every problem
        assert str(problem) in str(err.value)


@pytest.mark.parametrize("mutate, where_field", [
    (lambda m: m.update(schema="vibcam.study/2"), ("manifest", "schema")),
    (lambda m: m.update(name="bad name!"), ("manifest", "name")),
    (lambda m: m.update(created_at="yesterday"), ("manifest", "created_at")),
    (lambda m: m.update(methods=["vib"]), ("manifest", "methods")),
    (lambda m: m.update(methods=["baseline", "vib", "vib"]), ("manifest", "methods[2]")),
    (lambda m: m.update(baseline="vib"), ("manifest", "baseline")),
    (lambda m: m.update(instructions=""), ("manifest", "instructions")),
    (lambda m: m.update(allow_no_preference="yes"), ("manifest", "allow_no_preference")),
    (lambda m: m.update(repeats=-1), ("manifest", "repeats")),
    (lambda m: m.update(repeats=99), ("manifest", "repeats")),
    (lambda m: m.update(items=[]), ("manifest", "items")),
    (lambda m: m["example"]["maps"].pop("baseline"), ("example", "maps.baseline")),
])
def test_single_structural_problems(package: Path, mutate, where_field) -> None:
    m = manifest_of(package)
    mutate(m)
    assert where_field in fields(validate_manifest(m))


def test_unknown_top_level_keys_are_allowed(package: Path) -> None:
    m = manifest_of(package)
    m["future_key"] = {"anything": [1, 2]}
    assert validate_manifest(m) == []


def test_non_object_manifest_and_items() -> None:
    assert validate_manifest([1, 2])[0].where == "manifest"  # type: ignore[arg-type]
    problems = validate_manifest({"schema": SCHEMA, "items": ["x"]})
    assert ("items[0]", "") in fields(problems)


def test_attention_check_rules(package: Path) -> None:
    m = manifest_of(package)
    regular = next(it for it in m["items"] if not it["attention_check"])
    regular["expected"] = "vib"  # expected without being an attention check
    assert (regular["id"], "expected") in fields(validate_manifest(m))
    m2 = manifest_of(package)
    for item in m2["items"]:
        item["attention_check"], item["expected"] = True, "vib"
    assert any("attention checks" in p.reason or "not an attention check" in p.reason
               for p in validate_manifest(m2))


@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside.png", "maps/../../x.png", "C:\\x.png",
                                 "maps\\x.png", "", "maps//x.png", "./maps/x.png", "maps/x.gif"])
def test_unsafe_or_malformed_paths_are_refused(package: Path, bad: str) -> None:
    m = manifest_of(package)
    item = m["items"][0]
    item["image"] = bad
    assert (item["id"], "image") in fields(validate_manifest(m))
    rewrite(package, m)
    assert (item["id"], "image") in fields(validate_package(package))


def test_paths_and_ids_that_name_a_method_are_refused(package: Path) -> None:
    m = manifest_of(package)
    item = m["items"][0]
    os.replace(package / item["maps"]["vib"], package / "maps" / "vib_map.png")
    item["maps"]["vib"] = "maps/vib_map.png"
    item["id"] = "baseline-7"
    found = fields(validate_manifest(m))
    assert ("baseline-7", "maps.vib") in found and ("baseline-7", "id") in found


def test_resolve_inside() -> None:
    root = Path("/tmp/some/pkg")
    assert resolve_inside(root, "maps/a.png") == Path("/tmp/some/pkg/maps/a.png").resolve()
    for bad in ["../a.png", "/abs.png", "a/../../b.png", "", "a\\b.png", "x\x00.png"]:
        with pytest.raises(UnsafePathError):
            resolve_inside(root, bad)


def test_symlink_escape_is_refused(package: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes((package / manifest_of(package)["items"][0]["image"]).read_bytes())
    (package / "evil").symlink_to(tmp_path)  # a folder link pointing outside the package
    m = manifest_of(package)
    item = m["items"][0]
    item["image"] = "evil/secret.png"
    rewrite(package, m)
    assert validate_manifest(m) == []  # structurally fine: only the file check can see the escape
    problems = validate_package(package)
    assert [(p.where, p.field) for p in problems] == [(item["id"], "image")]
    assert "outside the package" in problems[0].reason
    with pytest.raises(UnsafePathError):
        resolve_inside(package, "evil/secret.png")
    inner = package / "inner.png"  # a link that stays inside is fine
    inner.symlink_to(package / m["items"][1]["image"])
    assert resolve_inside(package, "inner.png") == (package / m["items"][1]["image"]).resolve()


def test_missing_corrupt_and_wrong_images_all_reported(package: Path) -> None:
    m = manifest_of(package)
    a, b, c, d = (it for it in m["items"] if not it["attention_check"])
    (package / a["maps"]["vib"]).unlink()                               # missing
    (package / b["image"]).write_bytes(b"\x89PNG\r\n\x1a\nnot really")   # corrupt
    data = (package / c["image"]).read_bytes()
    (package / c["image"]).write_bytes(data[: len(data) // 2])          # truncated
    from PIL import Image
    Image.new("RGB", (7, 7)).save(package / d["mask"], format="PNG")    # mask: wrong mode and size
    problems = validate_package(package)
    found = fields(problems)
    assert (a["id"], "maps.vib") in found
    assert (b["id"], "image") in found
    assert (c["id"], "image") in found
    mask_reasons = [p.reason for p in problems if (p.where, p.field) == (d["id"], "mask")]
    assert any("L mode" in r for r in mask_reasons) and any("7x7" in r for r in mask_reasons)
    assert validate_package(package, decode_images=False) == [
        p for p in problems if (p.where, p.field) == (a["id"], "maps.vib")]


def test_gif_content_under_png_name_is_refused(package: Path) -> None:
    from PIL import Image
    m = manifest_of(package)
    item = m["items"][0]
    Image.new("RGB", (48, 48)).save(package / item["image"], format="GIF")
    problems = validate_package(package)
    assert any(p.where == item["id"] and "GIF" in p.reason for p in problems)


def test_file_problems_reported_alongside_structural_ones(package: Path) -> None:
    m = manifest_of(package)
    m["question"] = "no placeholder"
    item = m["items"][0]
    (package / item["image"]).unlink()
    rewrite(package, m)
    found = fields(validate_package(package))
    assert ("manifest", "question") in found and (item["id"], "image") in found


def test_missing_folder_manifest_or_bad_json(tmp_path: Path) -> None:
    assert "does not exist" in validate_package(tmp_path / "nope")[0].reason
    assert "not found" in validate_package(tmp_path)[0].reason
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    assert "not valid UTF-8 JSON" in validate_package(tmp_path)[0].reason


def test_content_name_is_sha256_prefix() -> None:
    data = b"overlay bytes"
    assert content_name(data, ".png") == hashlib.sha256(data).hexdigest()[:20] + ".png"
    assert content_name(data, "png") == content_name(data, ".png")
    with pytest.raises(ValueError):
        content_name(data, "./x")


def test_write_manifest_validates_and_is_atomic(package: Path) -> None:
    m = manifest_of(package)
    before = (package / MANIFEST_NAME).read_bytes()
    broken = copy.deepcopy(m)
    broken["methods"] = ["only-one"]
    with pytest.raises(PackageError):
        write_manifest(package, broken)
    assert (package / MANIFEST_NAME).read_bytes() == before  # untouched on failure
    m["name"] = "renamed"
    write_manifest(package, m)
    assert manifest_of(package)["name"] == "renamed"
    assert [p.name for p in package.iterdir() if p.name.startswith(".manifest-")] == []


def test_fingerprint_changes_with_any_file(package: Path) -> None:
    m = manifest_of(package)
    first = package_fingerprint(package, m)
    assert package_fingerprint(package, m) == first
    path = package / m["items"][0]["maps"]["vib"]
    path.write_bytes(path.read_bytes() + b"\x00")
    assert package_fingerprint(package, m) != first


def test_documented_example_manifest_is_valid() -> None:
    """docs/study-package.md's full example must stay a valid manifest."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "study-package.md").read_text()
    example = json.loads(text.split("```json\n")[1].split("```")[0])
    assert validate_manifest(example) == []
    assert example["schema"] == SCHEMA
