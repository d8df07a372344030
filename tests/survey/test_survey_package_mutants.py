"""The study-package validator on hostile manifests (found by mutation testing, issue 16): for each
broken key of a pairwise or distinction manifest or of its ``cams`` section, the *whole* list of problems
the maker sees, so every message names the item and field, says what is wrong and how to fix it, and
nothing else is reported (no noise, no crash); the ``cams`` section round trip; which files a package
references; and the texts of the errors around reading and writing a package.

The manifests are built in memory (no files): ``validate_manifest`` never touches the disk."""
from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from survey.package import (
    MANIFEST_NAME,
    SCHEMA,
    CamsCandidate,
    CamsSection,
    CatchTrial,
    PackageError,
    Problem,
    load_package,
    manifest_task,
    package_files,
    validate_manifest,
    validate_package,
    write_manifest,
)

FIX = "; regenerate the package with python -m cams.generate"


def C(text: str) -> str:
    """A problem of the ``cams`` section: every one ends with how to fix it."""
    return text + FIX


def _maps(n: object) -> dict:
    return {"vib": f"maps/{n}a.png", "baseline": f"maps/{n}b.png"}


def pairwise() -> dict:
    """A valid pairwise manifest with every optional part (example, mask, heatmaps, predictions, cams)."""
    return {
        "schema": SCHEMA, "name": "demo", "created_at": "2026-01-01T00:00:00Z", "proposed": "vib",
        "baseline": "baseline", "methods": ["vib", "baseline"], "question": "Which map shows the {label}?",
        "instructions": "Pick one.", "consent": "", "allow_no_preference": True, "repeats": 1,
        "provenance": {"seed": 0},
        "example": {"label": "cat", "image": "images/e.png", "maps": _maps("e")},
        "items": [
            {"id": "i-1", "label": "cat", "image": "images/1.png", "maps": _maps(1), "mask": "masks/1.png",
             "heatmaps": {"vib": "heat/1a.npy", "baseline": "heat/1b.npy"},
             "predictions": {"vib": [{"label": "cat", "p": 0.9}]}, "attention_check": False},
            {"id": "i-2", "label": "dog", "image": "images/2.png", "maps": _maps(2), "attention_check": True,
             "expected": "vib"},
            {"id": "i-3", "label": "dog", "image": "images/3.png", "maps": _maps(3)},
        ],
        "cams": {
            "target": "truth", "only": "any", "seed": 0, "image_size": 64, "data": {"data": "synthetic"},
            "class_names": ["cat_x", "dog_x"], "class_labels": ["cat", "dog"],
            "methods": {"vib": {"cam": "cam", "arch": "resnet18", "head": "vib", "beta": 0.01},
                        "baseline": {"cam": "cam", "arch": "resnet18", "head": "baseline", "beta": None}},
            "items": {"i-1": {"sample": "val/1.png", "label_index": 0, "targets": {"vib": 0, "baseline": 0}},
                      "i-2": {"sample": "val/2.png", "label_index": 1, "targets": {"vib": 1, "baseline": 1},
                              "check": {"expected": "vib", "kind": "wrong-class"}},
                      "i-3": {"sample": "val/3.png", "label_index": 1, "targets": {"vib": 1, "baseline": 0}}},
        },
    }


LABELS = ["cat", "dog", "fox", "owl", "elk"]


def _candidates(n: int, classes: list[int]) -> list[dict]:
    """Four candidates showing ``LABELS[c]`` for c in ``classes``; the first is rank 1."""
    return [{"label": LABELS[c], "map": f"maps/{n}-{k}.png", "rank": k + 1} for k, c in enumerate(classes)]


def _cams_candidates(n: int, classes: list[int], heatmaps: bool) -> list[dict]:
    return [{"class": c, **({"heatmap": f"heat/{n}-{k}.npy"} if heatmaps else {})}
            for k, c in enumerate(classes)]


def distinction() -> dict:
    """A valid distinction manifest: an example, a regular item, an attention check, a cams section."""
    m = pairwise()
    del m["question"], m["allow_no_preference"]
    m["task"] = "distinction"
    m["example"] = {"label": "cat", "image": "images/e.png", "candidates": _candidates(0, [0, 1, 2, 3])}
    m["items"] = [
        {"id": "d-1", "label": "cat", "image": "images/1.png", "mask": "masks/1.png",
         "candidates": {"vib": _candidates(1, [0, 1, 2, 3]), "baseline": _candidates(2, [1, 0, 2, 4])},
         "answer": {"vib": 0, "baseline": 0}, "attention_check": False},
        {"id": "d-2", "label": "dog", "image": "images/2.png",
         "candidates": {"vib": _candidates(3, [1, 2, 3, 4]), "baseline": _candidates(4, [1, 3, 2, 0])},
         "answer": {"vib": 0, "baseline": 0}, "attention_check": True},
    ]
    m["cams"].update(target="predicted", class_names=[f"{x}_x" for x in LABELS], class_labels=list(LABELS))
    m["cams"]["items"] = {
        "d-1": {"sample": "val/1.png", "label_index": 0, "targets": {"vib": 0, "baseline": 1},
                "candidates": {"vib": _cams_candidates(1, [0, 1, 2, 3], True),
                               "baseline": _cams_candidates(2, [1, 0, 2, 4], True)}},
        "d-2": {"sample": "val/2.png", "label_index": 1, "targets": {"vib": 1, "baseline": 1},
                "check": {"kind": "on-object"},
                "candidates": {"vib": _cams_candidates(3, [1, 2, 3, 4], False),
                               "baseline": _cams_candidates(4, [1, 3, 2, 0], False)}},
    }
    return m


def it(m: dict, k: int) -> dict:
    return m["items"][k]


def ci(m: dict, item_id: str) -> dict:
    return m["cams"]["items"][item_id]


def cm(m: dict, method: str) -> dict:
    return m["cams"]["methods"][method]


def cc(m: dict, item_id: str, method: str) -> list:
    return m["cams"]["items"][item_id]["candidates"][method]


def ic(m: dict, k: int, method: str) -> list:
    return m["items"][k]["candidates"][method]


def problems(manifest: dict) -> list[str]:
    return [str(p) for p in validate_manifest(manifest)]


def test_the_base_manifests_are_valid() -> None:
    assert validate_manifest(pairwise()) == [] and validate_manifest(distinction()) == []
    assert manifest_task(pairwise()) == "pairwise" and manifest_task(distinction()) == "distinction"


Case = tuple[str, Callable[[], dict], Callable[[dict], object], list[str]]

# No usable methods list (missing, or not a list): every check that names a method reports it.
NO_METHODS = [
    'manifest / methods: must be a list of at least 2 method names',
    "manifest / proposed: must be one of the methods [], got 'vib'",
    "manifest / baseline: must be one of the methods [], got 'baseline'",
    "example / maps.vib: unknown method 'vib'; methods are []",
    "example / maps.baseline: unknown method 'baseline'; methods are []",
    C('manifest / cams.methods.baseline: unknown key (expected )'),
    C('manifest / cams.methods.vib: unknown key (expected )'),
    C('manifest / cams.items.i-1.targets.baseline: unknown key (expected )'),
    C('manifest / cams.items.i-1.targets.vib: unknown key (expected )'),
    C('manifest / cams.items.i-2.targets.baseline: unknown key (expected )'),
    C('manifest / cams.items.i-2.targets.vib: unknown key (expected )'),
    C('manifest / cams.items.i-2.check.expected: must be one of the methods []'),
    C('manifest / cams.items.i-3.targets.baseline: unknown key (expected )'),
    C('manifest / cams.items.i-3.targets.vib: unknown key (expected )'),
    "item i-1 / heatmaps.vib: unknown method 'vib'; methods are []",
    "item i-1 / heatmaps.baseline: unknown method 'baseline'; methods are []",
    "item i-1 / predictions.vib: unknown method 'vib'",
    "item i-1 / maps.vib: unknown method 'vib'; methods are []",
    "item i-1 / maps.baseline: unknown method 'baseline'; methods are []",
    "item i-2 / maps.vib: unknown method 'vib'; methods are []",
    "item i-2 / maps.baseline: unknown method 'baseline'; methods are []",
    "item i-2 / expected: an attention check needs expected: one of [], got 'vib'",
    "item i-3 / maps.vib: unknown method 'vib'; methods are []",
    "item i-3 / maps.baseline: unknown method 'baseline'; methods are []",
]

