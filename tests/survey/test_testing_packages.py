"""The one package builder of the test-support package (testing/packages.py): every option that its
callers (survey tests, UI tests, benchmarks) rely on gives a package the validator accepts and that
says what was asked for."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from survey.db import get_engine
from survey.package import load_package, package_files, package_fingerprint, validate_package
from testing.packages import PROPOSED, SECRET_METHODS, make_package, make_study
from testing.reveal import vote_count


def test_options_are_honoured_and_the_package_is_valid(tmp_path: Path) -> None:
    labels = ("red house", "blue lake")
    root = make_package(tmp_path / "pkg", name="three", n_items=5, n_checks=2, proposed="ours",
                        baseline="theirs", methods=("theirs", "ours", "third"), labels=labels, image_size=24,
                        allow_no_preference=True, repeats=2, with_example=False, with_masks=True, seed=5)
    assert validate_package(root) == []
    manifest = load_package(root)
    assert (manifest["name"], manifest["proposed"], manifest["baseline"]) == ("three", "ours", "theirs")
    assert manifest["methods"] == ["theirs", "ours", "third"] and manifest["repeats"] == 2
    assert manifest["allow_no_preference"] is True and "example" not in manifest
    items = manifest["items"]
    checks = [item for item in items if item["attention_check"]]
    assert len(items) == 7 and len(checks) == 2 and all(item["expected"] == "ours" for item in checks)
    assert all(set(item["maps"]) == {"theirs", "ours", "third"} and "mask" in item for item in items)
    assert sorted(item["label"] for item in items) == sorted([*labels * 3, labels[0]])
    with Image.open(root / items[0]["image"]) as image:
        assert image.size == (24, 24)


def test_same_seed_same_package_and_photographic_images_weigh_more(tmp_path: Path) -> None:
    def made(folder: str, **options: object) -> Path:
        return make_package(tmp_path / folder, n_items=3, image_size=96, **options)

    def weight(root: Path) -> int:
        return sum((root / f).stat().st_size for f in package_files(root, load_package(root)))

    first, again, other = made("a", seed=1), made("b", seed=1), made("c", seed=2)
    fingerprint = [package_fingerprint(r, {**load_package(r), "created_at": ""}) for r in (first, again, other)]
    assert fingerprint[0] == fingerprint[1] != fingerprint[2]
    photo = made("photo", seed=1, photographic=True)
    assert validate_package(photo) == [] and weight(photo) > 2 * weight(first)


def test_make_study_imports_a_package_with_searchable_method_names(tmp_path: Path, sqlite_url: str) -> None:
    study = make_study(tmp_path, sqlite_url, name="s1", n_items=3, n_checks=1)
    manifest = load_package(study.package)
    assert tuple(manifest["methods"]) == SECRET_METHODS and manifest["proposed"] == PROPOSED
    assert study.n_trials == 4 and vote_count(get_engine(study.url), "s1") == 0
    secrets = study.secrets()
    assert set(SECRET_METHODS) <= set(secrets) and str(study.package) in secrets
    assert all(f in secrets for f in package_files(study.package, manifest))
