"""The votes CSV (contract C): its one owner. Columns, dtypes, reading, writing.

The survey writes this file (``python -m survey.study export``, the admin download), the analysis reads
it, simulators write it for tests and benchmarks; all of them go through this module, so the columns
are listed once and a file means the same thing wherever it is read. pandas only: no database, no
torch, so an analyst's install can read votes without the survey server's dependencies.

One treatment of missing values, the same on reading and on writing:

- text: an empty field is missing (``None``); empty text and missing text are the same thing;
  "NA", "nan", "None" and "007" are ordinary text;
- booleans: written ``true`` / ``false``; read case-insensitively from true/false, t/f, 1/0, yes/no,
  y/n; an empty field reads as false;
- integers: ``int64``; an empty field is missing, and then the column is pandas' nullable ``Int64``.

Each study task has its own column order (a :class:`VotesFormat`); every column is defined once
(:data:`COLUMN_KINDS`) so a second task reuses the shared ones. Two tasks: ``pairwise`` (which of two
maps is better) and ``distinction`` (HIVE's task, issue 14: which of a method's maps for the model's
top classes belongs to its prediction). A file says which task each row belongs to in the optional
``task`` column; a file without it, or an empty field, means ``pairwise``, so every file written
before issue 14 reads unchanged. A file with a ``task`` column is read and written with
:data:`ALL_TASKS` (every task's columns) and must hold the required columns of each task its rows name.
"""
from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from fileio import write_text_atomic
from survey.package import CANDIDATES as CANDIDATES  # re-exported: analysis reads them here
from survey.package import CONFIDENCE_LEVELS as CONFIDENCE_LEVELS

Kind = Literal["text", "bool", "int"]

#: How to export a votes CSV; every "how to fix it" in an error message points here.
EXPORT_HINT = "export it with `python -m survey.study export STUDY --out FILE`"

TRUE_WORDS = frozenset({"true", "t", "1", "yes", "y"})
FALSE_WORDS = frozenset({"false", "f", "0", "no", "n", ""})

#: Every column any task's votes CSV may hold, defined once: name -> kind.
COLUMN_KINDS: dict[str, Kind] = {
    "study": "text",
    "rater": "text",
    "item": "text",
    "label": "text",
    "left_method": "text",
    "right_method": "text",
    "chosen_method": "text",
    "proposed_method": "text",
    "baseline_method": "text",
    "attention_check": "bool",
    "response_ms": "int",
    "created_at": "text",
    "chosen_side": "text",
    "position": "int",
    "repeat": "int",
    "expected_method": "text",
    "rater_finished": "bool",
    # the task of the row (issue 14): absent or empty = "pairwise"
    "task": "text",
    # the distinction task: the one method a rater saw, indices into its candidate list, the answer
    "method": "text",
    "chosen_index": "int",
    "answer_index": "int",
    "correct": "bool",
    "confidence": "int",
    "chosen_rank": "int",
    "chosen_slot": "int",
    "answer_slot": "int",
}

#: The column naming each row's task, its values, and what an absent column or empty field means.
TASK_COLUMN = "task"
DEFAULT_TASK = "pairwise"
#: Distinction task (HIVE): candidates per item (the model's top-4 classes, so chance is 1/4), and the
#: rater's confidence scale. ``chosen_index``/``answer_index`` lie in 0..CANDIDATES-1, ``chosen_rank``
#: in 1..CANDIDATES, ``confidence`` in CONFIDENCE_LEVELS.
#: (CANDIDATES and CONFIDENCE_LEVELS, imported above, are fixed by the package format.)


class VotesFormatError(ValueError):
    """A votes CSV or frame does not follow contract C; the message names the file and the fix."""


@dataclass(frozen=True)
class VotesFormat:
    """The columns of one study task's votes CSV, in file order.

    ``required`` columns must be present in every file read; ``optional`` ones are written by every
    export and used when present (older or hand-made files may lack them)."""

    task: str
    required: tuple[str, ...]
    optional: tuple[str, ...]

    def __post_init__(self) -> None:
        unknown = [c for c in self.columns if c not in COLUMN_KINDS]
        if unknown or len(set(self.columns)) != len(self.columns):
            raise ValueError(f"votes format {self.task!r}: unknown or repeated columns {unknown or self.columns}")

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional

    def of_kind(self, kind: Kind) -> tuple[str, ...]:
        return tuple(c for c in self.columns if COLUMN_KINDS[c] == kind)