TOP_LEVEL_AND_ITEMS: list[Case] = [
    ('task unknown', pairwise,
     lambda m: m.update(task="ranking"),
     ["manifest / task: must be one of ['pairwise', 'distinction'], got 'ranking'"]),
    ('task pairwise explicit', pairwise,
     lambda m: m.update(task="pairwise"),
     []),
    ('schema missing', pairwise,
     lambda m: m.pop("schema"),
     ["manifest / schema: must be 'vibcam.study/1', got None"]),
    ('schema other', pairwise,
     lambda m: m.update(schema="vibcam.study/2"),
     ["manifest / schema: must be 'vibcam.study/1', got 'vibcam.study/2'"]),
    ('name with space', pairwise,
     lambda m: m.update(name="bad name!"),
     ["manifest / name: must match [A-Za-z0-9_-]{1,64}, got 'bad name!'"]),
    ('name too long', pairwise,
     lambda m: m.update(name="n" * 65),
     [("manifest / name: must match [A-Za-z0-9_-]{1,64}, got 'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"
       "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn'")]),
    ('name longest', pairwise,
     lambda m: m.update(name="n" * 64),
     []),
    ('name not a string', pairwise,
     lambda m: m.update(name=7),
     ['manifest / name: must match [A-Za-z0-9_-]{1,64}, got 7']),
    ('name missing', pairwise,
     lambda m: m.pop("name"),
     ['manifest / name: must match [A-Za-z0-9_-]{1,64}, got None']),
    ('created_at not a date', pairwise,
     lambda m: m.update(created_at="yesterday"),
     ["manifest / created_at: must be an ISO 8601 date-time string, got 'yesterday'"]),
    ('created_at a number', pairwise,
     lambda m: m.update(created_at=20260101),
     ['manifest / created_at: must be an ISO 8601 date-time string, got 20260101']),
    ('created_at missing', pairwise,
     lambda m: m.pop("created_at"),
     ['manifest / created_at: must be an ISO 8601 date-time string, got None']),
    ('methods missing', pairwise,
     lambda m: m.pop("methods"),
     NO_METHODS),
    ('methods one', pairwise,
     lambda m: m.update(methods=["vib"]),
     ['manifest / methods: must be a list of at least 2 method names',
      "manifest / proposed: must be one of the methods [], got 'vib'",
      "manifest / baseline: must be one of the methods [], got 'baseline'",
      "example / maps.vib: unknown method 'vib'; methods are []",
      "example / maps.baseline: unknown method 'baseline'; methods are []",
      C('manifest / cams.methods.baseline: unknown key (expected vib)'),
      C('manifest / cams.items.i-1.targets.baseline: unknown key (expected vib)'),
      C('manifest / cams.items.i-2.targets.baseline: unknown key (expected vib)'),
      C('manifest / cams.items.i-3.targets.baseline: unknown key (expected vib)'),
      "item i-1 / heatmaps.vib: unknown method 'vib'; methods are []",
      "item i-1 / heatmaps.baseline: unknown method 'baseline'; methods are []",
      "item i-1 / predictions.vib: unknown method 'vib'",
      "item i-1 / maps.vib: unknown method 'vib'; methods are []",
      "item i-1 / maps.baseline: unknown method 'baseline'; methods are []",
      "item i-2 / maps.vib: unknown method 'vib'; methods are []",
      "item i-2 / maps.baseline: unknown method 'baseline'; methods are []",
      "item i-2 / expected: an attention check needs expected: one of [], got 'vib'",
      "item i-3 / maps.vib: unknown method 'vib'; methods are []",
      "item i-3 / maps.baseline: unknown method 'baseline'; methods are []"]),
    ('methods a string', pairwise,
     lambda m: m.update(methods="vib,baseline"),
     NO_METHODS),
    ('methods duplicate', pairwise,
     lambda m: m.update(methods=["vib", "baseline", "vib"]),
     ["manifest / methods[2]: duplicate method 'vib'"]),
    ('methods bad names', pairwise,
     lambda m: m.update(methods=["vib", "baseline", "grad cam", 3]),
     ["manifest / methods[2]: must match [A-Za-z0-9_-]{1,64}, got 'grad cam'",
      'manifest / methods[3]: must match [A-Za-z0-9_-]{1,64}, got 3',
      C('manifest / cams.methods.grad cam: missing'),
      C('manifest / cams.items.i-1.targets.grad cam: missing'),
      C('manifest / cams.items.i-2.targets.grad cam: missing'),
      C('manifest / cams.items.i-3.targets.grad cam: missing')]),
    ('proposed missing', pairwise,
     lambda m: m.pop("proposed"),
     ["manifest / proposed: must be one of the methods ['vib', 'baseline'], got None"]),
    ('proposed unknown', pairwise,
     lambda m: m.update(proposed="gradcam"),
     ["manifest / proposed: must be one of the methods ['vib', 'baseline'], got 'gradcam'"]),
    ('baseline equals proposed', pairwise,
     lambda m: m.update(baseline="vib"),
     ['manifest / baseline: must differ from proposed']),
    ('roles both missing', pairwise,
     lambda m: (m.pop("proposed"), m.pop("baseline")),
     ["manifest / proposed: must be one of the methods ['vib', 'baseline'], got None",
      "manifest / baseline: must be one of the methods ['vib', 'baseline'], got None"]),
    ('question missing', pairwise,
     lambda m: m.pop("question"),
     ['manifest / question: must be a non-empty string']),
    ('question blank', pairwise,
     lambda m: m.update(question="  "),
     ['manifest / question: must be a non-empty string']),
    ('question not a string', pairwise,
     lambda m: m.update(question=5),
     ['manifest / question: must be a non-empty string']),
    ('question without label', pairwise,
     lambda m: m.update(question="Which map is better?"),
     ['manifest / question: must contain the placeholder {label}']),
    ('instructions blank', pairwise,
     lambda m: m.update(instructions=" "),
     ['manifest / instructions: must be a non-empty Markdown string']),
    ('instructions missing', pairwise,
     lambda m: m.pop("instructions"),
     ['manifest / instructions: must be a non-empty Markdown string']),
    ('consent not a string', pairwise,
     lambda m: m.update(consent=5),
     ['manifest / consent: must be a Markdown string']),
    ('allow_no_preference a string', pairwise,
     lambda m: m.update(allow_no_preference="yes"),
     ['manifest / allow_no_preference: must be true or false']),
    ('allow_no_preference false', pairwise,
     lambda m: m.update(allow_no_preference=False),
     []),
    ('repeats negative', pairwise,
     lambda m: m.update(repeats=-1),
     ['manifest / repeats: must be a non-negative integer, got -1']),
    ('repeats bool', pairwise,
     lambda m: m.update(repeats=True),
     ['manifest / repeats: must be a non-negative integer, got True']),
    ('repeats float', pairwise,
     lambda m: m.update(repeats=1.0),
     ['manifest / repeats: must be a non-negative integer, got 1.0']),
    ('repeats zero', pairwise,
     lambda m: m.update(repeats=0),
     []),
    ('repeats all regular', pairwise,
     lambda m: m.update(repeats=2),
     []),
    ('repeats above regular', pairwise,
     lambda m: m.update(repeats=3),
     ['manifest / repeats: 3 repeats but only 2 regular items']),
    ('provenance a list', pairwise,
     lambda m: m.update(provenance=[]),
     ['manifest / provenance: must be an object']),
    ('example not an object', pairwise,
     lambda m: m.update(example=["x"]),
     ['example: must be an object {label, image, maps}']),
    ('example unknown keys', pairwise,
     lambda m: m["example"].update(zeta=1, alpha=2),
     ['example / alpha: unknown key',
      'example / zeta: unknown key']),
    ('example without label', pairwise,
     lambda m: m["example"].pop("label"),
     ['example / label: must be a non-empty string']),
    ('example blank label', pairwise,
     lambda m: m["example"].update(label=" "),
     ['example / label: must be a non-empty string']),
    ('example bad image', pairwise,
     lambda m: m["example"].update(image="images/e.gif"),
     ["example / image: 'images/e.gif' must end with one of .png, .jpg, .jpeg"]),
    ('example without image', pairwise,
     lambda m: m["example"].pop("image"),
     ['example / image: must be a relative path string, got NoneType']),
    ('example maps missing one', pairwise,
     lambda m: m["example"]["maps"].pop("baseline"),
     ['example / maps.baseline: missing: exactly one map per method is required']),
    ('example maps not object', pairwise,
     lambda m: m["example"].update(maps="maps/e.png"),
     ['example / maps: must be an object {method: path}, got str']),
    ('example null', pairwise,
     lambda m: m.update(example=None),
     []),
    ('items missing', pairwise,
     lambda m: m.pop("items"),
     [C('manifest / cams.items.i-1: unknown key (expected )'),
      C('manifest / cams.items.i-2: unknown key (expected )'),
      C('manifest / cams.items.i-3: unknown key (expected )'),
      'manifest / items: must be a non-empty list']),
    ('items empty', pairwise,
     lambda m: m.update(items=[]),
     [C('manifest / cams.items.i-1: unknown key (expected )'),
      C('manifest / cams.items.i-2: unknown key (expected )'),
      C('manifest / cams.items.i-3: unknown key (expected )'),
      'manifest / items: must be a non-empty list']),
    ('items not a list', pairwise,
     lambda m: m.update(items={"i-1": {}}),
     [C('manifest / cams.items.i-1: unknown key (expected )'),
      C('manifest / cams.items.i-2: unknown key (expected )'),
      C('manifest / cams.items.i-3: unknown key (expected )'),
      'manifest / items: must be a non-empty list']),
    ('item not an object', pairwise,
     lambda m: m["items"].append("i-4"),
     ['items[3]: must be an object']),
    ('item id missing', pairwise,
     lambda m: it(m, 0).pop("id"),
     [C('manifest / cams.items.i-1: unknown key (expected i-2, i-3)'),
      'items[0] / id: must match [A-Za-z0-9_.-]{1,128}, got None']),
    ('item id bad', pairwise,
     lambda m: it(m, 0).update(id="i 1"),
     [C('manifest / cams.items.i 1: missing'),
      C('manifest / cams.items.i-1: unknown key (expected i 1, i-2, i-3)'),
      "items[0] / id: must match [A-Za-z0-9_.-]{1,128}, got 'i 1'"]),
    ('item id too long', pairwise,
     lambda m: it(m, 0).update(id="i" * 129),
     [C('manifest / cams.items.iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii'
       'iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii: missing'),
      C('manifest / cams.items.i-1: unknown key (expected i-2, i-3, iiiiiiiiiiiiiiiiiiiiiiiii'
       'iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii'
       'iiiiiiiiiiiiiiiiiiii)'),
      ("items[0] / id: must match [A-Za-z0-9_.-]{1,128}, got 'iiiiiiiiiiiiiiiiiiiiiiiiiiiiii"
       'iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii'
       "iiiiiiiiiiiiiii'")]),
    ('item id longest', pairwise,
     lambda m: (it(m, 0).update(id="i" * 128), m.pop("cams")),
     []),
    ('item id duplicate', pairwise,
     lambda m: it(m, 2).update(id="i-1"),
     [C('manifest / cams.items.i-3: unknown key (expected i-1, i-2)'),
      'item i-1 / id: duplicate item id (items[2])']),
    ('item id names a method', pairwise,
     lambda m: (it(m, 2).update(id="vib-3"), m.pop("cams")),
     ["item vib-3 / id: names method 'vib'; ids must say nothing about any method"]),
    ('item unknown keys', pairwise,
     lambda m: it(m, 0).update(zeta=1, alpha=2),
     ['item i-1 / alpha: unknown key (items are strict)',
      'item i-1 / zeta: unknown key (items are strict)']),
    ('item distinction keys', pairwise,
     lambda m: it(m, 0).update(candidates={}, answer={}),
     [('item i-1 / answer: unknown key (items are strict); candidates and answer belong to "'
       'task": "distinction" packages'),
      ('item i-1 / candidates: unknown key (items are strict); candidates and answer belong '
       'to "task": "distinction" packages')]),
    ('item label missing', pairwise,
     lambda m: it(m, 0).pop("label"),
     ['item i-1 / label: must be a non-empty string']),
    ('item label blank', pairwise,
     lambda m: it(m, 0).update(label="\t"),
     ['item i-1 / label: must be a non-empty string']),
    ('item image missing', pairwise,
     lambda m: it(m, 0).pop("image"),
     ['item i-1 / image: must be a relative path string, got NoneType']),
    ('item image names a method', pairwise,
     lambda m: it(m, 0).update(image="images/baseline.png"),
     [("item i-1 / image: path 'images/baseline.png' names method 'baseline'; use survey.pac"
       'kage.content_name()')]),
    ('item image short method name', pairwise,
     lambda m: (m.update(methods=["vib", "baseline", "v1"]), it(m, 0).update(image="images/v1.png"),
                m["example"]["maps"].update(v1="maps/ec.png"),
                [x["maps"].update(v1="maps/c.png") for x in m["items"]], m.pop("cams")),
     []),
    ('item image upper case suffix', pairwise,
     lambda m: it(m, 0).update(image="images/1.PNG"),
     []),
    ('item mask bad', pairwise,
     lambda m: it(m, 0).update(mask="masks/1.npy"),
     ["item i-1 / mask: 'masks/1.npy' must end with one of .png, .jpg, .jpeg"]),
    ('item heatmaps not object', pairwise,
     lambda m: it(m, 0).update(heatmaps=["heat/1a.npy"]),
     ['item i-1 / heatmaps: must be an object {method: path}, got list']),
    ('item heatmaps unknown method and png', pairwise,
     lambda m: it(m, 0).update(heatmaps={"gradcam": "heat/x.npy", "vib": "heat/1a.png"}),
     [("item i-1 / heatmaps.gradcam: unknown method 'gradcam'; methods are ['vib', 'baseline"
       "']"),
      "item i-1 / heatmaps.vib: 'heat/1a.png' must end with one of .npy"]),
    ('item heatmaps subset', pairwise,
     lambda m: it(m, 0)["heatmaps"].pop("baseline"),
     []),
    ('item predictions not object', pairwise,
     lambda m: it(m, 0).update(predictions=[]),
     ['item i-1 / predictions: must be an object {method: [{label, p}, ...]}']),
    ('item maps missing', pairwise,
     lambda m: it(m, 0).pop("maps"),
     ['item i-1 / maps: must be an object {method: path}, got NoneType']),
    ('item maps missing one', pairwise,
     lambda m: it(m, 0)["maps"].pop("vib"),
     ['item i-1 / maps.vib: missing: exactly one map per method is required']),
    ('item maps unknown method', pairwise,
     lambda m: it(m, 0)["maps"].update(gradcam="maps/x.png"),
     ["item i-1 / maps.gradcam: unknown method 'gradcam'; methods are ['vib', 'baseline']"]),
    ('item maps path names method', pairwise,
     lambda m: it(m, 0)["maps"].update(vib="maps/vib.png"),
     [("item i-1 / maps.vib: path 'maps/vib.png' names method 'vib'; use survey.package.cont"
       'ent_name()')]),
    ('item attention_check a string', pairwise,
     lambda m: it(m, 0).update(attention_check="no"),
     ['item i-1 / attention_check: must be true or false']),
    ('check without expected', pairwise,
     lambda m: it(m, 1).pop("expected"),
     [("item i-2 / expected: an attention check needs expected: one of ['vib', 'baseline'], "
       'got None')]),
    ('check expects unknown', pairwise,
     lambda m: it(m, 1).update(expected="gradcam"),
     [C("manifest / cams.items.i-2.check.expected: 'vib' but the item expects 'gradcam'"),
      ("item i-2 / expected: an attention check needs expected: one of ['vib', 'baseline'], "
       "got 'gradcam'")]),
    ('regular with expected', pairwise,
     lambda m: it(m, 0).update(expected="vib"),
     [('item i-1 / expected: only attention checks (attention_check: true) have an expected '
       'method')]),
    ('all checks', pairwise,
     lambda m: [it.update(attention_check=True, expected="vib") for it in m["items"]],
     [C('manifest / cams.items.i-1.check: missing: the item is an attention check'),
      C('manifest / cams.items.i-3.check: missing: the item is an attention check'),
      'manifest / items: needs at least one item that is not an attention check',
      'manifest / repeats: 1 repeats but only 0 regular items']),
    ('more checks than regular', pairwise,
     lambda m: it(m, 2).update(attention_check=True, expected="baseline"),
     [C('manifest / cams.items.i-3.check: missing: the item is an attention check'),
      ('manifest / items: 2 attention checks but only 1 regular items: checks are spread bet'
       'ween regular items, so there can be at most one per regular item')]),
    ('checks equal regular', pairwise,
     lambda m: (m["items"].pop(2), m["cams"]["items"].pop("i-3"), m.update(repeats=0)),
     []),
    ('unreadable item skips counts', pairwise,
     lambda m: (m["items"].append(7), m.update(repeats=9)),
     ['items[3]: must be an object']),
    ('unknown top level key', pairwise,
     lambda m: m.update(future={"x": 1}),
     []),
]

