"""Answers of a distinction study as a table: one row per answer, the columns the analysis reads.

The column contract (docs/survey.md, "The distinction task"; the votes-format module writes it to CSV):

* shared with pairwise votes: ``study, rater, item, label, attention_check, response_ms, created_at,
  position, repeat, rater_finished``;
* the task's: ``task`` ("distinction"), ``method`` (the one method this rater saw), ``chosen_index``
  and ``answer_index`` (indices into that method's candidate list in the package; ``answer_index`` is
  the model's prediction), ``correct``, ``confidence`` (1-5), ``chosen_rank`` (rank of the chosen
  class in the model's top-k, 1 = the prediction);
* extras for position-bias checks: ``chosen_slot``, ``answer_slot`` (0-based screen places).
"""
from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.orm import aliased

from survey.db import get_engine, read_session
from survey.schema import (
    DistinctionAnswer,
    DistinctionCandidate,
    DistinctionItem,
    DistinctionTrial,
    Item,
    Method,
    Rater,
    Study,
)
from survey.votes_format import ALL_TASKS, DISTINCTION, normalise

#: What an answers export holds: the distinction format's columns plus the screen slots.
ANSWER_COLUMNS = frozenset(DISTINCTION.columns)

class NotADistinctionStudy(ValueError):
    """The study is unknown or not a distinction study (its votes come from ``survey.export``)."""


def _iso(moment) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def answers_frame(url: str | Engine | None, study: str) -> pd.DataFrame:
    """Every answer of distinction study ``study`` in (rater, position) order; typed columns."""
    engine = url if isinstance(url, Engine) else get_engine(url)
    chosen, answer = aliased(DistinctionCandidate), aliased(DistinctionCandidate)
    with read_session(engine) as session:
        row = session.scalar(select(Study).where(Study.name == study))
        if row is None or row.task != "distinction":
            raise NotADistinctionStudy(f"{study!r} is not a distinction study in this database")
        found = session.execute(
            select(Rater.external_id, Rater.finished_at, Item.key, Item.label, DistinctionItem.is_attention_check,
                   DistinctionAnswer.response_ms, DistinctionAnswer.created_at, DistinctionTrial.position,
                   DistinctionTrial.is_repeat, DistinctionTrial.candidate_order, Method.name,
                   DistinctionAnswer.chosen_ordinal, DistinctionAnswer.chosen_slot, DistinctionAnswer.confidence,
                   chosen.rank, answer.ordinal.label("answer_ordinal"))
            .join(DistinctionTrial, DistinctionTrial.id == DistinctionAnswer.trial_id)
            .join(Rater, Rater.id == DistinctionAnswer.rater_id)
            .join(Item, Item.id == DistinctionAnswer.item_id)
            .join(DistinctionItem, DistinctionItem.item_id == Item.id)
            .join(Method, Method.id == DistinctionAnswer.method_id)
            .join(chosen, (chosen.item_id == DistinctionAnswer.item_id) & (chosen.method_id == DistinctionAnswer.method_id)
                  & (chosen.ordinal == DistinctionAnswer.chosen_ordinal))
            .join(answer, (answer.item_id == DistinctionAnswer.item_id) & (answer.method_id == DistinctionAnswer.method_id)
                  & (answer.rank == 1))
            .where(Rater.study_id == row.id)
            .order_by(Rater.external_id, DistinctionTrial.position)).all()
    records = [{
        "study": study, "rater": f.external_id, "item": f.key, "label": f.label,
        "attention_check": bool(f.is_attention_check), "response_ms": f.response_ms, "created_at": _iso(f.created_at),
        "position": f.position, "repeat": int(f.is_repeat), "rater_finished": f.finished_at is not None,
        "task": "distinction", "method": f.name, "chosen_index": f.chosen_ordinal, "answer_index": f.answer_ordinal,
        "correct": f.rank == 1, "confidence": f.confidence, "chosen_rank": f.rank, "chosen_slot": f.chosen_slot,
        "answer_slot": [int(k) for k in f.candidate_order.split(",")].index(f.answer_ordinal),
    } for f in found]
    columns = [c for c in ALL_TASKS.columns if c in ANSWER_COLUMNS]  # the votes format's file order
    return normalise(pd.DataFrame(records, columns=columns), source=f"answers of study {study!r}", fmt=ALL_TASKS)


def is_distinction_study(url: str | Engine | None, study: str) -> bool:
    engine = url if isinstance(url, Engine) else get_engine(url)
    with read_session(engine) as session:
        return session.scalar(select(Study.task).where(Study.name == study)) == "distinction"
