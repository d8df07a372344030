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
(:data:`COLUMN_KINDS`) so a second task reuses the shared ones. Today there is one task, ``pairwise``.
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
}


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
#: task -> format. A second task adds its entry (and its columns to COLUMN_KINDS).
FORMATS: dict[str, VotesFormat] = {PAIRWISE.task: PAIRWISE}

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


def normalise(frame: pd.DataFrame, *, source: str = "votes frame", fmt: VotesFormat = PAIRWISE
              ) -> pd.DataFrame:
    """``frame`` with contract dtypes: text ``object`` (missing ``None``), booleans ``bool``, integers
    ``int64``. Columns outside the format are kept as they are; absent optional columns stay absent."""
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


def votes_csv_text(frame: pd.DataFrame, *, source: str = "votes frame", fmt: VotesFormat = PAIRWISE) -> str:
    """The CSV text of ``frame``: the format's columns present, in file order, then any other columns
    (as text); ``true``/``false`` booleans, empty fields for missing values, "\\n" line ends."""
    require_columns(frame.columns, source, fmt)
    out = normalise(frame, source=source, fmt=fmt)
    columns = [c for c in fmt.columns if c in out] + [c for c in out.columns if c not in fmt.columns]
    header = ",".join(_quoted(str(c)) for c in columns)
    fields = [_fields(out[c], COLUMN_KINDS[c] if c in fmt.columns else None) for c in columns]
    return "".join([header, "\n", *("".join((",".join(row), "\n")) for row in zip(*fields))])


def write_votes_csv(frame: pd.DataFrame, path: str | Path, *, fmt: VotesFormat = PAIRWISE) -> Path:
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


def read_votes_csv(path: str | Path, *, fmt: VotesFormat = PAIRWISE) -> pd.DataFrame:
    """The votes of a CSV with contract dtypes (ids such as "007" stay text); columns outside the
    format come back as text. Raises :class:`VotesFormatError` naming the file and the fix when the
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
    require_columns(header, f"votes CSV {path}", fmt)
    try:
        # Every field as text, except that the parser may read integer columns as integers (fast).
        text = {c: str for c in header if COLUMN_KINDS.get(c) != "int"}
        try:  # pyarrow's parser when installed: about 5x faster at a million votes
            raw = pd.read_csv(path, engine="pyarrow", dtype=text, keep_default_na=False)
        except ImportError:
            raw = pd.read_csv(path, dtype=text, keep_default_na=False)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise VotesFormatError(f"votes CSV {path} is not a readable UTF-8 CSV: {first}; {EXPORT_HINT}") from None
    frame = normalise(raw, source=f"votes CSV {path}", fmt=fmt)
    for column in frame.columns.difference(fmt.columns, sort=False):
        frame[column] = _text(frame[column])  # columns of no format: text, missing as None
    return frame