CAMS_SECTION: list[Case] = [
    ('cams null', pairwise,
     lambda m: m.update(cams=None),
     []),
    ('cams not object', pairwise,
     lambda m: m.update(cams=[]),
     [C('manifest / cams: must be an object, got list')]),
    ('cams empty', pairwise,
     lambda m: m.update(cams={}),
     [C('manifest / cams.class_labels: missing'),
      C('manifest / cams.class_names: missing'),
      C('manifest / cams.data: missing'),
      C('manifest / cams.image_size: missing'),
      C('manifest / cams.items: missing'),
      C('manifest / cams.methods: missing'),
      C('manifest / cams.only: missing'),
      C('manifest / cams.seed: missing'),
      C('manifest / cams.target: missing')]),
    ('cams unknown key', pairwise,
     lambda m: m["cams"].update(extra=1),
     [C('manifest / cams.extra: unknown key (expected class_labels, class_names, data, image_'
       'size, items, methods, only, seed, target)')]),
    ('cams target bad', pairwise,
     lambda m: m["cams"].update(target="best"),
     [C("manifest / cams.target: must be one of truth, predicted, got 'best'")]),
    ('cams target missing', pairwise,
     lambda m: m["cams"].pop("target"),
     [C('manifest / cams.target: missing')]),
    ('cams target predicted', pairwise,
     lambda m: m["cams"].update(target="predicted"),
     []),
    ('cams target truth in distinction', distinction,
     lambda m: m["cams"].update(target="truth"),
     [C("manifest / cams.target: must be 'predicted' in a distinction package (its maps expla"
       "in each model's top classes, and targets are the rank-1 ones)")]),
    ('cams only bad', pairwise,
     lambda m: m["cams"].update(only="all"),
     [C("manifest / cams.only: must be one of any, both-correct, disagree, got 'all'")]),
    ('cams only others', pairwise,
     lambda m: m["cams"].update(only="disagree"),
     []),
    ('cams seed str', pairwise,
     lambda m: m["cams"].update(seed="0"),
     [C("manifest / cams.seed: must be an integer, got '0'")]),
    ('cams seed bool', pairwise,
     lambda m: m["cams"].update(seed=False),
     [C('manifest / cams.seed: must be an integer, got False')]),
    ('cams image_size float', pairwise,
     lambda m: m["cams"].update(image_size=64.0),
     [C('manifest / cams.image_size: must be an integer, got 64.0')]),
    ('cams data list', pairwise,
     lambda m: m["cams"].update(data=[]),
     [C('manifest / cams.data: must be an object (the resolved data options)')]),
    ('cams class_names empty', pairwise,
     lambda m: m["cams"].update(class_names=[]),
     [C('manifest / cams.class_names: must be a non-empty list of strings'),
      C('manifest / cams.class_labels: 2 labels for 0 class names')]),
    ('cams class_names not strings', pairwise,
     lambda m: m["cams"].update(class_names=["a", 1]),
     [C('manifest / cams.class_names: must be a non-empty list of strings')]),
    ('cams class_labels a string', pairwise,
     lambda m: m["cams"].update(class_labels="cat"),
     [C('manifest / cams.class_labels: must be a non-empty list of strings')]),
    ('cams class lengths differ', pairwise,
     lambda m: m["cams"]["class_labels"].append("owl"),
     [C('manifest / cams.class_labels: 3 labels for 2 class names')]),
    ('cams methods not object', pairwise,
     lambda m: m["cams"].update(methods=[]),
     [C('manifest / cams.methods: must be an object, got list')]),
    ('cams methods missing one', pairwise,
     lambda m: m["cams"]["methods"].pop("baseline"),
     [C('manifest / cams.methods.baseline: missing')]),
    ('cams methods unknown', pairwise,
     lambda m: m["cams"]["methods"].update(
         gradcam={"cam": "gradcam", "arch": "a", "head": "h", "beta": None}),
     [C('manifest / cams.methods.gradcam: unknown key (expected baseline, vib)')]),
    ('cams method not object', pairwise,
     lambda m: m["cams"]["methods"].update(vib="cam"),
     [C('manifest / cams.methods.vib: must be an object, got str')]),
    ('cams method keys', pairwise,
     lambda m: cm(m, "vib").update(beta_=1, cam=cm(m, "vib").pop("arch")),
     [C('manifest / cams.methods.vib.arch: missing'),
      C('manifest / cams.methods.vib.beta_: unknown key (expected arch, beta, cam, head)')]),
    ('cams method blank strings', pairwise,
     lambda m: cm(m, "vib").update(cam="", arch=" ", head=3),
     [C('manifest / cams.methods.vib.cam: must be a non-empty string'),
      C('manifest / cams.methods.vib.arch: must be a non-empty string'),
      C('manifest / cams.methods.vib.head: must be a non-empty string')]),
    ('cams method beta str', pairwise,
     lambda m: cm(m, "vib").update(beta="0.01"),
     [C("manifest / cams.methods.vib.beta: must be a number or null, got '0.01'")]),
    ('cams method beta bool', pairwise,
     lambda m: cm(m, "vib").update(beta=True),
     [C('manifest / cams.methods.vib.beta: must be a number or null, got True')]),
    ('cams method beta int', pairwise,
     lambda m: cm(m, "vib").update(beta=0),
     []),
    ('cams items not object', pairwise,
     lambda m: m["cams"].update(items=[]),
     [C('manifest / cams.items: must be an object, got list')]),
    ('cams items missing one', pairwise,
     lambda m: m["cams"]["items"].pop("i-3"),
     [C('manifest / cams.items.i-3: missing')]),
    ('cams items unknown id', pairwise,
     lambda m: m["cams"]["items"].update({"i-9": {}}),
     [C('manifest / cams.items.i-9: unknown key (expected i-1, i-2, i-3)')]),
    ('cams item not object', pairwise,
     lambda m: m["cams"]["items"].update({"i-1": 5}),
     [C('manifest / cams.items.i-1: must be an object, got int')]),
    ('cams item keys', pairwise,
     lambda m: ci(m, "i-1").update(extra=1, targets_=ci(m, "i-1").pop("targets")),
     [C('manifest / cams.items.i-1.targets: missing'),
      C('manifest / cams.items.i-1.extra: unknown key (expected check, label_index, sample, t'
       'argets)'),
      C('manifest / cams.items.i-1.targets_: unknown key (expected check, label_index, sample'
       ', targets)')]),
    ('cams item check missing', pairwise,
     lambda m: ci(m, "i-2").pop("check"),
     [C('manifest / cams.items.i-2.check: missing: the item is an attention check')]),
    ('cams item check on regular', pairwise,
     lambda m: ci(m, "i-1").update(check={"expected": "vib", "kind": "flipped"}),
     [C('manifest / cams.items.i-1.check: only attention checks have one')]),
    ('cams item sample blank', pairwise,
     lambda m: ci(m, "i-1").update(sample=" "),
     [C('manifest / cams.items.i-1.sample: must be a non-empty string (the eval sample id)')]),
    ('cams item sample not str', pairwise,
     lambda m: ci(m, "i-1").update(sample=1),
     [C('manifest / cams.items.i-1.sample: must be a non-empty string (the eval sample id)')]),
    ('cams label_index too big', pairwise,
     lambda m: ci(m, "i-1").update(label_index=2),
     [C('manifest / cams.items.i-1.label_index: must be a class index in [0, 1], got 2')]),
    ('cams label_index negative', pairwise,
     lambda m: ci(m, "i-1").update(label_index=-1),
     [C('manifest / cams.items.i-1.label_index: must be a class index in [0, 1], got -1')]),
    ('cams label_index bool', pairwise,
     lambda m: ci(m, "i-1").update(label_index=True),
     [C('manifest / cams.items.i-1.label_index: must be a class index in [0, 1], got True')]),
    ('cams label_index last', pairwise,
     lambda m: ci(m, "i-1").update(label_index=1),
     []),
    ('cams label_index no class list', pairwise,
     lambda m: (m["cams"].update(class_names=None), ci(m, "i-1").update(label_index=5)),
     [C('manifest / cams.class_names: must be a non-empty list of strings')]),
    ('cams targets not object', pairwise,
     lambda m: ci(m, "i-1").update(targets=[0, 0]),
     [C('manifest / cams.items.i-1.targets: must be an object, got list')]),
    ('cams targets bad', pairwise,
     lambda m: ci(m, "i-1")["targets"].update(vib=2, baseline="0"),
     [C('manifest / cams.items.i-1.targets.vib: must be a class index in [0, 1], got 2'),
      C("manifest / cams.items.i-1.targets.baseline: must be a class index in [0, 1], got '0'")]),
    ('cams targets unknown', pairwise,
     lambda m: ci(m, "i-1")["targets"].update(gradcam=0),
     [C('manifest / cams.items.i-1.targets.gradcam: unknown key (expected baseline, vib)')]),
    ('cams check not object', pairwise,
     lambda m: ci(m, "i-2").update(check="vib"),
     [C('manifest / cams.items.i-2.check: must be an object, got str')]),
    ('cams check keys', pairwise,
     lambda m: ci(m, "i-2")["check"].update(why="x"),
     [C('manifest / cams.items.i-2.check.why: unknown key (expected expected, kind)')]),
    ('cams check expected unknown', pairwise,
     lambda m: ci(m, "i-2")["check"].update(expected="gradcam"),
     [C("manifest / cams.items.i-2.check.expected: must be one of the methods ['vib', 'baseli"
       "ne']")]),
    ('cams check expected other', pairwise,
     lambda m: ci(m, "i-2")["check"].update(expected="baseline"),
     [C("manifest / cams.items.i-2.check.expected: 'baseline' but the item expects 'vib'")]),
    ('cams check kind bad', pairwise,
     lambda m: ci(m, "i-2")["check"].update(kind="blank"),
     [C('manifest / cams.items.i-2.check.kind: must be one of wrong-class, flipped')]),
    ('cams check kind flipped', pairwise,
     lambda m: ci(m, "i-2")["check"].update(kind="flipped"),
     []),
    ('cams check without kind', pairwise,
     lambda m: ci(m, "i-2")["check"].pop("kind"),
     [C('manifest / cams.items.i-2.check.kind: missing')]),
    ('cams check no expected anywhere', pairwise,
     lambda m: (it(m, 1).pop("expected"), ci(m, "i-2")["check"].update(expected="baseline")),
     [("item i-2 / expected: an attention check needs expected: one of ['vib', 'baseline'], "
       'got None')]),
    ('cams item candidates in pairwise', pairwise,
     lambda m: ci(m, "i-1").update(candidates={}),
     [C('manifest / cams.items.i-1.candidates: unknown key (expected check, label_index, samp'
       'le, targets)')]),
    ('cams items broken manifest items', pairwise,
     lambda m: (m.update(items="x"), m["cams"].update(items={})),
     ['manifest / items: must be a non-empty list']),
    ('dcams candidates missing', distinction,
     lambda m: ci(m, "d-1").pop("candidates"),
     [C('manifest / cams.items.d-1.candidates: missing')]),
    ('dcams candidates not object', distinction,
     lambda m: ci(m, "d-1").update(candidates=[]),
     [C('manifest / cams.items.d-1.candidates: must be an object, got list')]),
    ('dcams candidates missing method', distinction,
     lambda m: ci(m, "d-1")["candidates"].pop("baseline"),
     [C('manifest / cams.items.d-1.candidates.baseline: missing')]),
    ('dcams candidates short', distinction,
     lambda m: cc(m, "d-1", "vib").pop(),
     [C('manifest / cams.items.d-1.candidates.vib: must be a list with one {class, heatmap} p'
       'er candidate of the item, in its order')]),
    ('dcams candidates not list', distinction,
     lambda m: ci(m, "d-1")["candidates"].update(vib={"class": 0}),
     [C('manifest / cams.items.d-1.candidates.vib: must be a list with one {class, heatmap} p'
       'er candidate of the item, in its order')]),
    ('dcams item shows no list', distinction,
     lambda m: it(m, 0)["candidates"].update(vib={"label": "x"}),
     [C('manifest / cams.items.d-1.candidates.vib: must be a list with one {class, heatmap} p'
       'er candidate of the item, in its order'),
      ('item d-1 / candidates.vib: must be a list of exactly 4 candidates {"label", "map", "'
       'rank"} (the model\'s top-4 classes)')]),
    ('dcams candidate not object', distinction,
     lambda m: cc(m, "d-1", "vib").__setitem__(1, 1),
     [C('manifest / cams.items.d-1.candidates.vib[1]: must be an object, got int')]),
    ('dcams candidate keys', distinction,
     lambda m: cc(m, "d-1", "vib")[1].update(label="dog", klass=cc(m, "d-1", "vib")[1].pop("class")),
     [C('manifest / cams.items.d-1.candidates.vib[1].class: missing'),
      C('manifest / cams.items.d-1.candidates.vib[1].klass: unknown key (expected class, heat'
       'map)'),
      C('manifest / cams.items.d-1.candidates.vib[1].label: unknown key (expected class, heat'
       'map)')]),
    ('dcams candidate class out of range', distinction,
     lambda m: cc(m, "d-1", "vib")[3].update({"class": 5}),
     [C('manifest / cams.items.d-1.candidates.vib[3].class: must be a class index in [0, 4], '
       'got 5')]),
    ('dcams candidate class wrong label', distinction,
     lambda m: cc(m, "d-1", "vib")[3].update({"class": 4}),
     [C("manifest / cams.items.d-1.candidates.vib[3].class: class 4 is 'elk' but the item sho"
       "ws 'owl'")]),
    ('dcams candidate classes repeat', distinction,
     lambda m: (cc(m, "d-1", "vib")[3].update({"class": 2}), cc(m, "d-1", "vib")[2].update({"class": 3}),
                cc(m, "d-1", "vib")[1].update({"class": 3})),
     [C("manifest / cams.items.d-1.candidates.vib[1].class: class 3 is 'owl' but the item sho"
       "ws 'dog'"),
      C("manifest / cams.items.d-1.candidates.vib[2].class: class 3 is 'owl' but the item sho"
       "ws 'fox'"),
      C("manifest / cams.items.d-1.candidates.vib[3].class: class 2 is 'fox' but the item sho"
       "ws 'owl'"),
      C("manifest / cams.items.d-1.candidates.vib: classes [0, 3, 3, 2] repeat; a model's top"
       ' classes are distinct')]),
    ('dcams candidate heatmap bad', distinction,
     lambda m: cc(m, "d-1", "vib")[0].update(heatmap="heat/vib.png"),
     [C("manifest / cams.items.d-1.candidates.vib[0].heatmap: 'heat/vib.png' must end with on"
       'e of .npy'),
      C("manifest / cams.items.d-1.candidates.vib[0].heatmap: path 'heat/vib.png' names metho"
       "d 'vib'; use survey.package.content_name()")]),
    ('dcams answer class not target', distinction,
     lambda m: ci(m, "d-1")["targets"].update(vib=1),
     [C("manifest / cams.items.d-1.candidates.vib[0].class: the answer's class 0 differs from"
       ' targets.vib = 1 (the rank-1 class)')]),
    ('dcams answer index elsewhere', distinction,
     lambda m: (it(m, 0)["answer"].update(vib=1),
                [c.update(rank=r) for c, r in zip(ic(m, 0, "vib"), (2, 1, 3, 4))]),
     [C("manifest / cams.items.d-1.candidates.vib[1].class: the answer's class 1 differs from"
       ' targets.vib = 0 (the rank-1 class)')]),
    ('dcams labels unusable', distinction,
     lambda m: (m["cams"].update(class_labels="x"), cc(m, "d-1", "vib")[3].update({"class": 4})),
     [C('manifest / cams.class_labels: must be a non-empty list of strings')]),
    ('dcams check not object', distinction,
     lambda m: ci(m, "d-2").update(check="on-object"),
     [C('manifest / cams.items.d-2.check: must be an object, got str')]),
    ('dcams check kind bad', distinction,
     lambda m: ci(m, "d-2")["check"].update(kind="wrong-class"),
     [C('manifest / cams.items.d-2.check.kind: must be one of on-object')]),
    ('dcams check expected', distinction,
     lambda m: ci(m, "d-2")["check"].update(expected="vib"),
     [C('manifest / cams.items.d-2.check.expected: unknown key (expected kind)')]),
    ('dcams check missing', distinction,
     lambda m: ci(m, "d-2").pop("check"),
     [C('manifest / cams.items.d-2.check: missing: the item is an attention check')]),
]

