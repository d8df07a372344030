"""Study packages (schema ``vibcam.study/1``): a folder with ``manifest.json`` and image files.

The CAM side writes packages with :func:`write_manifest` and :func:`content_name`; the survey importer
checks them with :func:`validate_package`. One validator for both, so a package that leaves the CAM
step is exactly what the survey accepts. Every check reports *all* problems it finds (item, field,
reason), never only the first, so a broken package is fixed in one round trip. The manifest's ``cams``
section (what the CAM side records for its metrics) is a typed :class:`CamsSection`, checked by the same
validator, so writer and reader cannot drift apart on a key.

Torch-free on purpose (stdlib + Pillow): the rater server must install and start without PyTorch.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath, PureWindowsPath

from fileio import write_text_atomic

SCHEMA = "vibcam.study/1"
MANIFEST_NAME = "manifest.json"

NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
ITEM_ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,128}")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
HEATMAP_SUFFIXES = (".npy",)
IMAGE_FORMATS = {"PNG", "JPEG"}
ITEM_KEYS = {"id", "label", "image", "maps", "mask", "heatmaps", "predictions", "attention_check", "expected"}
EXAMPLE_KEYS = {"label", "image", "maps"}
# The task a package asks raters to do (docs/study-package.md): "pairwise" (default) or "distinction".
TASKS = ("pairwise", "distinction")
DISTINCTION_ITEM_KEYS = {"id", "label", "image", "candidates", "answer", "mask", "heatmaps", "predictions",
                         "attention_check"}
DISTINCTION_EXAMPLE_KEYS = {"label", "image", "candidates"}
CANDIDATE_KEYS = {"label", "map", "rank"}
#: Maps per distinction trial: HIVE's top-4. The analysis' chance level (1/4) and the votes format's
#: index ranges (survey.votes_format) rest on it, so a package must have exactly this many.
CANDIDATES = 4
#: A distinction answer's confidence scale (1 = just guessing, 5 = certain); schema and votes format share it.
CONFIDENCE_LEVELS = (1, 2, 3, 4, 5)
# Says nothing about which class the model chose (and so has no {label}: the true class would give it away).
DEFAULT_DISTINCTION_QUESTION = ("The model looked at this photo and chose one of these classes. "
                                "Which map belongs to the class it chose?")
# Method names this short ("a", "v1") appear by chance in hex ids and file names; longer ones would
# tell a rater which map is which, so ids and paths must not contain them.
MIN_REVEALING_METHOD_NAME = 3


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a package: where (item id, "manifest", "example"), which field, why."""

    where: str
    field: str
    reason: str

    def __str__(self) -> str:
        scope = self.where
        if scope not in {"manifest", "example"} and not scope.startswith("items["):
            scope = f"item {scope}"
        return f"{scope} / {self.field}: {self.reason}" if self.field else f"{scope}: {self.reason}"


class PackageError(ValueError):
    """A package that cannot be used; ``problems`` lists every reason, the message too."""

    def __init__(self, problems: list[Problem], root: Path | str | None = None) -> None:
        self.problems = list(problems)
        head = f"study package {root}" if root is not None else "study manifest"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in {head}:\n{lines}")


class UnsafePathError(ValueError):
    """A manifest path that is absolute, climbs out with ``..`` or leaves the package via a symlink."""


# ----------------------------------------------------------------------------------------- paths
def _path_syntax_problem(relative: object) -> str | None:
    """Why ``relative`` is not a plain relative POSIX path inside the package, or None if it is."""
    if not isinstance(relative, str):
        return f"must be a relative path string, got {type(relative).__name__}"
    if not relative:
        return "empty path"
    if "\x00" in relative:
        return "path contains a NUL character"
    if "\\" in relative:
        return "use '/' as the separator (backslash found)"
    if PurePosixPath(relative).is_absolute() or PureWindowsPath(relative).drive:
        return f"absolute path {relative!r} not allowed; paths are relative to the package folder"
    parts = relative.split("/")
    if ".." in parts:
        return f"path {relative!r} climbs out of the package with '..'"
    if any(part in {"", "."} for part in parts):
        return f"path {relative!r} has empty or '.' components; write it plainly like 'maps/x.png'"
    return None


def resolve_inside(root: Path, relative: str) -> Path:
    """The absolute path of ``relative`` under ``root``; raises UnsafePathError if it would escape.

    This is the one path-safety check everyone uses: syntax first (no absolute paths, no ``..``),
    then the resolved path (symlinks followed) must still lie inside the resolved root.
    """
    reason = _path_syntax_problem(relative)
    if reason is not None:
        raise UnsafePathError(reason)
    base = Path(root).resolve()
    candidate = (base / relative).resolve()
    if not candidate.is_relative_to(base):
        raise UnsafePathError(f"path {relative!r} resolves to {candidate}, outside the package folder {base}")
    return candidate


def content_name(data: bytes, suffix: str) -> str:
    """A file name from the bytes' sha256 (20 hex chars + suffix): it says nothing about the method."""
    if not suffix.startswith("."):
        suffix = "." + suffix
    if not re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix):
        raise ValueError(f"bad file suffix {suffix!r}; expected something like '.png'")
    return hashlib.sha256(data).hexdigest()[:20] + suffix.lower()


