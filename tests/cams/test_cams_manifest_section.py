"""The manifest's `cams` section (survey.package.CamsSection): written and read as one typed object, and a
missing or renamed key is refused with a message that names the key and the fix, never defaulted."""

from __future__ import annotations

import copy

import pytest

from survey.package import (
    SCHEMA,
    CamsItem,
    CamsMethod,
    CamsSection,
    CatchTrial,
    PackageError,
    validate_manifest,
)

SECTION = CamsSection(
    target="truth",
    only="any",
    seed=0,
    image_size=64,
    data={"data": "synthetic", "image_size": 64},
    class_names=("red_circle", "green_square"),
    class_labels=("red circle", "green square"),
    methods={"vib": CamsMethod("cam", "resnet18", "vib", 0.01), "baseline": CamsMethod("cam", "resnet18", "baseline", None)},
    items={
        "i-1": CamsItem("val/0.png", 1, {"vib": 1, "baseline": 1}),
        "i-2": CamsItem("val/7.png", 0, {"vib": 0, "baseline": 1}, CatchTrial("vib", "wrong-class")),
    },
)


def manifest(section: dict | None) -> dict:
    maps = {"vib": "maps/a.png", "baseline": "maps/b.png"}
    data = {
        "schema": SCHEMA, "name": "demo", "created_at": "2026-01-01T00:00:00Z", "proposed": "vib",
        "baseline": "baseline", "methods": ["vib", "baseline"], "question": "Which map shows a {label}?",
        "instructions": "Pick one.",
        "items": [
            {"id": "i-1", "label": "green square", "image": "images/x.png", "maps": maps, "attention_check": False},
            {"id": "i-2", "label": "red circle", "image": "images/y.png", "maps": maps, "attention_check": True,
             "expected": "vib"},
        ],
    }
    if section is not None:
        data["cams"] = section
    return data


def test_round_trip_through_json() -> None:
    data = manifest(SECTION.to_json())
    assert validate_manifest(data) == []
    assert CamsSection.from_manifest(data) == SECTION
    assert list(SECTION.to_json()) == ["target", "only", "seed", "image_size", "data", "class_names",
                                       "class_labels", "methods", "items"]  # the documented keys
    assert SECTION.to_json()["items"]["i-2"]["check"] == {"expected": "vib", "kind": "wrong-class"}
    assert "check" not in SECTION.to_json()["items"]["i-1"]


def test_a_package_without_the_section_has_none() -> None:
    assert CamsSection.from_manifest(manifest(None)) is None
    assert validate_manifest(manifest(None)) == []


@pytest.mark.parametrize(
    "edit, field, reason",
    [
        (lambda s: s["items"]["i-1"].pop("targets"), "cams.items.i-1.targets", "missing"),
        (lambda s: s["items"]["i-1"].update(target_classes=s["items"]["i-1"].pop("targets")),
         "cams.items.i-1.target_classes", "unknown key"),
        (lambda s: s.pop("class_labels"), "cams.class_labels", "missing"),
        (lambda s: s["items"]["i-1"]["targets"].pop("baseline"), "cams.items.i-1.targets.baseline", "missing"),
        (lambda s: s["items"]["i-1"]["targets"].update(vib=7), "cams.items.i-1.targets.vib", "class index in [0, 1]"),
        (lambda s: s["items"].pop("i-2"), "cams.items.i-2", "missing"),
        (lambda s: s.update(target="best"), "cams.target", "truth, predicted"),
        (lambda s: s["methods"]["vib"].pop("cam"), "cams.methods.vib.cam", "missing"),
        (lambda s: s["items"]["i-2"].pop("check"), "cams.items.i-2.check", "missing: the item is an attention check"),
        (lambda s: s["items"]["i-1"].update(check={"expected": "vib", "kind": "flipped"}), "cams.items.i-1.check",
         "only attention checks"),
        (lambda s: s["items"]["i-2"]["check"].update(expected="baseline"), "cams.items.i-2.check.expected",
         "the item expects 'vib'"),
    ],
)
def test_a_missing_or_renamed_key_is_refused_naming_the_key_and_the_fix(edit, field, reason) -> None:
    section = copy.deepcopy(SECTION.to_json())
    edit(section)
    data = manifest(section)
    problems = validate_manifest(data)  # the one validator: the survey importer refuses it too
    assert any(p.field == field and reason in p.reason for p in problems), problems
    with pytest.raises(PackageError) as caught:
        CamsSection.from_manifest(data, "studies/demo")
    message = str(caught.value)
    assert "studies/demo" in message and field in message and "python -m cams.generate" in message