DISTINCTION: list[Case] = [
    ('d question blank', distinction,
     lambda m: m.update(question=""),
     [('manifest / question: must be a non-empty string (or left out for the default questio'
       'n)')]),
    ('d question with label', distinction,
     lambda m: m.update(question="Which map shows the {label}?"),
     [("manifest / question: a distinction question must not contain {label}: the item's cla"
       "ss would give the model's prediction away; leave the key out for the default questio"
       'n')]),
    ('d question given', distinction,
     lambda m: m.update(question="Which map did the model use?"),
     []),
    ('d no preference', distinction,
     lambda m: m.update(allow_no_preference=True),
     [("manifest / allow_no_preference: a distinction study has no 'no preference' answer; l"
       'eave it out')]),
    ('d no preference false', distinction,
     lambda m: m.update(allow_no_preference=False),
     []),
    ('d example not object', distinction,
     lambda m: m.update(example="x"),
     ['example: must be an object {image, candidates} (label optional)']),
    ('d example keys', distinction,
     lambda m: m["example"].update(maps={}, zeta=1),
     ['example / maps: unknown key',
      'example / zeta: unknown key']),
    ('d example blank label', distinction,
     lambda m: m["example"].update(label=""),
     ['example / label: must be a non-empty string']),
    ('d example without label', distinction,
     lambda m: m["example"].pop("label"),
     []),
    ('d example image bad', distinction,
     lambda m: m["example"].update(image="images/e.npy"),
     ["example / image: 'images/e.npy' must end with one of .png, .jpg, .jpeg"]),
    ('d example candidates missing', distinction,
     lambda m: m["example"].pop("candidates"),
     [('example / candidates: must be a list of exactly 4 candidates {"label", "map", "rank"'
       "} (the model's top-4 classes)")]),
    ('d example three candidates', distinction,
     lambda m: m["example"]["candidates"].pop(),
     [('example / candidates: must be a list of exactly 4 candidates {"label", "map", "rank"'
       "} (the model's top-4 classes)"),
      ('example / candidates: 3 candidates but d-1 has 4; every list of a study has the same'
       ' length (chance is 1/length)')]),
    ('d item maps and expected', distinction,
     lambda m: it(m, 1).update(maps={}, expected="vib"),
     ['item d-2 / maps: a distinction item has candidates instead of maps',
      ('item d-2 / expected: a distinction item has no expected method: the correct answer o'
       'f an attention check is its rank-1 candidate, like every item')]),
    ('d item pairwise-only key', distinction,
     lambda m: it(m, 0).update(heatmaps={"vib": "heat/x.npy"}, predictions={}),
     []),
    ('d candidates missing', distinction,
     lambda m: it(m, 0).pop("candidates"),
     [C('manifest / cams.items.d-1.candidates.vib: must be a list with one {class, heatmap} p'
       'er candidate of the item, in its order'),
      C('manifest / cams.items.d-1.candidates.baseline: must be a list with one {class, heatm'
       'ap} per candidate of the item, in its order'),
      'item d-1 / candidates: must be an object {method: [{label, map, rank}, ...]}']),
    ('d candidates a list', distinction,
     lambda m: it(m, 0).update(candidates=[]),
     [C('manifest / cams.items.d-1.candidates.vib: must be a list with one {class, heatmap} p'
       'er candidate of the item, in its order'),
      C('manifest / cams.items.d-1.candidates.baseline: must be a list with one {class, heatm'
       'ap} per candidate of the item, in its order'),
      'item d-1 / candidates: must be an object {method: [{label, map, rank}, ...]}']),
    ('d candidates unknown method', distinction,
     lambda m: it(m, 0)["candidates"].update(gradcam=[]),
     [("item d-1 / candidates.gradcam: unknown method 'gradcam'; methods are ['vib', 'baseli"
       "ne']")]),
    ('d candidates missing method', distinction,
     lambda m: it(m, 0)["candidates"].pop("baseline"),
     [C('manifest / cams.items.d-1.candidates.baseline: must be a list with one {class, heatm'
       'ap} per candidate of the item, in its order'),
      'item d-1 / candidates.baseline: missing: every method needs its candidate list']),
    ('d candidate list short', distinction,
     lambda m: ic(m, 0, "vib").pop(),
     [C('manifest / cams.items.d-1.candidates.vib: must be a list with one {class, heatmap} p'
       'er candidate of the item, in its order'),
      ('item d-1 / candidates.vib: must be a list of exactly 4 candidates {"label", "map", "'
       'rank"} (the model\'s top-4 classes)')]),
    ('d candidate list long', distinction,
     lambda m: ic(m, 0, "vib").append({"label": "elk", "map": "maps/x.png", "rank": 5}),
     [C('manifest / cams.items.d-1.candidates.vib: must be a list with one {class, heatmap} p'
       'er candidate of the item, in its order'),
      ('item d-1 / candidates.vib: must be a list of exactly 4 candidates {"label", "map", "'
       'rank"} (the model\'s top-4 classes)')]),
    ('d candidate list not list', distinction,
     lambda m: it(m, 0)["candidates"].update(vib="x"),
     [C('manifest / cams.items.d-1.candidates.vib: must be a list with one {class, heatmap} p'
       'er candidate of the item, in its order'),
      ('item d-1 / candidates.vib: must be a list of exactly 4 candidates {"label", "map", "'
       'rank"} (the model\'s top-4 classes)')]),
    ('d candidate not object', distinction,
     lambda m: ic(m, 0, "vib").__setitem__(3, "owl"),
     ['item d-1 / candidates.vib[3]: must be an object {label, map, rank}']),
    ('d candidate keys', distinction,
     lambda m: ic(m, 0, "vib")[3].update(zeta=1, alpha=2),
     ['item d-1 / candidates.vib[3].alpha: unknown key (candidates are strict)',
      'item d-1 / candidates.vib[3].zeta: unknown key (candidates are strict)']),
    ('d candidate label blank', distinction,
     lambda m: ic(m, 0, "vib")[3].update(label=" "),
     [C("manifest / cams.items.d-1.candidates.vib[3].class: class 3 is 'owl' but the item sho"
       "ws ' '"),
      ('item d-1 / candidates.vib[3].label: must be a non-empty string (the class name shown'
       ' with the map)')]),
    ('d candidate label missing', distinction,
     lambda m: ic(m, 0, "vib")[3].pop("label"),
     [C("manifest / cams.items.d-1.candidates.vib[3].class: class 3 is 'owl' but the item sho"
       'ws None'),
      ('item d-1 / candidates.vib[3].label: must be a non-empty string (the class name shown'
       ' with the map)')]),
    ('d candidate labels repeat', distinction,
     lambda m: ic(m, 0, "vib")[3].update(label=" CAT  "),
     [C("manifest / cams.items.d-1.candidates.vib[3].class: class 3 is 'owl' but the item sho"
       "ws ' CAT  '"),
      ("item d-1 / candidates.vib[3].label: label ' CAT  ' repeats candidate 0; the labels o"
       'f one list must differ')]),
    ('d candidate labels repeat thrice', distinction,
     lambda m: [ic(m, 0, "vib")[k].update(label="Cat") for k in (1, 2)],
     [C("manifest / cams.items.d-1.candidates.vib[1].class: class 1 is 'dog' but the item sho"
       "ws 'Cat'"),
      C("manifest / cams.items.d-1.candidates.vib[2].class: class 2 is 'fox' but the item sho"
       "ws 'Cat'"),
      ("item d-1 / candidates.vib[1].label: label 'Cat' repeats candidate 0; the labels of o"
       'ne list must differ'),
      ("item d-1 / candidates.vib[2].label: label 'Cat' repeats candidate 0; the labels of o"
       'ne list must differ')]),
    ('d candidate labels inner space', distinction,
     lambda m: (ic(m, 0, "vib")[2].update(label="red  fox"), ic(m, 0, "vib")[3].update(label="red fox")),
     [C("manifest / cams.items.d-1.candidates.vib[2].class: class 2 is 'fox' but the item sho"
       "ws 'red  fox'"),
      C("manifest / cams.items.d-1.candidates.vib[3].class: class 3 is 'owl' but the item sho"
       "ws 'red fox'"),
      ("item d-1 / candidates.vib[3].label: label 'red fox' repeats candidate 2; the labels "
       'of one list must differ')]),
    ('d candidate map missing', distinction,
     lambda m: ic(m, 0, "vib")[3].pop("map"),
     ['item d-1 / candidates.vib[3].map: missing: every candidate needs its map']),
    ('d candidate map bad', distinction,
     lambda m: ic(m, 0, "vib")[3].update(map="../x.png"),
     [("item d-1 / candidates.vib[3].map: path '../x.png' climbs out of the package with '.."
       "'")]),
    ('d candidate map suffix', distinction,
     lambda m: ic(m, 0, "vib")[3].update(map="maps/x.npy"),
     [("item d-1 / candidates.vib[3].map: 'maps/x.npy' must end with one of .png, .jpg, .jpe"
       'g')]),
    ('d candidate rank missing', distinction,
     lambda m: ic(m, 0, "vib")[3].pop("rank"),
     [("item d-1 / candidates.vib[3].rank: must be an integer 1..4 (1 = the model's predicti"
       'on), got None')]),
    ('d candidate rank zero', distinction,
     lambda m: ic(m, 0, "vib")[3].update(rank=0),
     [("item d-1 / candidates.vib[3].rank: must be an integer 1..4 (1 = the model's predicti"
       'on), got 0')]),
    ('d candidate rank five', distinction,
     lambda m: ic(m, 0, "vib")[3].update(rank=5),
     [("item d-1 / candidates.vib[3].rank: must be an integer 1..4 (1 = the model's predicti"
       'on), got 5')]),
    ('d candidate rank bool', distinction,
     lambda m: ic(m, 0, "vib")[0].update(rank=True),
     [("item d-1 / candidates.vib[0].rank: must be an integer 1..4 (1 = the model's predicti"
       'on), got True')]),
    ('d candidate rank float', distinction,
     lambda m: ic(m, 0, "vib")[3].update(rank=4.0),
     [("item d-1 / candidates.vib[3].rank: must be an integer 1..4 (1 = the model's predicti"
       'on), got 4.0')]),
    ('d candidate ranks repeat', distinction,
     lambda m: ic(m, 0, "vib")[3].update(rank=3),
     ['item d-1 / candidates.vib: ranks [1, 2, 3, 3] must be each of 1..4 exactly once']),
    ('d candidate ranks shuffled', distinction,
     lambda m: (it(m, 0)["answer"].update(vib=3),
                [c.update(rank=r) for c, r in zip(ic(m, 0, "vib"), (4, 3, 2, 1))], m.pop("cams")),
     []),
    ('d answer missing', distinction,
     lambda m: it(m, 0).pop("answer"),
     ['item d-1 / answer: must be an object {method: index of the rank-1 candidate}']),
    ('d answer a list', distinction,
     lambda m: it(m, 0).update(answer=[0, 0]),
     ['item d-1 / answer: must be an object {method: index of the rank-1 candidate}']),
    ('d answer unknown method', distinction,
     lambda m: it(m, 0)["answer"].update(gradcam=0),
     ["item d-1 / answer.gradcam: unknown method 'gradcam'"]),
    ('d answer missing method', distinction,
     lambda m: it(m, 0)["answer"].pop("vib"),
     ['item d-1 / answer.vib: missing: every method needs the index of its rank-1 candidate']),
    ('d answer a string', distinction,
     lambda m: it(m, 0)["answer"].update(vib="0"),
     ["item d-1 / answer.vib: must be an integer index, got '0'"]),
    ('d answer a bool', distinction,
     lambda m: it(m, 0)["answer"].update(vib=False),
     ['item d-1 / answer.vib: must be an integer index, got False']),
    ('d answer not rank one', distinction,
     lambda m: it(m, 0)["answer"].update(vib=2),
     [C("manifest / cams.items.d-1.candidates.vib[2].class: the answer's class 2 differs from"
       ' targets.vib = 0 (the rank-1 class)'),
      ("item d-1 / answer.vib: is 2 but the rank-1 candidate (the model's prediction) is can"
       'didates.vib[0]')]),
    ('d answer with broken list', distinction,
     lambda m: (ic(m, 0, "vib")[3].update(rank=3), it(m, 0)["answer"].update(vib=2)),
     [C("manifest / cams.items.d-1.candidates.vib[2].class: the answer's class 2 differs from"
       ' targets.vib = 0 (the rank-1 class)'),
      'item d-1 / candidates.vib: ranks [1, 2, 3, 3] must be each of 1..4 exactly once']),
    ('d attention_check a string', distinction,
     lambda m: it(m, 0).update(attention_check="yes"),
     ['item d-1 / attention_check: must be true or false']),
    ('d attention_check missing', distinction,
     lambda m: it(m, 0).pop("attention_check"),
     []),
    ('d all checks', distinction,
     lambda m: it(m, 0).update(attention_check=True),
     [C('manifest / cams.items.d-1.check: missing: the item is an attention check'),
      'manifest / items: needs at least one item that is not an attention check',
      'manifest / repeats: 1 repeats but only 0 regular items']),
    ('d item not an object', distinction,
     lambda m: m["items"].append([]),
     ['items[2]: must be an object']),
    ('d lists of different lengths', distinction,
     lambda m: (ic(m, 0, "vib").pop(), ic(m, 0, "baseline").pop(), ic(m, 1, "vib").pop(),
                m["example"]["candidates"].pop(), m.pop("cams")),
     [('example / candidates: must be a list of exactly 4 candidates {"label", "map", "rank"'
       "} (the model's top-4 classes)"),
      ('item d-1 / candidates.vib: must be a list of exactly 4 candidates {"label", "map", "'
       'rank"} (the model\'s top-4 classes)'),
      ('item d-1 / candidates.baseline: must be a list of exactly 4 candidates {"label", "ma'
       'p", "rank"} (the model\'s top-4 classes)'),
      ('item d-2 / candidates.vib: must be a list of exactly 4 candidates {"label", "map", "'
       'rank"} (the model\'s top-4 classes)'),
      ('example / candidates: 3 candidates but d-2 has 4; every list of a study has the same'
       ' length (chance is 1/length)')]),
]