# ------------------------------------------------------------------------------------- structure
class _Collector:
    """Accumulates problems so every check runs and all of them are reported together."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, where: str, field: str, reason: str) -> None:
        self.problems.append(Problem(where, field, reason))


def _tokens(text: str) -> set[str]:
    return {t for t in re.split(r"[^a-z0-9]+", text.lower()) if t}


def _revealing_methods(text: str, methods: list[str]) -> list[str]:
    """Method names (long enough to matter) that appear as a whole word in ``text``."""
    words = _tokens(text)
    return [m for m in methods if len(m) >= MIN_REVEALING_METHOD_NAME and m.lower() in words]


def _check_path(out: _Collector, where: str, field: str, value: object, suffixes: tuple[str, ...],
                methods: list[str]) -> None:
    reason = _path_syntax_problem(value)
    if reason is not None:
        out.add(where, field, reason)
        return
    assert isinstance(value, str)
    if not value.lower().endswith(suffixes):
        out.add(where, field, f"{value!r} must end with one of {', '.join(suffixes)}")
    revealing = _revealing_methods(value, methods)
    if revealing:
        out.add(where, field,
                f"path {value!r} names method {revealing[0]!r}; use survey.package.content_name()")


def _check_method_map(out: _Collector, where: str, field: str, value: object, methods: list[str],
                      suffixes: tuple[str, ...], *, exact: bool) -> None:
    """A {method: path} mapping: one entry per method (``exact``) or a subset of them."""
    if not isinstance(value, dict):
        out.add(where, field, f"must be an object {{method: path}}, got {type(value).__name__}")
        return
    for method, path in value.items():
        if method not in methods:
            out.add(where, f"{field}.{method}", f"unknown method {method!r}; methods are {methods}")
            continue
        _check_path(out, where, f"{field}.{method}", path, suffixes, methods)
    if exact:
        for method in methods:
            if method not in value:
                out.add(where, f"{field}.{method}", "missing: exactly one map per method is required")


def _check_predictions(out: _Collector, where: str, value: object, methods: list[str]) -> None:
    if not isinstance(value, dict):
        out.add(where, "predictions", "must be an object {method: [{label, p}, ...]}")
        return
    for method, rows in value.items():
        field = f"predictions.{method}"
        if method not in methods:
            out.add(where, field, f"unknown method {method!r}")
            continue
        if not isinstance(rows, list):
            out.add(where, field, "must be a list of {label, p}")
            continue
        for k, row in enumerate(rows):
            ok = (isinstance(row, dict) and isinstance(row.get("label"), str)
                  and isinstance(row.get("p"), (int, float)) and not isinstance(row.get("p"), bool)
                  and math.isfinite(row["p"]) and 0.0 <= row["p"] <= 1.0)
            if not ok:
                out.add(where, f"{field}[{k}]", "must be {\"label\": str, \"p\": number in [0, 1]}")


def _nonempty_str(value: object) -> bool:
    return isinstance(value, str) and value.strip() != ""


def manifest_task(data: dict) -> str:
    """The task of a (validated) manifest: ``"pairwise"`` when the key is absent."""
    return data.get("task", "pairwise")


def _check_top_level(out: _Collector, data: dict) -> list[str]:
    """Checks the study-wide keys; returns the method list (empty if unusable)."""
    m = "manifest"
    task = data.get("task", "pairwise")
    if task not in TASKS:
        out.add(m, "task", f"must be one of {list(TASKS)}, got {task!r}")
    if data.get("schema") != SCHEMA:
        out.add(m, "schema", f"must be {SCHEMA!r}, got {data.get('schema')!r}")
    name = data.get("name")
    if not (isinstance(name, str) and NAME_PATTERN.fullmatch(name)):
        out.add(m, "name", f"must match [A-Za-z0-9_-]{{1,64}}, got {name!r}")
    created = data.get("created_at")
    try:
        if not isinstance(created, str):
            raise ValueError
        datetime.fromisoformat(created)
    except ValueError:
        out.add(m, "created_at", f"must be an ISO 8601 date-time string, got {created!r}")

    methods: list[str] = []
    raw_methods = data.get("methods")
    if not isinstance(raw_methods, list) or len(raw_methods) < 2:
        out.add(m, "methods", "must be a list of at least 2 method names")
    else:
        for k, method in enumerate(raw_methods):
            if not (isinstance(method, str) and NAME_PATTERN.fullmatch(method)):
                out.add(m, f"methods[{k}]", f"must match [A-Za-z0-9_-]{{1,64}}, got {method!r}")
            elif method in methods:
                out.add(m, f"methods[{k}]", f"duplicate method {method!r}")
            else:
                methods.append(method)
    for role in ("proposed", "baseline"):
        value = data.get(role)
        if not isinstance(value, str) or value not in methods:
            out.add(m, role, f"must be one of the methods {methods}, got {value!r}")
    if data.get("proposed") is not None and data.get("proposed") == data.get("baseline"):
        out.add(m, "baseline", "must differ from proposed")

    question = data.get("question")
    if task == "distinction":
        _check_distinction_texts(out, data)
    elif not _nonempty_str(question):
        out.add(m, "question", "must be a non-empty string")
    elif "{label}" not in question:
        out.add(m, "question", "must contain the placeholder {label}")
    if not _nonempty_str(data.get("instructions")):
        out.add(m, "instructions", "must be a non-empty Markdown string")
    if "consent" in data and not isinstance(data["consent"], str):
        out.add(m, "consent", "must be a Markdown string")
    if "allow_no_preference" in data and not isinstance(data["allow_no_preference"], bool):
        out.add(m, "allow_no_preference", "must be true or false")
    if "repeats" in data:
        r = data["repeats"]
        if isinstance(r, bool) or not isinstance(r, int) or r < 0:
            out.add(m, "repeats", f"must be a non-negative integer, got {r!r}")
    if "provenance" in data and not isinstance(data["provenance"], dict):
        out.add(m, "provenance", "must be an object")

    example = data.get("example")
    if example is not None and task == "distinction":
        _check_distinction_example(out, example, methods)
    elif example is not None:
        if not isinstance(example, dict):
            out.add("example", "", "must be an object {label, image, maps}")
        else:
            for key in sorted(set(example) - EXAMPLE_KEYS):
                out.add("example", key, "unknown key")
            if not _nonempty_str(example.get("label")):
                out.add("example", "label", "must be a non-empty string")
            _check_path(out, "example", "image", example.get("image"), IMAGE_SUFFIXES, methods)
            _check_method_map(out, "example", "maps", example.get("maps"), methods, IMAGE_SUFFIXES,
                              exact=True)
    return methods


def _check_item_header(out: _Collector, index: int, item: object, methods: list[str], seen: set[str],
                       keys: set[str]) -> str | None:
    """The checks every task's items share (id, keys, label, image, mask, heatmaps, predictions);
    returns how problems name the item, or None when it is not even an object."""
    if not isinstance(item, dict):
        out.add(f"items[{index}]", "", "must be an object")
        return None
    raw_id = item.get("id")
    if isinstance(raw_id, str) and ITEM_ID_PATTERN.fullmatch(raw_id):
        where = raw_id
        if raw_id in seen:
            out.add(where, "id", f"duplicate item id (items[{index}])")
        seen.add(raw_id)
        revealing = _revealing_methods(raw_id, methods)
        if revealing:
            out.add(where, "id", f"names method {revealing[0]!r}; ids must say nothing about any method")
    else:
        where = f"items[{index}]"
        out.add(where, "id", f"must match [A-Za-z0-9_.-]{{1,128}}, got {raw_id!r}")
    for key in sorted(set(item) - keys - {"maps", "expected", "candidates", "answer"}):
        out.add(where, key, "unknown key (items are strict)")
    if not _nonempty_str(item.get("label")):
        out.add(where, "label", "must be a non-empty string")
    _check_path(out, where, "image", item.get("image"), IMAGE_SUFFIXES, methods)
    if "mask" in item:
        _check_path(out, where, "mask", item["mask"], IMAGE_SUFFIXES, methods)
    if "heatmaps" in item:
        _check_method_map(out, where, "heatmaps", item["heatmaps"], methods, HEATMAP_SUFFIXES, exact=False)
    if "predictions" in item:
        _check_predictions(out, where, item["predictions"], methods)
    return where


def _attention_flag(out: _Collector, where: str, item: dict) -> bool | None:
    check = item.get("attention_check", False)
    if not isinstance(check, bool):
        out.add(where, "attention_check", "must be true or false")
        return None
    return check


def _check_item(out: _Collector, index: int, item: object, methods: list[str], seen: set[str]) -> bool | None:
    """Checks one pairwise item; returns whether it is an attention check (None if unreadable)."""
    where = _check_item_header(out, index, item, methods, seen, ITEM_KEYS)
    if where is None:
        return None
    assert isinstance(item, dict)
    for key in sorted({"candidates", "answer"} & set(item)):
        out.add(where, key, "unknown key (items are strict); candidates and answer belong to "
                '"task": "distinction" packages')
    _check_method_map(out, where, "maps", item.get("maps"), methods, IMAGE_SUFFIXES, exact=True)
    check = item.get("attention_check", False)
    if not isinstance(check, bool):
        out.add(where, "attention_check", "must be true or false")
        return None
    expected = item.get("expected")
    if check and expected not in methods:
        out.add(where, "expected", f"an attention check needs expected: one of {methods}, got {expected!r}")
    if not check and "expected" in item:
        out.add(where, "expected", "only attention checks (attention_check: true) have an expected method")
    return check


# ------------------------------------------------------------------------------------ distinction
def _check_distinction_texts(out: _Collector, data: dict) -> None:
    """The question is optional (DEFAULT_DISTINCTION_QUESTION) and may not name the item's label: the
    true class is most often the model's prediction, so showing it would give the answer away."""
    m = "manifest"
    if "question" in data:
        question = data["question"]
        if not _nonempty_str(question):
            out.add(m, "question", "must be a non-empty string (or left out for the default question)")
        elif "{label}" in question:
            out.add(m, "question", "a distinction question must not contain {label}: the item's class would "
                    "give the model's prediction away; leave the key out for the default question")
    if data.get("allow_no_preference", False) is True:
        out.add(m, "allow_no_preference", "a distinction study has no 'no preference' answer; leave it out")