#: Pairwise preference studies (today's studies): which of two maps is better.
PAIRWISE = VotesFormat(
    task="pairwise",
    required=("study", "rater", "item", "label", "left_method", "right_method", "chosen_method",
              "proposed_method", "baseline_method", "attention_check", "response_ms", "created_at"),
    optional=("chosen_side", "position", "repeat", "expected_method", "rater_finished"),
)
#: Distinction studies (issue 14): which of one method's maps belongs to the model's prediction.
#: ``confidence`` and ``chosen_rank`` may be empty on attention checks; ``correct`` is
#: ``chosen_index == answer_index`` (the analysis checks it); the slots are screen places (0-based).
DISTINCTION = VotesFormat(
    task="distinction",
    required=("study", "rater", "item", "attention_check", "response_ms", TASK_COLUMN, "method",
              "chosen_index", "answer_index", "confidence", "chosen_rank"),
    optional=("label", "created_at", "position", "repeat", "rater_finished", "correct", "chosen_slot",
              "answer_slot"),
)
#: task -> format. A further task adds its entry (and its columns to COLUMN_KINDS).
FORMATS: dict[str, VotesFormat] = {PAIRWISE.task: PAIRWISE, DISTINCTION.task: DISTINCTION}


def _every_task() -> VotesFormat:
    """A table of several tasks' rows: the pairwise columns in their order, then ``task`` and the other
    tasks' own columns (for a distinction-only table: the order of the survey's answers export). No
    column is required as such: which columns a file needs depends on the tasks its rows name
    (:func:`require_task_columns`)."""
    others = {c for fmt in FORMATS.values() for c in fmt.columns} - set(PAIRWISE.columns) - {TASK_COLUMN}
    own = [c for c in COLUMN_KINDS if c in others]  # in the order COLUMN_KINDS defines them
    return VotesFormat(task="all", required=(), optional=(*PAIRWISE.columns, TASK_COLUMN, *own))


#: Every task's columns in one file order: how a votes table with a ``task`` column is read and written.
ALL_TASKS = _every_task()

#: Contract C of the pairwise task: the required columns, the optional ones, and both in file order.
REQUIRED_COLUMNS: tuple[str, ...] = PAIRWISE.required
OPTIONAL_COLUMNS: tuple[str, ...] = PAIRWISE.optional
COLUMNS: tuple[str, ...] = PAIRWISE.columns


def parse_bools(values: pd.Series, column: str, source: str) -> pd.Series:
    """``values`` as ``bool`` by the vocabulary above; anything else raises naming ``source`` and ``column``."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.fillna(False).astype(bool)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)  # a few distinct words: map those
    words = [str(u).strip().lower() for u in uniques] + [""]  # code -1 (missing) picks ""
    if pd.api.types.is_numeric_dtype(values.dtype):  # 1.0 / 0.0 from a numeric frame
        words = ["1" if w in ("1.0", "true") else "0" if w in ("0.0", "false") else w for w in words]
    bad = sorted({w for w in words if w not in TRUE_WORDS | FALSE_WORDS})
    if bad:
        raise VotesFormatError(f"{source}: column {column!r} must be true/false, found {bad[:5]}; "
                               f"write booleans as true/false ({EXPORT_HINT})")
    truth = np.array([w in TRUE_WORDS for w in words], dtype=bool)
    return pd.Series(truth[codes], index=values.index, name=values.name)


def parse_ints(values: pd.Series, column: str, source: str) -> pd.Series:
    """``values`` as ``int64`` (``Int64`` when some are missing); anything but whole numbers raises."""
    if pd.api.types.is_bool_dtype(values.dtype):
        raise VotesFormatError(f"{source}: column {column!r} must hold whole numbers, not true/false")
    given = values.notna()
    if not pd.api.types.is_numeric_dtype(values.dtype):
        values = _text(values).str.strip()
        given = values.notna() & (values != "")
    numbers = pd.to_numeric(values.where(given, None), errors="coerce")
    if pd.api.types.is_integer_dtype(numbers.dtype):
        return numbers.astype("Int64" if numbers.isna().any() else "int64")
    floats = numbers.astype(float).to_numpy()
    whole = np.isfinite(floats) & (floats == np.round(floats))
    bad = given.to_numpy() & ~whole
    if bad.any():
        examples = sorted({str(v) for v in values[bad].head(50)})[:5]
        raise VotesFormatError(f"{source}: column {column!r} must hold whole numbers, found "
                               f"{int(bad.sum())} other value(s) such as {examples}; {EXPORT_HINT}")
    return numbers.astype("Int64" if not whole.all() else "int64")


def _by_value(values: pd.Series, convert: Callable[[object], object]) -> np.ndarray:
    """``convert`` applied to each distinct value once (missing -> ``convert(None)``), as an object array.

    Votes repeat a few names a million times: factorizing first makes a column cost milliseconds."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    table = np.empty(len(uniques) + 1, dtype=object)  # the last slot serves code -1 (missing)
    table[:] = [convert(u) for u in uniques] + [convert(None)]
    return table[codes]