# mutants of the first runs: a broken entry before others, a broken list and a wrong answer together,
# class 0, a missing or odd targets object, an answer out of range
MORE: list[Case] = [
    ('all checks without repeats', pairwise,
     lambda m: ([x.update(attention_check=True, expected="vib") for x in m["items"]], m.pop("repeats")),
     [C('manifest / cams.items.i-1.check: missing: the item is an attention check'),
      C('manifest / cams.items.i-3.check: missing: the item is an attention check'),
      'manifest / items: needs at least one item that is not an attention check']),
    ('d all checks without repeats', distinction,
     lambda m: (it(m, 0).update(attention_check=True), m.pop("repeats")),
     [C('manifest / cams.items.d-1.check: missing: the item is an attention check'),
      'manifest / items: needs at least one item that is not an attention check']),
    ('d candidate not object before others', distinction,
     lambda m: (ic(m, 0, "vib").__setitem__(1, "dog"), ic(m, 0, "vib")[3].update(rank=5)),
     ['item d-1 / candidates.vib[1]: must be an object {label, map, rank}',
      ("item d-1 / candidates.vib[3].rank: must be an integer 1..4 (1 = the model's predicti"
       'on), got 5')]),
    ('d unknown key and answer elsewhere', distinction,
     lambda m: (ic(m, 0, "vib")[3].update(zeta=1), it(m, 0)["answer"].update(vib=2), m.pop("cams")),
     ['item d-1 / candidates.vib[3].zeta: unknown key (candidates are strict)']),
    ('d blank label and answer elsewhere', distinction,
     lambda m: (ic(m, 0, "vib")[3].update(label=""), it(m, 0)["answer"].update(vib=2), m.pop("cams")),
     [('item d-1 / candidates.vib[3].label: must be a non-empty string (the class name shown'
       ' with the map)')]),
    ('d repeated label and answer elsewhere', distinction,
     lambda m: (ic(m, 0, "vib")[3].update(label="cat"), it(m, 0)["answer"].update(vib=2), m.pop("cams")),
     [("item d-1 / candidates.vib[3].label: label 'cat' repeats candidate 0; the labels of o"
       'ne list must differ')]),
    ('d missing map and answer elsewhere', distinction,
     lambda m: (ic(m, 0, "vib")[3].pop("map"), it(m, 0)["answer"].update(vib=2), m.pop("cams")),
     ['item d-1 / candidates.vib[3].map: missing: every candidate needs its map']),
    ('d bad map and answer elsewhere', distinction,
     lambda m: (ic(m, 0, "vib")[3].update(map="/x.png"), it(m, 0)["answer"].update(vib=2), m.pop("cams")),
     [("item d-1 / candidates.vib[3].map: absolute path '/x.png' not allowed; paths are rela"
       'tive to the package folder')]),
    ('d unknown method listed first', distinction,
     lambda m: (it(m, 0).update(candidates={"gradcam": [], **it(m, 0)["candidates"]}),
                ic(m, 0, "baseline")[3].update(rank=5)),
     [("item d-1 / candidates.gradcam: unknown method 'gradcam'; methods are ['vib', 'baseli"
       "ne']"),
      ("item d-1 / candidates.baseline[3].rank: must be an integer 1..4 (1 = the model's pre"
       'diction), got 5')]),
    ('d answer out of range', distinction,
     lambda m: it(m, 0)["answer"].update(vib=4),
     [("item d-1 / answer.vib: is 4 but the rank-1 candidate (the model's prediction) is can"
       'didates.vib[0]')]),
    ('d answer negative', distinction,
     lambda m: it(m, 0)["answer"].update(vib=-1),
     [("item d-1 / answer.vib: is -1 but the rank-1 candidate (the model's prediction) is ca"
       'ndidates.vib[0]')]),
    ('dcams candidate not object before others', distinction,
     lambda m: (cc(m, "d-1", "vib").__setitem__(1, 1), cc(m, "d-1", "vib")[3].update({"class": 5})),
     [C('manifest / cams.items.d-1.candidates.vib[1]: must be an object, got int'),
      C('manifest / cams.items.d-1.candidates.vib[3].class: must be a class index in [0, 4], '
       'got 5')]),
    ('dcams class zero shown wrong', distinction,
     lambda m: (cc(m, "d-1", "vib")[0].update({"class": 1}), cc(m, "d-1", "vib")[1].update({"class": 0})),
     [C("manifest / cams.items.d-1.candidates.vib[0].class: class 1 is 'dog' but the item sho"
       "ws 'cat'"),
      C("manifest / cams.items.d-1.candidates.vib[1].class: class 0 is 'cat' but the item sho"
       "ws 'dog'"),
      C("manifest / cams.items.d-1.candidates.vib[0].class: the answer's class 1 differs from"
       ' targets.vib = 0 (the rank-1 class)')]),
    ('dcams targets missing', distinction,
     lambda m: ci(m, "d-1").pop("targets"),
     [C('manifest / cams.items.d-1.targets: missing')]),
    ('dcams targets not object', distinction,
     lambda m: ci(m, "d-1").update(targets=[0, 1]),
     [C('manifest / cams.items.d-1.targets: must be an object, got list')]),
    ('cams class index without class list', pairwise,
     lambda m: (m["cams"].update(class_names=[]), ci(m, "i-1").update(label_index=-1)),
     [C('manifest / cams.class_names: must be a non-empty list of strings'),
      C('manifest / cams.class_labels: 2 labels for 0 class names'),
      C('manifest / cams.items.i-1.label_index: must be a class index (a non-negative integer'
       '), got -1')]),
    ('cams unknown id before others', pairwise,
     lambda m: (m["cams"].update(items={"i-0": {}, **m["cams"]["items"]}), ci(m, "i-3").pop("sample")),
     [C('manifest / cams.items.i-0: unknown key (expected i-1, i-2, i-3)'),
      C('manifest / cams.items.i-3.sample: missing')]),
]