def _check_candidates(out: _Collector, where: str, field: str, value: object,
                      methods: list[str]) -> tuple[int, int] | None:
    """One candidate list ``[{label, map, rank}, ...]``; returns (count, index of rank 1) when valid."""
    if not isinstance(value, list) or len(value) != CANDIDATES:
        out.add(where, field, f"must be a list of exactly {CANDIDATES} candidates "
                "{\"label\", \"map\", \"rank\"} (the model's top-4 classes)")
        return None
    ok = True
    labels: dict[str, int] = {}
    ranks: list[int] = []
    for k, candidate in enumerate(value):
        at = f"{field}[{k}]"
        if not isinstance(candidate, dict):
            out.add(where, at, "must be an object {label, map, rank}")
            ok = False
            continue
        for key in sorted(set(candidate) - CANDIDATE_KEYS):
            out.add(where, f"{at}.{key}", "unknown key (candidates are strict)")
            ok = False
        label = candidate.get("label")
        if not _nonempty_str(label):
            out.add(where, f"{at}.label", "must be a non-empty string (the class name shown with the map)")
            ok = False
        else:
            key = " ".join(label.split()).casefold()
            if key in labels:
                out.add(where, f"{at}.label", f"label {label!r} repeats candidate {labels[key]}; the labels of "
                        "one list must differ")
                ok = False
            labels.setdefault(key, k)
        if "map" not in candidate:
            out.add(where, f"{at}.map", "missing: every candidate needs its map")
            ok = False
        else:
            before = len(out.problems)
            _check_path(out, where, f"{at}.map", candidate["map"], IMAGE_SUFFIXES, methods)
            ok = ok and len(out.problems) == before
        rank = candidate.get("rank")
        if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= len(value):
            out.add(where, f"{at}.rank", f"must be an integer 1..{len(value)} (1 = the model's prediction), "
                    f"got {rank!r}")
            ok = False
        else:
            ranks.append(rank)
    if ok and sorted(ranks) != list(range(1, len(value) + 1)):
        out.add(where, field, f"ranks {ranks} must be each of 1..{len(value)} exactly once")
        ok = False
    return (len(value), ranks.index(1)) if ok else None