def _text_or_none(value: object) -> str | None:
    return None if value is None or value == "" else value if isinstance(value, str) else str(value)


def _text(values: pd.Series) -> pd.Series:
    """Text as ``object`` with ``None`` for missing and for empty (the same dtype on pandas 2 and 3)."""
    return pd.Series(_by_value(values, _text_or_none), index=values.index, name=values.name, dtype=object)


def format_of(columns: Iterable[str]) -> VotesFormat:
    """The format of a file or frame with these columns: :data:`ALL_TASKS` when it has a ``task``
    column, else :data:`PAIRWISE` (every file written before issue 14)."""
    return ALL_TASKS if TASK_COLUMN in list(columns) else PAIRWISE


def task_of(frame: pd.DataFrame, source: str = "votes frame") -> pd.Series:
    """Each row's task (``"pairwise"`` where the column is absent or the field empty); raises naming
    ``source`` on a task no format knows."""
    if TASK_COLUMN not in frame:
        return pd.Series(DEFAULT_TASK, index=frame.index, dtype=object)
    tasks = _by_value(frame[TASK_COLUMN], lambda v: (_text_or_none(v) or "").strip().lower() or DEFAULT_TASK)
    bad = sorted(set(tasks) - set(FORMATS))
    if bad:
        raise VotesFormatError(f"{source}: column {TASK_COLUMN!r} must be one of {', '.join(FORMATS)} (or empty "
                               f"for {DEFAULT_TASK}), found {bad[:5]}; {EXPORT_HINT}")
    return pd.Series(tasks, index=frame.index, name=TASK_COLUMN, dtype=object)


def require_task_columns(frame: pd.DataFrame, source: str) -> None:
    """Raises naming ``source`` when the frame lacks a required column of a task that one of its rows
    names (a table of pairwise and distinction rows needs both tasks' columns)."""
    columns = list(frame.columns)
    for task in sorted(set(task_of(frame, source))):
        missing = [c for c in FORMATS[task].required if c not in columns]
        if missing:
            raise VotesFormatError(f"{source} has {task} rows but is missing column(s) {', '.join(missing)}; "
                                   f"{task} rows need {', '.join(FORMATS[task].required)} ({EXPORT_HINT})")


def normalise(frame: pd.DataFrame, *, source: str = "votes frame", fmt: VotesFormat | None = None
              ) -> pd.DataFrame:
    """``frame`` with contract dtypes: text ``object`` (missing ``None``), booleans ``bool``, integers
    ``int64``. Columns outside the format are kept as they are; absent optional columns stay absent.
    ``fmt`` defaults to :func:`format_of` the frame's columns."""
    fmt = fmt or format_of(frame.columns)
    parse = {"bool": parse_bools, "int": parse_ints, "text": lambda values, _column, _source: _text(values)}
    columns = {column: parse[COLUMN_KINDS[column]](values, column, source) if column in fmt.columns else values
               for column, values in frame.items()}
    out = pd.DataFrame(columns, index=frame.index, copy=False)  # one frame at once: no block per column
    out.attrs = dict(frame.attrs)
    return out


def empty_frame(fmt: VotesFormat = PAIRWISE) -> pd.DataFrame:
    """A frame of no votes with every column of ``fmt`` in its dtype."""
    dtypes = {"text": object, "bool": bool, "int": "int64"}
    return pd.DataFrame({c: pd.Series(dtype=dtypes[COLUMN_KINDS[c]]) for c in fmt.columns})


def require_columns(columns: Iterable[str], source: str, fmt: VotesFormat = PAIRWISE) -> None:
    """Raises naming ``source`` and every required column of ``fmt`` that ``columns`` lacks."""
    columns = list(columns)
    missing = [c for c in fmt.required if c not in columns]
    if missing:
        raise VotesFormatError(f"{source} is missing column(s) {', '.join(missing)}; a votes CSV needs "
                               f"{', '.join(fmt.required)} ({EXPORT_HINT})")