@pytest.mark.parametrize("name, base, edit, expected",
                         TOP_LEVEL_AND_ITEMS + CAMS_SECTION + DISTINCTION + MORE,
                         ids=[case[0] for case in TOP_LEVEL_AND_ITEMS + CAMS_SECTION + DISTINCTION + MORE])
def test_each_broken_manifest_gets_exactly_its_problems(name: str, base, edit, expected: list[str]) -> None:
    manifest = base()
    edit(manifest)
    assert problems(manifest) == expected
    # where and field are strings ("" for none): tools group and sort problems by them
    assert all(isinstance(p.where, str) and isinstance(p.field, str) for p in validate_manifest(manifest))


def test_a_list_as_item_id_is_reported_not_a_crash() -> None:
    manifest = pairwise()
    it(manifest, 0)["id"] = ["i-1"]
    assert problems(manifest) == [
        C("manifest / cams.items.i-1: unknown key (expected i-2, i-3)"),
        "items[0] / id: must match [A-Za-z0-9_.-]{1,128}, got ['i-1']"]


def test_a_non_object_manifest_is_one_problem() -> None:
    assert validate_manifest([pairwise()]) == [Problem("manifest", "", "must be a JSON object, got list")]


def test_problems_carry_where_and_field_apart() -> None:
    """Tools group problems by item (``where``) and key (``field``): each is its own attribute."""
    manifest = pairwise()
    it(manifest, 0)["maps"].pop("vib")
    ci(manifest, "i-1")["targets"].pop("vib")
    assert validate_manifest(manifest) == [
        Problem("manifest", "cams.items.i-1.targets.vib", "missing" + FIX),
        Problem("i-1", "maps.vib", "missing: exactly one map per method is required")]