def _check_distinction_example(out: _Collector, example: object, methods: list[str]) -> None:
    if not isinstance(example, dict):
        out.add("example", "", "must be an object {image, candidates} (label optional)")
        return
    for key in sorted(set(example) - DISTINCTION_EXAMPLE_KEYS):
        out.add("example", key, "unknown key")
    if "label" in example and not _nonempty_str(example["label"]):
        out.add("example", "label", "must be a non-empty string")
    _check_path(out, "example", "image", example.get("image"), IMAGE_SUFFIXES, methods)
    _check_candidates(out, "example", "candidates", example.get("candidates"), methods)


def _check_distinction_item(out: _Collector, index: int, item: object, methods: list[str], seen: set[str],
                            counts: list[tuple[str, int]]) -> bool | None:
    """One distinction item: the candidates of every method and the answer (index of rank 1) per
    method. Returns whether it is an attention check (None if unreadable); appends (where, count)."""
    where = _check_item_header(out, index, item, methods, seen, DISTINCTION_ITEM_KEYS)
    if where is None:
        return None
    assert isinstance(item, dict)
    if "maps" in item:
        out.add(where, "maps", "a distinction item has candidates instead of maps")
    if "expected" in item:
        out.add(where, "expected", "a distinction item has no expected method: the correct answer of an "
                "attention check is its rank-1 candidate, like every item")
    candidates, answer = item.get("candidates"), item.get("answer")
    rank_one: dict[str, int] = {}
    if not isinstance(candidates, dict):
        out.add(where, "candidates", "must be an object {method: [{label, map, rank}, ...]}")
    else:
        for method, listed in candidates.items():
            if method not in methods:
                out.add(where, f"candidates.{method}", f"unknown method {method!r}; methods are {methods}")
                continue
            checked = _check_candidates(out, where, f"candidates.{method}", listed, methods)
            if checked is not None:
                counts.append((where, checked[0]))
                rank_one[method] = checked[1]
        for method in methods:
            if method not in candidates:
                out.add(where, f"candidates.{method}", "missing: every method needs its candidate list")
    if not isinstance(answer, dict):
        out.add(where, "answer", "must be an object {method: index of the rank-1 candidate}")
    else:
        for method, index_ in answer.items():
            if method not in methods:
                out.add(where, f"answer.{method}", f"unknown method {method!r}")
            elif isinstance(index_, bool) or not isinstance(index_, int):
                out.add(where, f"answer.{method}", f"must be an integer index, got {index_!r}")
            elif method in rank_one and index_ != rank_one[method]:
                out.add(where, f"answer.{method}", f"is {index_} but the rank-1 candidate (the model's "
                        f"prediction) is candidates.{method}[{rank_one[method]}]")
        for method in methods:
            if method not in answer:
                out.add(where, f"answer.{method}", "missing: every method needs the index of its rank-1 candidate")
    return _attention_flag(out, where, item)


def _check_one_candidate_count(out: _Collector, data: dict, counts: list[tuple[str, int]]) -> None:
    """Every list of the study has the same length, so chance is the same for every trial."""
    example = data.get("example")
    if isinstance(example, dict) and isinstance(example.get("candidates"), list):
        counts = [*counts, ("example", len(example["candidates"]))]
    if counts and len({n for _, n in counts}) > 1:
        first_where, first = counts[0]
        for where, n in counts:
            if n != first:
                out.add(where, "candidates", f"{n} candidates but {first_where} has {first}; every list of a "
                        "study has the same length (chance is 1/length)")


def validate_manifest(data: dict) -> list[Problem]:
    """Every structural problem of a manifest (no file access); empty list if it is valid."""
    out = _Collector()
    if not isinstance(data, dict):
        out.add("manifest", "", f"must be a JSON object, got {type(data).__name__}")
        return out.problems
    methods = _check_top_level(out, data)
    out.problems += _cams_problems(data)
    items = data.get("items")
    if not isinstance(items, list) or not items:
        out.add("manifest", "items", "must be a non-empty list")
        return out.problems
    seen: set[str] = set()
    if data.get("task", "pairwise") == "distinction":
        counts: list[tuple[str, int]] = []
        kinds = [_check_distinction_item(out, k, item, methods, seen, counts) for k, item in enumerate(items)]
        _check_one_candidate_count(out, data, counts)
    else:
        kinds = [_check_item(out, k, item, methods, seen) for k, item in enumerate(items)]
    n_checks, n_regular = kinds.count(True), kinds.count(False)
    if None not in kinds:
        if n_regular == 0:
            out.add("manifest", "items", "needs at least one item that is not an attention check")
        elif n_checks > n_regular:
            out.add("manifest", "items", f"{n_checks} attention checks but only {n_regular} regular items: "
                    "checks are spread between regular items, so there can be at most one per regular item")
        repeats = data.get("repeats", 0)
        if isinstance(repeats, int) and not isinstance(repeats, bool) and repeats > n_regular:
            out.add("manifest", "repeats", f"{repeats} repeats but only {n_regular} regular items")
    return out.problems


