"""The one package validator on ``"task": "distinction"`` packages: the documented example and the
builder's packages pass, every broken variant is refused with the item and field named, hostile
paths and revealing names are refused as in pairwise packages, and pairwise packages are unchanged."""
from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from survey.package import (
    DEFAULT_DISTINCTION_QUESTION,
    MANIFEST_NAME,
    Problem,
    manifest_task,
    validate_manifest,
    validate_package,
)
from testing.distinction_package import BASELINE, PROPOSED, distinction_manifest, make_distinction_package
from testing.packages import make_package

DOCS = Path(__file__).resolve().parents[2] / "docs" / "study-package.md"


def fields(problems: list[Problem]) -> set[tuple[str, str]]:
    return {(p.where, p.field) for p in problems}


@pytest.fixture(scope="module")
def valid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("distinction") / "pkg"
    make_distinction_package(root, n_items=4, n_checks=1)
    return root, json.loads((root / MANIFEST_NAME).read_text())


def documented_example() -> dict:
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index('## The distinction task'):]
    block = re.search(r"```json\n(.*?)```", section, re.DOTALL).group(1)
    return json.loads(block)


def test_documented_example_is_valid() -> None:
    manifest = documented_example()
    assert validate_manifest(manifest) == []
    assert manifest_task(manifest) == "distinction"


def test_builder_package_is_valid_with_files(valid: tuple[Path, dict]) -> None:
    root, manifest = valid
    assert validate_package(root) == []
    assert manifest_task(manifest) == "distinction" and "question" not in manifest
    assert DEFAULT_DISTINCTION_QUESTION and "{label}" not in DEFAULT_DISTINCTION_QUESTION
    for item in manifest["items"]:  # answer points at the rank-1 candidate of every method
        for method in (BASELINE, PROPOSED):
            assert item["candidates"][method][item["answer"][method]]["rank"] == 1


def test_pairwise_is_the_default_task(tmp_path: Path) -> None:
    manifest = json.loads((make_package(tmp_path / "p") / MANIFEST_NAME).read_text())
    assert "task" not in manifest and manifest_task(manifest) == "pairwise"
    assert validate_manifest({**manifest, "task": "pairwise"}) == []


def _first(m: dict) -> dict:
    return next(it for it in m["items"] if not it["attention_check"])


def _cands(m: dict, method: str = PROPOSED) -> list[dict]:
    return _first(m)["candidates"][method]


def _swap_ranks(m: dict) -> None:  # answer no longer points at rank 1
    listed = _cands(m)
    one = next(k for k, c in enumerate(listed) if c["rank"] == 1)
    other = (one + 1) % len(listed)
    listed[one]["rank"], listed[other]["rank"] = listed[other]["rank"], 1


def _duplicate_rank(m: dict) -> None:
    listed = _cands(m)
    two = next(c for c in listed if c["rank"] == 2)
    two["rank"] = 3


BROKEN: list[tuple[str, Callable[[dict], object], tuple[str, str] | None]] = [
    ("unknown task", lambda m: m.update(task="ranking"), ("manifest", "task")),
    ("question reveals the class", lambda m: m.update(question="Which map shows the {label}?"),
     ("manifest", "question")),
    ("empty question", lambda m: m.update(question="  "), ("manifest", "question")),
    ("no-preference button", lambda m: m.update(allow_no_preference=True), ("manifest", "allow_no_preference")),
    ("answer not rank 1", _swap_ranks, None),
    ("answer off by one", lambda m: _first(m)["answer"].update(
        {PROPOSED: (_first(m)["answer"][PROPOSED] + 1) % 4}), None),
    ("answer not an int", lambda m: _first(m)["answer"].update({PROPOSED: "0"}), None),
    ("answer missing a method", lambda m: _first(m)["answer"].pop(BASELINE), None),
    ("answer for an unknown method", lambda m: _first(m)["answer"].update(gradcam=0), None),
    ("no answer", lambda m: _first(m).pop("answer"), None),
    ("ranks repeat", _duplicate_rank, None),
    ("rank out of range", lambda m: _cands(m)[0].update(rank=5), None),
    ("rank is a bool", lambda m: _cands(m)[0].update(rank=True), None),
    ("labels repeat", lambda m: _cands(m)[1].update(label=" " + _cands(m)[0]["label"].upper()), None),
    ("empty label", lambda m: _cands(m)[0].update(label=""), None),
    ("candidate without map", lambda m: _cands(m)[0].pop("map"), None),
    ("unknown candidate key", lambda m: _cands(m)[0].update(method=PROPOSED), None),
    ("one candidate", lambda m: _first(m)["candidates"].update({PROPOSED: _cands(m)[:1]}), None),
    ("nine candidates", lambda m: _first(m)["candidates"].update(
        {PROPOSED: [dict(c, label=f"c{k}", rank=k + 1) for k, c in enumerate(_cands(m) * 3)][:9]}), None),
    ("lists of different lengths", lambda m: (_first(m)["candidates"].update(
        {PROPOSED: [dict(c, rank=r) for c, r in zip(sorted(_cands(m), key=lambda c: c["rank"])[:3], (1, 2, 3))]}),
        _first(m)["answer"].update({PROPOSED: 0})), None),
    ("method without candidates", lambda m: _first(m)["candidates"].pop(BASELINE), None),
    ("candidates for an unknown method", lambda m: _first(m)["candidates"].update(gradcam=_cands(m)), None),
    ("maps instead of candidates", lambda m: _first(m).update(maps={PROPOSED: "maps/a.png"}), None),
    ("expected on a check", lambda m: next(it for it in m["items"] if it["attention_check"]).update(
        expected=PROPOSED), None),
    ("climbing path", lambda m: _cands(m)[0].update(map="../outside.png"), None),
    ("absolute path", lambda m: _cands(m)[0].update(map="/etc/passwd.png"), None),
    ("backslash path", lambda m: _cands(m)[0].update(map="maps\\a.png"), None),
    ("path names a method", lambda m: _cands(m)[0].update(map=f"maps/{PROPOSED}_1.png"), None),
    ("id names a method", lambda m: _first(m).update(id=f"{BASELINE}-7"), None),
    ("not a list", lambda m: _first(m)["candidates"].update({PROPOSED: {"label": "x"}}), None),
    ("broken example", lambda m: m["example"]["candidates"][0].update(rank=9), ("example", "candidates[0].rank")),
    ("example with maps", lambda m: m["example"].update(maps={}), ("example", "maps")),
]