INDEPENDENT = ["schema other", "name with space", "created_at not a date", "question without label",
               "instructions blank", "consent not a string", "repeats negative", "provenance a list",
               "example unknown keys", "item unknown keys", "item label blank", "check without expected",
               "item mask bad", "cams only bad", "cams seed str", "cams method beta str",
               "cams item sample blank", "cams targets bad"]


def test_every_independent_problem_is_reported_at_once() -> None:
    """One run of the validator lists everything to fix: the problems of many broken keys together are
    the problems of each alone."""
    cases = {name: (edit, expected) for name, _, edit, expected in TOP_LEVEL_AND_ITEMS + CAMS_SECTION}
    manifest, union = pairwise(), []
    for name in INDEPENDENT:
        edit, expected = cases[name]
        edit(manifest)
        union += expected
    assert sorted(problems(manifest)) == sorted(union) and len(set(union)) == len(union) > len(INDEPENDENT)


D_INDEPENDENT = ["d question with label", "d no preference", "d example keys", "d candidate keys",
                 "d candidate rank five", "d answer unknown method", "d attention_check a string",
                 "dcams check kind bad", "dcams candidate heatmap bad"]


def test_every_independent_distinction_problem_is_reported_at_once() -> None:
    cases = {name: (edit, expected) for name, _, edit, expected in CAMS_SECTION + DISTINCTION}
    manifest, union = distinction(), []
    for name in D_INDEPENDENT:
        edit, expected = cases[name]
        edit(manifest)
        union += expected
    assert sorted(problems(manifest)) == sorted(union)


# ------------------------------------------------------------------------------ the cams section
@pytest.mark.parametrize("base", [pairwise, distinction])
def test_cams_section_round_trip(base) -> None:
    manifest = base()
    section = CamsSection.from_manifest(manifest)
    assert section is not None and section.to_json() == manifest["cams"]
    assert json.dumps(section.to_json()) == json.dumps(manifest["cams"])  # key order too
    again = CamsSection.from_manifest({**manifest, "cams": section.to_json()})
    assert again == section


def test_cams_section_typed_values() -> None:
    pair = CamsSection.from_manifest(pairwise())
    assert (pair.target, pair.only, pair.seed, pair.image_size) == ("truth", "any", 0, 64)
    assert pair.data == {"data": "synthetic"} and pair.class_names == ("cat_x", "dog_x")
    assert pair.class_labels == ("cat", "dog")
    assert pair.methods["vib"].beta == 0.01 and pair.methods["baseline"].beta is None
    vib = pair.methods["vib"]
    assert (vib.cam, vib.arch, vib.head) == ("cam", "resnet18", "vib")
    assert pair.items["i-2"].check == CatchTrial("vib", "wrong-class") and pair.items["i-1"].check is None
    assert (pair.items["i-3"].sample, pair.items["i-3"].label_index) == ("val/3.png", 1)
    assert pair.items["i-3"].targets == {"vib": 1, "baseline": 0} and pair.items["i-3"].candidates is None
    dist = CamsSection.from_manifest(distinction())
    assert dist.items["d-2"].check == CatchTrial(None, "on-object")
    assert dist.items["d-1"].candidates["baseline"][3] == CamsCandidate(4, "heat/2-3.npy")
    assert dist.items["d-2"].candidates["vib"] == tuple(CamsCandidate(c) for c in (1, 2, 3, 4))
    stored = dist.to_json()["items"]
    assert stored["d-2"]["check"] == {"kind": "on-object"}
    assert stored["d-2"]["candidates"]["vib"][0] == {"class": 1}
    assert list(pair.to_json()["items"]["i-2"]["check"]) == ["expected", "kind"]


def test_cams_section_is_parsed_apart_from_other_problems() -> None:
    """cams.metrics reads the section of any package; a problem elsewhere in the manifest is not its
    business, a problem of the section is, naming the package and the fix."""
    manifest = pairwise()
    manifest["question"] = "no placeholder"
    assert CamsSection.from_manifest(manifest) is not None
    manifest.pop("cams")
    assert CamsSection.from_manifest(manifest) is None
    broken = pairwise()
    ci(broken, "i-1").pop("sample")
    with pytest.raises(PackageError) as caught:
        CamsSection.from_manifest(broken, "studies/demo")
    assert str(caught.value) == ("1 problem(s) in study package studies/demo:\n"
                                 "  - manifest / cams.items.i-1.sample: missing" + FIX)
    with pytest.raises(PackageError, match=r"^1 problem\(s\) in study manifest:"):
        CamsSection.from_manifest(broken)


# --------------------------------------------------------------------------- referenced files
PAIRWISE_FILES = [  # (where, field) of every file the pairwise manifest names
    ("example", "image"), ("example", "maps.vib"), ("example", "maps.baseline"),
    ("i-1", "image"), ("i-1", "maps.vib"), ("i-1", "maps.baseline"), ("i-1", "mask"), ("i-1", "heatmaps.vib"),
    ("i-1", "heatmaps.baseline"), ("i-2", "image"), ("i-2", "maps.vib"), ("i-2", "maps.baseline"),
    ("i-3", "image"), ("i-3", "maps.vib"), ("i-3", "maps.baseline")]