# ---------------------------------------------------------------------------------- cams section
# The manifest's top-level ``cams`` object: what ``cams.generate`` knows about each item and ``cams.metrics``
# needs to score it (the class each stored map explains, the class list). The survey ignores it. It is typed
# and validated here, beside the rest of the format, so that a renamed or missing key is an error naming the
# key, never a silent default (a defaulted ``targets`` would score the maps against the wrong class).
CAMS_TARGETS = ("truth", "predicted")
CAMS_FILTERS = ("any", "both-correct", "disagree")
CAMS_CHECK_KINDS = ("wrong-class", "flipped")
# A distinction attention check: the answer's map is the labelled object's mask, the other maps are flat.
CAMS_DISTINCTION_CHECK_KINDS = ("on-object",)
_CAMS_FIX = "regenerate the package with python -m cams.generate"


@dataclass(frozen=True)
class CamsMethod:
    """How one method's maps were made: CAM method name and what its checkpoint says about itself."""

    cam: str
    arch: str
    head: str
    beta: float | None


@dataclass(frozen=True)
class CatchTrial:
    """An attention check: the method whose map is real, and how the others were made wrong. A distinction
    check has no expected method (its answer is the rank-1 candidate, like every item's): ``expected`` None."""

    expected: str | None
    kind: str


@dataclass(frozen=True)
class CamsCandidate:
    """One candidate map of a distinction item: the class it explains and, for regular items, its
    post-processed heatmap (``.npy``, for metrics and simulated raters; never shown)."""

    class_index: int
    heatmap: str | None = None


@dataclass(frozen=True)
class CamsItem:
    """One item's provenance: the eval sample, its true class index, and per method the class index
    its stored map explains (equal to ``label_index`` with ``--target truth``)."""

    sample: str
    label_index: int
    targets: dict[str, int]
    check: CatchTrial | None = None
    # distinction packages only: per method, its candidates in the item's list order
    candidates: dict[str, tuple[CamsCandidate, ...]] | None = None