def _quoted(value: str | None) -> str:
    """One CSV field: missing -> empty; quoted when it holds a comma, a quote, or a line break. (Python's
    csv writer with a "\\n" terminator leaves a bare carriage return unquoted, and every reader then
    splits the row there; rater ids and labels are free text, so they can contain one.)"""
    if value is None:
        return ""
    if any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _fields(values: pd.Series, kind: Kind | None) -> list[str]:
    """One column of a normalised frame as CSV fields."""
    if kind == "bool":
        return np.where(values.to_numpy(dtype=bool), "true", "false").tolist()
    if kind == "int":
        missing = values.isna().to_numpy()
        digits = values.fillna(0).to_numpy(dtype=np.int64).astype(str).astype(object)
        digits[missing] = ""
        return digits.tolist()
    return _by_value(values, lambda v: _quoted(_text_or_none(v))).tolist()


def votes_csv_text(frame: pd.DataFrame, *, source: str = "votes frame", fmt: VotesFormat | None = None) -> str:
    """The CSV text of ``frame``: the format's columns present, in file order, then any other columns
    (as text); ``true``/``false`` booleans, empty fields for missing values, "\\n" line ends.
    ``fmt`` defaults to :func:`format_of` the frame's columns."""
    fmt = fmt or format_of(frame.columns)
    require_columns(frame.columns, source, fmt)
    out = normalise(frame, source=source, fmt=fmt)
    if fmt is ALL_TASKS:
        require_task_columns(out, source)
    columns = [c for c in fmt.columns if c in out] + [c for c in out.columns if c not in fmt.columns]
    header = ",".join(_quoted(str(c)) for c in columns)
    fields = [_fields(out[c], COLUMN_KINDS[c] if c in fmt.columns else None) for c in columns]
    return "".join([header, "\n", *("".join((",".join(row), "\n")) for row in zip(*fields))])


def write_votes_csv(frame: pd.DataFrame, path: str | Path, *, fmt: VotesFormat | None = None) -> Path:
    """Writes ``frame`` as a votes CSV at ``path``, UTF-8 and atomically (a reader sees the old file or
    the whole new one, never half); returns ``path``. :func:`read_votes_csv` gives the frame back."""
    path = Path(path)
    write_text_atomic(path, votes_csv_text(frame, source=f"votes for {path}", fmt=fmt), newline="")
    return path


def _header(path: Path) -> list[str]:
    try:  # utf-8-sig: a spreadsheet that saves "CSV UTF-8" starts the file with a byte-order mark
        with open(path, newline="", encoding="utf-8-sig") as stream:
            return next(csv.reader(stream), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise VotesFormatError(f"votes CSV {path} is not a readable UTF-8 CSV ({exc}); {EXPORT_HINT}") from None


def read_votes_csv(path: str | Path, *, fmt: VotesFormat | None = None) -> pd.DataFrame:
    """The votes of a CSV with contract dtypes (ids such as "007" stay text); columns outside the
    format come back as text. ``fmt`` defaults to :func:`format_of` the header (a ``task`` column:
    every task's columns, and each task named in the rows needs its required columns). Raises :class:`VotesFormatError` naming the file and the fix when the
    file is absent, empty, not a CSV, lacks a required column or holds a bad boolean or integer."""
    path = Path(path)
    if not path.is_file():
        raise VotesFormatError(f"votes CSV {path} does not exist; {EXPORT_HINT}")
    header = _header(path)
    if not header:
        raise VotesFormatError(f"votes CSV {path} is empty (not even a header row); re-export it: {EXPORT_HINT}")
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise VotesFormatError(f"votes CSV {path} repeats column(s) {', '.join(repeated)} in its header; "
                               f"re-export it: {EXPORT_HINT}")
    fmt = fmt or format_of(header)
    require_columns(header, f"votes CSV {path}", fmt)
    try:
        # Every field as text, except that the parser may read integer columns as integers (fast).
        text = {c: str for c in header if c not in fmt.of_kind("int")}
        try:  # pyarrow's parser when installed: about 5x faster at a million votes
            raw = pd.read_csv(path, engine="pyarrow", dtype=text, keep_default_na=False)
        except ImportError:
            raw = pd.read_csv(path, dtype=text, keep_default_na=False)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise VotesFormatError(f"votes CSV {path} is not a readable UTF-8 CSV: {first}; {EXPORT_HINT}") from None
    frame = normalise(raw, source=f"votes CSV {path}", fmt=fmt)
    if fmt is ALL_TASKS:
        require_task_columns(frame, f"votes CSV {path}")
    for column in frame.columns.difference(fmt.columns, sort=False):
        frame[column] = _text(frame[column])  # columns of no format: text, missing as None
    return frame