METHODS = ("vib", "baseline")


def _distinction_files() -> list[tuple[str, str]]:
    found = [("example", "image")] + [("example", f"candidates[{k}].map") for k in range(4)]
    for item_id, has_mask in (("d-1", True), ("d-2", False)):
        found.append((item_id, "image"))
        found += [(item_id, f"candidates.{method}[{k}].map") for method in METHODS for k in range(4)]
        found += [(item_id, "mask")] if has_mask else []
    found += [("d-1", f"cams.candidates.{method}[{k}].heatmap") for method in METHODS for k in range(4)]
    return found


@pytest.mark.parametrize("base, expected", [(pairwise, PAIRWISE_FILES), (distinction, _distinction_files())])
def test_every_referenced_file_is_checked_and_named(tmp_path: Path, base, expected) -> None:
    """A package with its manifest but no files: each referenced file is reported missing, under the
    item and field that name it, and ``package_files`` lists exactly these paths (the fingerprint's)."""
    manifest = base()
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))
    found = validate_package(tmp_path)
    assert [(p.where, p.field) for p in found] == expected
    assert all(p.reason.startswith("file not found: ") for p in found)
    paths = [p.reason.removeprefix("file not found: ") for p in found]
    assert package_files(tmp_path, manifest) == sorted(set(paths))
    assert "images/e.png" in paths and len(set(paths)) == len(paths)


def test_references_in_a_broken_manifest_are_still_checked(tmp_path: Path) -> None:
    """Files are checked even when the structure is broken: whatever can be read is, the rest skipped."""
    manifest = {
        "example": {"image": "images/e.png", "maps": ["maps/x.png"],
                    "candidates": [None, {"map": "maps/c.png"}]},
        "items": [
            "not an item",
            {"id": "bad id", "image": "images/b.png", "maps": {"vib": "/abs.png", "baseline": "maps/1.png"},
             "candidates": {"vib": "x", "baseline": [{"map": "maps/2.png"}, 3]}, "mask": "../m.png",
             "heatmaps": {"vib": "heat/h.npy"}},
            {"id": "i-2", "candidates": ["maps/3.png"], "heatmaps": "heat/x.npy"},
        ],
        "cams": {"items": {"i-2": {"candidates": {"vib": [{"heatmap": "heat/c.npy"}, {"class": 1}, 5],
                                                  "baseline": 5}},
                           "i-3": {"candidates": []}, "i-4": 7}},
    }
    assert package_files(tmp_path, manifest) == [
        "heat/c.npy", "heat/h.npy", "images/b.png", "images/e.png", "maps/1.png", "maps/2.png", "maps/c.png"]
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))
    missing = [(p.where, p.field) for p in validate_package(tmp_path)
               if p.reason.startswith("file not found")]
    assert missing == [("example", "image"), ("example", "candidates[1].map"), ("items[1]", "image"),
                       ("items[1]", "maps.baseline"), ("items[1]", "candidates.baseline[0].map"),
                       ("items[1]", "heatmaps.vib"), ("i-2", "cams.candidates.vib[0].heatmap")]
    for odd in ({"cams": []}, {"cams": {"items": []}}, {"items": {"i-1": {}}}, {"example": "x"}):
        assert package_files(tmp_path, odd) == []


# ------------------------------------------------------------------------- reading and writing
def test_reading_problems_name_the_package_and_the_fix(tmp_path: Path) -> None:
    absent = tmp_path / "nope"
    assert validate_package(absent) == [
        Problem("manifest", "", f"package folder {absent} does not exist or is not a folder")]
    assert validate_package(tmp_path) == [Problem("manifest", "", f"manifest.json not found in {tmp_path}")]
    (tmp_path / "manifest.json").mkdir()
    assert validate_package(tmp_path) == [Problem("manifest", "", f"manifest.json not found in {tmp_path}")]
    (tmp_path / "manifest.json").rmdir()
    (tmp_path / MANIFEST_NAME).write_bytes(b'{"name": "caf\xe9"}')  # Latin-1, not UTF-8
    (found,) = validate_package(tmp_path)
    assert (found.where, found.field) == ("manifest", "")
    assert found.reason.startswith("manifest.json is not valid UTF-8 JSON ('utf-8' codec can't decode")
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    assert validate_package(tmp_path) == [Problem(
        "manifest", "", "manifest.json is not valid UTF-8 JSON (Expecting property name enclosed in "
        "double quotes: line 1 column 2 (char 1))")]


def test_a_manifest_behind_an_escaping_link_is_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps(pairwise()))
    root = tmp_path / "pkg"
    root.mkdir()
    (root / MANIFEST_NAME).symlink_to(outside)
    (found,) = validate_package(root)
    assert (found.where, found.field) == ("manifest", "")
    assert found.reason == (f"path 'manifest.json' resolves to {outside}, outside the package folder "
                            f"{root.resolve()}")


def test_a_manifest_that_is_not_an_object_is_reported_without_file_checks(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_NAME).write_text("[1, 2]")
    assert validate_package(tmp_path) == [Problem("manifest", "", "must be a JSON object, got list")]


def test_write_manifest_writes_readable_utf8_json(tmp_path: Path) -> None:
    manifest = pairwise()
    it(manifest, 0)["label"] = "café ☕"
    write_manifest(tmp_path, manifest)
    text = (tmp_path / MANIFEST_NAME).read_text(encoding="utf-8")
    assert text == json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    # indented and not escaped: readable and diffable by hand
    assert '"label": "café ☕"' in text and '\n  "schema": ' in text


def test_write_and_load_refuse_a_broken_manifest_naming_the_package(tmp_path: Path) -> None:
    manifest = pairwise()
    manifest["name"] = "bad name"
    root = tmp_path / "pkg"
    root.mkdir()
    with pytest.raises(PackageError) as caught:
        write_manifest(root, manifest)
    assert str(caught.value) == (f"1 problem(s) in study package {root}:\n"
                                 "  - manifest / name: must match [A-Za-z0-9_-]{1,64}, got 'bad name'")
    assert not (root / MANIFEST_NAME).exists()
    (root / MANIFEST_NAME).write_text(json.dumps(copy.deepcopy(manifest)))
    with pytest.raises(PackageError) as caught:
        load_package(root)
    assert str(caught.value).startswith(f"{len(caught.value.problems)} problem(s) in study package {root}:\n")
    assert "  - manifest / name: must match" in str(caught.value)


def test_an_image_over_pillows_pixel_limit_is_refused_not_decoded(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow only warns between its pixel limit and twice that; the validator refuses those too (a
    decompression bomb must not reach the rater server)."""
    from survey.package import _decode

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    warned, failed = tmp_path / "warn.png", tmp_path / "fail.png"
    Image.new("RGB", (12, 12)).save(warned)   # 144 pixels: above the limit, below twice it
    Image.new("RGB", (20, 20)).save(failed)   # 400 pixels: Pillow refuses these itself
    for path in (warned, failed):
        with pytest.raises(ValueError, match=r"^image too large \(Image size \(\d+ pixels\) exceeds limit"):
            _decode(path)


def test_a_file_that_is_no_image_names_pillows_error(tmp_path: Path) -> None:
    from survey.package import _decode

    path = tmp_path / "x.png"
    path.write_bytes(b"not an image at all")
    with pytest.raises(ValueError) as caught:
        _decode(path)
    assert str(caught.value).startswith(
        "does not decode as an image (UnidentifiedImageError: cannot identify")


def _write_files(root: Path, manifest: dict, size: tuple[int, int] = (8, 8)) -> None:
    """Every file the manifest references: PNG images and maps, greyscale masks, ``.npy`` heatmaps."""
    for relative in package_files(root, manifest):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if relative.endswith(".npy"):
            path.write_bytes(b"\x93NUMPY heatmap, never decoded as an image")
        else:
            Image.new("L" if relative.startswith("masks/") else "RGB", size).save(path, format="PNG")


@pytest.mark.parametrize("base", [pairwise, distinction])
def test_a_complete_package_on_disk_is_valid(tmp_path: Path, base) -> None:
    """Heatmaps (also the cams section's) are checked to exist, not decoded as images."""
    manifest = base()
    _write_files(tmp_path, manifest)
    write_manifest(tmp_path, manifest)
    assert validate_package(tmp_path) == []


def test_the_example_maps_must_share_a_size(tmp_path: Path) -> None:
    manifest = pairwise()
    _write_files(tmp_path, manifest)
    Image.new("RGB", (8, 9)).save(tmp_path / manifest["example"]["maps"]["baseline"], format="PNG")
    write_manifest(tmp_path, manifest)
    assert validate_package(tmp_path) == [Problem(
        "example", "maps.baseline",
        "map is 8x9 but another map of this item is 8x8; the pair is shown at the same size")]


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def test_an_image_pillow_only_warns_about_is_accepted(tmp_path: Path) -> None:
    """Only decompression-bomb warnings refuse an image: a PNG with a broken animation header (Pillow
    warns and shows the still image, as browsers do) is a valid image."""
    from survey.package import _decode

    path = tmp_path / "x.png"
    Image.new("RGB", (5, 4)).save(path, format="PNG")
    data = path.read_bytes()
    header_end = 8 + 25  # signature, IHDR
    path.write_bytes(data[:header_end] + _png_chunk(b"acTL", bytes(8)) + data[header_end:])
    with pytest.warns(UserWarning, match="Invalid APNG"), Image.open(path) as im:
        im.load()
    with pytest.warns(UserWarning, match="Invalid APNG"):
        assert _decode(path) == ("PNG", (5, 4), "RGB")