@dataclass(frozen=True)
class CamsSection:
    """The manifest's ``cams`` object, parsed and checked once (docs/study-package.md)."""

    target: str
    only: str
    seed: int
    image_size: int
    data: dict
    class_names: tuple[str, ...]
    class_labels: tuple[str, ...]
    methods: dict[str, CamsMethod]
    items: dict[str, CamsItem]

    def to_json(self) -> dict:
        """The JSON object stored under ``manifest["cams"]`` (key order as documented)."""
        items = {}
        for item_id, item in self.items.items():
            entry: dict = {"sample": item.sample, "label_index": item.label_index, "targets": dict(item.targets)}
            if item.check is not None:
                entry["check"] = {"kind": item.check.kind}
                if item.check.expected is not None:
                    entry["check"] = {"expected": item.check.expected, **entry["check"]}
            if item.candidates is not None:
                entry["candidates"] = {
                    method: [{"class": c.class_index, **({} if c.heatmap is None else {"heatmap": c.heatmap})}
                             for c in listed]
                    for method, listed in item.candidates.items()}
            items[item_id] = entry
        return {
            "target": self.target, "only": self.only, "seed": self.seed, "image_size": self.image_size,
            "data": dict(self.data), "class_names": list(self.class_names), "class_labels": list(self.class_labels),
            "methods": {name: {"cam": m.cam, "arch": m.arch, "head": m.head, "beta": m.beta}
                        for name, m in self.methods.items()},
            "items": items,
        }

    @classmethod
    def from_manifest(cls, manifest: dict, root: Path | str | None = None) -> CamsSection | None:
        """The parsed ``cams`` section of a manifest, or None when it has none (a package not made by
        ``cams.generate``). Raises PackageError, naming each bad key and the fix, if it is malformed."""
        problems = _cams_problems(manifest)
        if problems:
            raise PackageError(problems, root)
        data = manifest.get("cams")
        if data is None:
            return None
        return cls(
            target=data["target"], only=data["only"], seed=data["seed"], image_size=data["image_size"],
            data=dict(data["data"]), class_names=tuple(data["class_names"]),
            class_labels=tuple(data["class_labels"]),
            methods={name: CamsMethod(m["cam"], m["arch"], m["head"], m["beta"]) for name, m in data["methods"].items()},
            items={
                item_id: CamsItem(
                    e["sample"], e["label_index"], dict(e["targets"]),
                    CatchTrial(e["check"].get("expected"), e["check"]["kind"]) if "check" in e else None,
                    None if "candidates" not in e else {
                        method: tuple(CamsCandidate(c["class"], c.get("heatmap")) for c in listed)
                        for method, listed in e["candidates"].items()})
                for item_id, e in data["items"].items()
            },
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _exact_keys(out: _Collector, field: str, value: object, required: set[str], optional: set[str] = frozenset()) -> bool:
    """``value`` must be an object with exactly ``required`` (+ maybe ``optional``) keys; reports each
    missing or unknown key. Returns whether the value is an object at all."""
    if not isinstance(value, dict):
        out.add("manifest", field, f"must be an object, got {type(value).__name__}")
        return False
    for key in sorted(required - set(value)):
        out.add("manifest", f"{field}.{key}", "missing")
    for key in sorted(set(value) - required - optional):
        out.add("manifest", f"{field}.{key}", f"unknown key (expected {', '.join(sorted(required | optional))})")
    return True


def _cams_problems(data: dict) -> list[Problem]:
    """Every problem of the ``cams`` section (none if it is absent), each with the fix."""
    return [Problem(p.where, p.field, f"{p.reason}; {_CAMS_FIX}") for p in _cams_section_problems(data)]


def _cams_section_problems(data: dict) -> list[Problem]:
    out = _Collector()
    section = data.get("cams")
    if section is None:
        return out.problems
    keys = {"target", "only", "seed", "image_size", "data", "class_names", "class_labels", "methods", "items"}
    if not _exact_keys(out, "cams", section, keys):
        return out.problems
    if "target" not in section:
        pass  # reported as missing
    elif section["target"] not in CAMS_TARGETS:
        out.add("manifest", "cams.target", f"must be one of {', '.join(CAMS_TARGETS)}, got {section.get('target')!r}")
    elif data.get("task") == "distinction" and section["target"] != "predicted":
        out.add("manifest", "cams.target", "must be 'predicted' in a distinction package (its maps explain "
                "each model's top classes, and targets are the rank-1 ones)")
    if "only" in section and section["only"] not in CAMS_FILTERS:
        out.add("manifest", "cams.only", f"must be one of {', '.join(CAMS_FILTERS)}, got {section['only']!r}")
    for key in ("seed", "image_size"):
        if key in section and not _is_int(section[key]):
            out.add("manifest", f"cams.{key}", f"must be an integer, got {section[key]!r}")
    if "data" in section and not isinstance(section["data"], dict):
        out.add("manifest", "cams.data", "must be an object (the resolved data options)")
    names, labels = section.get("class_names"), section.get("class_labels")
    for key, value in (("class_names", names), ("class_labels", labels)):
        if key in section and not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            out.add("manifest", f"cams.{key}", "must be a non-empty list of strings")
    if isinstance(names, list) and isinstance(labels, list) and len(names) != len(labels):
        out.add("manifest", "cams.class_labels", f"{len(labels)} labels for {len(names)} class names")
    n_classes = len(names) if isinstance(names, list) and names else None  # None: no usable class list
    # only names that can be methods: a broken list (a number, an object) is reported by _check_top_level
    raw_methods = data.get("methods") if isinstance(data.get("methods"), list) else []
    methods = [name for name in raw_methods if isinstance(name, str)]
    if "methods" in section and _exact_keys(out, "cams.methods", section["methods"], set(methods)):
        for name, info in section["methods"].items():
            if _exact_keys(out, f"cams.methods.{name}", info, {"cam", "arch", "head", "beta"}):
                for key in ("cam", "arch", "head"):
                    if key in info and not _nonempty_str(info[key]):
                        out.add("manifest", f"cams.methods.{name}.{key}", "must be a non-empty string")
                beta = info.get("beta")
                if beta is not None and (isinstance(beta, bool) or not isinstance(beta, (int, float))):
                    out.add("manifest", f"cams.methods.{name}.beta", f"must be a number or null, got {beta!r}")
    if "items" in section:
        items = data.get("items") if isinstance(data.get("items"), list) else []
        by_id = {i["id"]: i for i in items if isinstance(i, dict) and isinstance(i.get("id"), str)}
        if _exact_keys(out, "cams.items", section["items"], set(by_id)):
            for item_id, entry in section["items"].items():
                if item_id not in by_id:  # reported as an unknown key: no item to check it against
                    continue
                _check_cams_item(out, f"cams.items.{item_id}", entry, methods, n_classes, by_id[item_id],
                                 data.get("task") == "distinction", labels if isinstance(labels, list) else None)
    return out.problems


def _check_cams_item(out: _Collector, field: str, entry: object, methods: list, n_classes: int | None,
                     item: dict, distinction: bool = False, class_labels: list | None = None) -> None:
    """One item's entry; ``check`` must be there exactly when the manifest item is an attention check,
    ``candidates`` exactly in distinction packages."""
    required = {"sample", "label_index", "targets"} | ({"candidates"} if distinction else set())
    if not _exact_keys(out, field, entry, required, {"check"}):
        return
    assert isinstance(entry, dict)
    if item.get("attention_check") is True and "check" not in entry:
        out.add("manifest", f"{field}.check", "missing: the item is an attention check")
    if item.get("attention_check") is not True and "check" in entry:
        out.add("manifest", f"{field}.check", "only attention checks have one")
    if "sample" in entry and not _nonempty_str(entry["sample"]):
        out.add("manifest", f"{field}.sample", "must be a non-empty string (the eval sample id)")

    def check_class(key: str, value: object) -> None:
        if not _is_int(value) or value < 0 or (n_classes is not None and value >= n_classes):
            bounds = "(a non-negative integer)" if n_classes is None else f"in [0, {n_classes - 1}]"
            out.add("manifest", key, f"must be a class index {bounds}, got {value!r}")

    if "label_index" in entry:
        check_class(f"{field}.label_index", entry["label_index"])
    if "targets" in entry and _exact_keys(out, f"{field}.targets", entry["targets"], set(methods)):
        for method, value in entry["targets"].items():
            check_class(f"{field}.targets.{method}", value)
    if distinction and "candidates" in entry:
        _check_cams_candidates(out, f"{field}.candidates", entry, methods, item, class_labels, check_class)
    if distinction:
        if ("check" in entry and _exact_keys(out, f"{field}.check", entry["check"], {"kind"})
                and entry["check"].get("kind") not in CAMS_DISTINCTION_CHECK_KINDS):
            out.add("manifest", f"{field}.check.kind", f"must be one of {', '.join(CAMS_DISTINCTION_CHECK_KINDS)}")
    elif "check" in entry and _exact_keys(out, f"{field}.check", entry["check"], {"expected", "kind"}):
        if entry["check"].get("expected") not in methods:
            out.add("manifest", f"{field}.check.expected", f"must be one of the methods {methods}")
        elif "expected" in item and entry["check"]["expected"] != item["expected"]:
            out.add("manifest", f"{field}.check.expected",
                    f"{entry['check']['expected']!r} but the item expects {item['expected']!r}")
        if "kind" in entry["check"] and entry["check"]["kind"] not in CAMS_CHECK_KINDS:
            out.add("manifest", f"{field}.check.kind", f"must be one of {', '.join(CAMS_CHECK_KINDS)}")


def _check_cams_candidates(out: _Collector, field: str, entry: dict, methods: list, item: dict,
                           class_labels: list | None, check_class) -> None:
    """A distinction item's ``candidates``: per method, one ``{class, heatmap?}`` per candidate of the item's
    list, in its order; distinct classes, each the class whose label the list shows, and the answer's class
    equal to ``targets`` (the rank-1 class)."""
    listed_by_method = item.get("candidates") if isinstance(item.get("candidates"), dict) else {}
    answers = item.get("answer") if isinstance(item.get("answer"), dict) else {}
    if not _exact_keys(out, field, entry["candidates"], set(methods)):
        return
    for method, listed in entry["candidates"].items():
        at = f"{field}.{method}"
        shown = listed_by_method.get(method)
        if not isinstance(listed, list) or not isinstance(shown, list) or len(listed) != len(shown):
            out.add("manifest", at, "must be a list with one {class, heatmap} per candidate of the item, in its order")
            continue
        classes = []
        for k, candidate in enumerate(listed):
            if not _exact_keys(out, f"{at}[{k}]", candidate, {"class"}, {"heatmap"}) or "class" not in candidate:
                continue
            check_class(f"{at}[{k}].class", candidate["class"])
            classes.append(candidate["class"])
            if (class_labels and _is_int(candidate["class"]) and 0 <= candidate["class"] < len(class_labels)
                    and isinstance(shown[k], dict) and shown[k].get("label") != class_labels[candidate["class"]]):
                out.add("manifest", f"{at}[{k}].class", f"class {candidate['class']} is "
                        f"{class_labels[candidate['class']]!r} but the item shows {shown[k].get('label')!r}")
            if "heatmap" in candidate:
                _check_path(out, "manifest", f"{at}[{k}].heatmap", candidate["heatmap"], HEATMAP_SUFFIXES, methods)
        if len(classes) == len(listed) and len(set(map(str, classes))) != len(classes):
            out.add("manifest", at, f"classes {classes} repeat; a model's top classes are distinct")
        answer = answers.get(method)
        targets = entry.get("targets") if isinstance(entry.get("targets"), dict) else {}
        if (_is_int(answer) and 0 <= answer < len(classes) and len(classes) == len(listed)
                and method in targets and classes[answer] != targets[method]):
            out.add("manifest", f"{at}[{answer}].class", f"the answer's class {classes[answer]} differs from "
                    f"targets.{method} = {targets[method]!r} (the rank-1 class)")


# ----------------------------------------------------------------------------------------- files
def _referenced_paths(data: dict) -> list[tuple[str, str, str, str]]:
    """(where, field, relative path, kind) for every well-formed path a manifest names.

    Tolerant of a broken structure (skips what it cannot read) so files are checked, and reported,
    even when the manifest has other problems."""
    refs: list[tuple[str, str, str, str]] = []

    def add(where: str, field: str, value: object, kind: str) -> None:
        if _path_syntax_problem(value) is None:
            refs.append((where, field, str(value), kind))

    def add_map(where: str, field: str, value: object, kind: str) -> None:
        if isinstance(value, dict):
            for method, path in value.items():
                add(where, f"{field}.{method}", path, kind)

    def add_candidates(where: str, field: str, value: object) -> None:
        for k, candidate in enumerate(value if isinstance(value, list) else []):
            if isinstance(candidate, dict):
                add(where, f"{field}[{k}].map", candidate.get("map"), "map")

    example = data.get("example")
    if isinstance(example, dict):
        add("example", "image", example.get("image"), "image")
        add_map("example", "maps", example.get("maps"), "map")
        add_candidates("example", "candidates", example.get("candidates"))
    items = data.get("items")
    for index, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, dict):
            continue
        raw_id = item.get("id")
        ok_id = isinstance(raw_id, str) and ITEM_ID_PATTERN.fullmatch(raw_id)
        where = raw_id if ok_id else f"items[{index}]"
        add(where, "image", item.get("image"), "image")
        add_map(where, "maps", item.get("maps"), "map")
        candidates = item.get("candidates")
        for method, listed in (candidates.items() if isinstance(candidates, dict) else []):
            add_candidates(where, f"candidates.{method}", listed)
        if "mask" in item:
            add(where, "mask", item["mask"], "mask")
        add_map(where, "heatmaps", item.get("heatmaps"), "heatmap")
    cams_items = data.get("cams", {}).get("items") if isinstance(data.get("cams"), dict) else None
    for item_id, entry in (cams_items.items() if isinstance(cams_items, dict) else []):
        listed_by_method = entry.get("candidates") if isinstance(entry, dict) else None
        for method, listed in (listed_by_method.items() if isinstance(listed_by_method, dict) else []):
            for k, candidate in enumerate(listed if isinstance(listed, list) else []):
                if isinstance(candidate, dict) and "heatmap" in candidate:
                    add(str(item_id), f"cams.candidates.{method}[{k}].heatmap", candidate["heatmap"], "heatmap")
    return refs


