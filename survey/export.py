"""Votes of a study from the database as a table (contract C): one row per vote.

The columns, their dtypes and the CSV file are owned by :mod:`survey.votes_format`; this module only
reads the database. ``survey.votes_format.read_votes_csv`` gives back exactly ``votes_frame`` for a file
written by :func:`export_votes_csv` (ids such as "007" stay text), so the analysis behaves the same
whether it reads the database or a CSV.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.orm import aliased

from survey.db import get_engine, read_session
from survey.schema import Assignment, Item, Method, Rater, Study, Vote
from survey.votes_format import COLUMNS, empty_frame, normalise, write_votes_csv


class ExportError(ValueError):
    """The export cannot be made as asked (unknown study)."""


def _iso(moment) -> str:  # noqa: ANN001
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def votes_frame(url: str | Engine | None, study: str) -> pd.DataFrame:
    """Every vote of ``study``, ordered by rater arrival then position. ``url`` may also be an Engine.
    For a distinction study: every answer, in the distinction columns (``survey.distinction_export``),
    so the analysis reads either task from a database URL the same way as from a CSV."""
    engine = url if isinstance(url, Engine) else get_engine(url)
    left, right, chosen, expected = (aliased(Method) for _ in range(4))
    proposed, baseline = aliased(Method), aliased(Method)
    with read_session(engine) as session:
        row = session.scalar(select(Study).where(Study.name == study))
        if row is None:
            names = ", ".join(session.scalars(select(Study.name).order_by(Study.name))) or "none"
            raise ExportError(f"no study named {study!r} in the database (studies: {names})")
        if row.task == "distinction":
            from survey.distinction_export import answers_frame

            return answers_frame(engine, study)
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
        return empty_frame()
    frame = pd.DataFrame(
        [(study, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8]), int(r[9]), _iso(r[10]), r[11],
          int(r[12]), int(bool(r[13])), r[14], bool(r[15])) for r in records],
        columns=list(COLUMNS),
    )
    return normalise(frame)


def export_votes_csv(url: str | Engine | None, study: str, path: Path | str) -> int:
    """Writes the votes of ``study`` to ``path`` as a votes CSV (atomic, UTF-8); returns the row count.

    Booleans are written ``true``/``false``; "no preference" leaves ``chosen_method`` empty."""
    frame = votes_frame(url, study)
    write_votes_csv(frame, path)  # the format follows the columns: a distinction study's has ``task``
    return len(frame)