@pytest.mark.parametrize("name, breaks, where_field", BROKEN, ids=[b[0] for b in BROKEN])
def test_each_broken_variant_is_refused(valid: tuple[Path, dict], name: str, breaks, where_field) -> None:
    manifest = copy.deepcopy(valid[1])
    breaks(manifest)
    problems = validate_manifest(manifest)
    assert problems, f"{name}: accepted"
    if where_field is not None:
        assert where_field in fields(problems), problems
    else:  # the item is named, so the maker knows what to fix
        ids = {item.get("id") for item in manifest["items"]}
        assert all(p.where in ids or p.where.startswith("items[") for p in problems), problems


def test_candidate_count_is_exactly_four(tmp_path: Path) -> None:
    """HIVE's top-4: the analysis' chance level (1/4) rests on it, so 3 or 5 maps are refused."""
    assert validate_manifest(distinction_manifest(tmp_path / "k4", n_items=2, n_checks=0, n_candidates=4,
                                                  with_example=False)) == []
    for k in (3, 5):
        found = validate_manifest(distinction_manifest(tmp_path / f"k{k}", n_items=2, n_checks=0, n_candidates=k,
                                                       with_example=False))
        assert found and all(f.startswith("candidates") for _, f in fields(found)), found
        assert "exactly 4 candidates" in str(found)


def test_every_problem_is_reported_at_once(valid: tuple[Path, dict]) -> None:
    manifest = copy.deepcopy(valid[1])
    for _, breaks, _ in BROKEN[1:4]:
        breaks(manifest)
    _swap_ranks(manifest)
    found = fields(validate_manifest(manifest))
    assert {("manifest", "allow_no_preference"), ("manifest", "question")} <= found
    assert (_first(manifest)["id"], f"answer.{PROPOSED}") in found


def test_pairwise_items_refuse_distinction_keys(tmp_path: Path) -> None:
    manifest = json.loads((make_package(tmp_path / "p") / MANIFEST_NAME).read_text())
    manifest["items"][0]["answer"] = {"vib": 0}
    assert (manifest["items"][0]["id"], "answer") in fields(validate_manifest(manifest))


def test_files_of_candidates_are_checked(tmp_path: Path) -> None:
    root = make_distinction_package(tmp_path / "pkg", n_items=2, n_checks=0, with_example=False)
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    item = manifest["items"][0]
    outside = tmp_path / "secret.png"
    outside.write_bytes((root / item["image"]).read_bytes())
    (root / "maps" / "link.png").symlink_to(outside)  # a symlink leaving the package
    item["candidates"][PROPOSED][0]["map"] = "maps/link.png"
    item["candidates"][PROPOSED][1]["map"] = "maps/0123456789abcdef0123.png"  # missing
    small = root / "maps" / "small.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(small)
    item["candidates"][BASELINE][2]["map"] = "maps/small.png"  # another size than the item's maps
    (root / MANIFEST_NAME).write_text(json.dumps(manifest))
    problems = [p for p in validate_package(root) if p.where == item["id"]]
    by_field = {p.field: p.reason for p in problems}
    assert "outside the package" in by_field[f"candidates.{PROPOSED}[0].map"]
    assert "not found" in by_field[f"candidates.{PROPOSED}[1].map"]
    assert "same size" in by_field[f"candidates.{BASELINE}[2].map"]