def _decode(path: Path) -> tuple[str, tuple[int, int], str]:
    """(format, size, mode) after a full decode; raises ValueError with a short reason."""
    from PIL import Image  # Pillow imported lazily: structure checks need no imaging library

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                return str(im.format), im.size, im.mode
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValueError(f"image too large ({exc})") from None
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ...) for bad files
        raise ValueError(f"does not decode as an image ({type(exc).__name__}: {exc})") from None


def _read_manifest(root: Path, out: _Collector) -> dict | None:
    if not root.is_dir():
        out.add("manifest", "", f"package folder {root} does not exist or is not a folder")
        return None
    try:
        path = resolve_inside(root, MANIFEST_NAME)
    except UnsafePathError as exc:
        out.add("manifest", "", str(exc))
        return None
    if not path.is_file():
        out.add("manifest", "", f"{MANIFEST_NAME} not found in {root}")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        out.add("manifest", "", f"{MANIFEST_NAME} is not valid UTF-8 JSON ({exc})")
        return None


def _check_files(root: Path, data: dict, out: _Collector, decode_images: bool) -> None:
    decoded: dict[Path, tuple[str, tuple[int, int], str] | str] = {}
    sizes: dict[tuple[str, str], tuple[int, int]] = {}  # (where, kind) -> size of image / first map
    for where, field, relative, kind in _referenced_paths(data):
        try:
            path = resolve_inside(root, relative)
        except UnsafePathError as exc:
            out.add(where, field, str(exc))
            continue
        if not path.is_file():
            out.add(where, field, f"file not found: {relative}")
            continue
        if kind == "heatmap" or not decode_images:
            continue
        if path not in decoded:
            try:
                decoded[path] = _decode(path)
            except ValueError as exc:
                decoded[path] = str(exc)
        info = decoded[path]
        if isinstance(info, str):
            out.add(where, field, f"{relative}: {info}")
            continue
        fmt, size, mode = info
        if fmt not in IMAGE_FORMATS:
            out.add(where, field, f"{relative}: {fmt} image; only PNG and JPEG are allowed")
        if kind == "image":
            sizes[(where, "image")] = size
        elif kind == "map":
            first = sizes.setdefault((where, "map"), size)
            if size != first:
                out.add(where, field, f"map is {size[0]}x{size[1]} but another map of this item is "
                        f"{first[0]}x{first[1]}; the pair is shown at the same size")
        elif kind == "mask":
            if mode != "L":
                out.add(where, field, f"mask must be a greyscale (L mode) image, got mode {mode}")
            image_size = sizes.get((where, "image"))
            if image_size is not None and size != image_size:
                out.add(where, field, f"mask is {size[0]}x{size[1]} but the image is "
                        f"{image_size[0]}x{image_size[1]}")


