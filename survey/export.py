"""Votes as a table (contract C): one row per vote, the columns the analysis reads.

``read_votes_csv`` gives back exactly ``votes_frame`` for a file written by ``write_votes_csv`` (ids
such as "007" stay text), so the analysis behaves the same whether it reads the database or a CSV.
"""
from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.orm import aliased

from survey.db import get_engine, read_session
from survey.schema import Assignment, Item, Method, Rater, Study, Vote

COLUMNS = ("study", "rater", "item", "label", "left_method", "right_method", "chosen_method",
           "proposed_method", "baseline_method", "attention_check", "response_ms", "created_at")
EXTRA_COLUMNS = ("chosen_side", "position", "repeat", "expected_method", "rater_finished")
ALL_COLUMNS = COLUMNS + EXTRA_COLUMNS
TEXT_COLUMNS = ("study", "rater", "item", "label", "left_method", "right_method", "chosen_method",
                "proposed_method", "baseline_method", "created_at", "chosen_side", "expected_method")
BOOL_COLUMNS = ("attention_check", "rater_finished")
INT_COLUMNS = ("response_ms", "position", "repeat")


class ExportError(ValueError):
    """The export cannot be made as asked (unknown study)."""


def _iso(moment) -> str:  # noqa: ANN001
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Same dtypes on pandas 2 and 3: text as object with None for missing, bool, int64."""
    frame = frame.astype({**{c: bool for c in BOOL_COLUMNS}, **{c: "int64" for c in INT_COLUMNS}})
    for column in TEXT_COLUMNS:
        values = frame[column].astype(object)
        frame[column] = values.where(values.notna(), None)
    return frame


def _csv_field(values: pd.Series) -> pd.Series:
    """One column as CSV fields (missing -> empty), quoted when they hold a comma, a quote, or a line
    break. Python's csv writer with a "\\n" terminator leaves a bare carriage return unquoted, and every
    reader then splits the row there; rater ids and labels are free text, so they can contain one."""
    text = values.astype(object).where(values.notna(), "").astype(str)
    quote = text.str.contains(r'[,"\r\n]', regex=True)
    return text.where(~quote, '"' + text.str.replace('"', '""', regex=False) + '"')


def _empty_frame() -> pd.DataFrame:
    return _normalise(pd.DataFrame({c: pd.Series(dtype=object) for c in ALL_COLUMNS}))


def votes_frame(url: str | Engine | None, study: str) -> pd.DataFrame:
    """Every vote of ``study``, ordered by rater arrival then position. ``url`` may also be an Engine."""
    engine = url if isinstance(url, Engine) else get_engine(url)
    left, right, chosen, expected = (aliased(Method) for _ in range(4))
    proposed, baseline = aliased(Method), aliased(Method)
    with read_session(engine) as session:
        row = session.scalar(select(Study).where(Study.name == study))
        if row is None:
            names = ", ".join(session.scalars(select(Study.name).order_by(Study.name))) or "none"
            raise ExportError(f"no study named {study!r} in the database (studies: {names})")
        records = session.execute(
            select(Rater.external_id, Item.key, Item.label, left.name, right.name, chosen.name,
                   proposed.name, baseline.name, Item.is_attention_check, Vote.response_ms, Vote.created_at,
                   Vote.chosen_side, Assignment.position, Assignment.is_repeat, expected.name,
                   Rater.finished_at.is_not(None))
            .join(Assignment, Vote.assignment_id == Assignment.id)
            .join(Rater, Vote.rater_id == Rater.id)
            .join(Item, Vote.item_id == Item.id)
            .join(left, Assignment.left_method_id == left.id)
            .join(right, Assignment.right_method_id == right.id)
            .outerjoin(chosen, Vote.chosen_method_id == chosen.id)
            .outerjoin(expected, Item.expected_method_id == expected.id)
            .join(proposed, (proposed.study_id == Rater.study_id) & (proposed.role == "proposed"))
            .join(baseline, (baseline.study_id == Rater.study_id) & (baseline.role == "baseline"))
            .where(Rater.study_id == row.id)
            .order_by(Rater.seq, Assignment.position)
        ).all()
    if not records:
        return _empty_frame()
    frame = pd.DataFrame(
        [(study, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8]), int(r[9]), _iso(r[10]), r[11],
          int(r[12]), int(bool(r[13])), r[14], bool(r[15])) for r in records],
        columns=list(ALL_COLUMNS),
    )
    return _normalise(frame)


def write_votes_csv(url: str | Engine | None, study: str, path: Path | str) -> int:
    """Writes the votes of ``study`` to ``path`` atomically (temp file, then rename); returns the row count.

    Booleans are written ``true``/``false``; "no preference" leaves ``chosen_method`` empty."""
    frame = votes_frame(url, study)
    out = frame.copy()
    for column in BOOL_COLUMNS:
        out[column] = out[column].map({True: "true", False: "false"})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(",".join(out.columns) + "\n")
            if len(out):
                fields = [_csv_field(out[column]) for column in out.columns]
                fh.write("\n".join(functools.reduce(lambda a, b: a + "," + b, fields)) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(frame)


def read_votes_csv(path: Path | str) -> pd.DataFrame:
    """Reads a votes CSV back with the same dtypes as :func:`votes_frame` (ids stay text)."""
    frame = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False,
                        na_values={"chosen_method": [""], "expected_method": [""]})
    for column in BOOL_COLUMNS:
        frame[column] = frame[column].map({"true": True, "false": False, True: True, False: False})
    return _normalise(frame)