def validate_package(root: Path, *, decode_images: bool = True) -> list[Problem]:
    """Every problem of the package at ``root``: manifest structure, then each referenced file must be
    inside ``root`` (no ``..``, absolute path or symlink escape), exist, and decode as PNG/JPEG
    (``.npy`` heatmaps: existence only)."""
    root = Path(root)
    out = _Collector()
    data = _read_manifest(root, out)
    if data is None:
        return out.problems
    out.problems += validate_manifest(data)
    if isinstance(data, dict):
        _check_files(root, data, out, decode_images)  # even with structural problems: report everything
    return out.problems


def load_package(root: Path) -> dict:
    """The validated manifest of the package at ``root``; raises PackageError listing every problem."""
    root = Path(root)
    problems = validate_package(root)
    if problems:
        raise PackageError(problems, root)
    return json.loads((root / MANIFEST_NAME).read_text(encoding="utf-8"))


def write_manifest(root: Path, manifest: dict) -> None:
    """Validates the structure, then writes ``root/manifest.json`` atomically (``fileio``)."""
    problems = validate_manifest(manifest)
    if problems:
        raise PackageError(problems, root)
    write_text_atomic(Path(root) / MANIFEST_NAME, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


def package_files(root: Path, manifest: dict) -> list[str]:
    """Sorted relative paths of every file the manifest references (for fingerprints and copies)."""
    return sorted({relative for _, _, relative, _ in _referenced_paths(manifest)})


def package_fingerprint(root: Path, manifest: dict) -> str:
    """sha256 over the manifest and every referenced file: equal fingerprints mean an unchanged package."""
    digest = hashlib.sha256()
    digest.update(json.dumps(manifest, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    for relative in package_files(root, manifest):
        digest.update(b"\x00" + relative.encode("utf-8") + b"\x00")
        with open(resolve_inside(root, relative), "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


__all__ = [
    "SCHEMA", "MANIFEST_NAME", "TASKS", "DEFAULT_DISTINCTION_QUESTION", "manifest_task", "Problem", "PackageError", "UnsafePathError", "validate_manifest",
    "validate_package", "load_package", "resolve_inside", "content_name", "write_manifest",
    "package_files", "package_fingerprint", "CamsSection", "CamsMethod", "CamsItem", "CatchTrial", "CamsCandidate",
    "CAMS_TARGETS", "CAMS_FILTERS",
]
