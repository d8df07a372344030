"""The distinction task's service layer (docs/survey.md, "The distinction task"): plain functions
returning frozen dataclasses, like :mod:`survey.service`, whose rules they share.

* A rater is created by :func:`survey.service.start_rater` for every task: in the same transaction as
  their sequence number it calls :func:`survey.distinction_trials.create_trials`, which fixes the
  rater's one method (permuted blocks, :func:`survey.assignment.method_for_rater`) and their whole
  sequence with each trial's candidate order, so a reload or another device resumes exactly.
* :func:`next_trial` hands out an opaque token and the candidates **in screen order**, each with its
  class label and map file only: no method, no rank, no answer index (the page cannot leak what it
  never gets).
* :func:`record_answer` takes the screen slot the rater clicked and their confidence (1-5). It is
  idempotent like ``record_vote``: a repeated click or resubmission records nothing new and skips
  nothing, on SQLite (BEGIN IMMEDIATE) and PostgreSQL (a row lock on the rater, unique keys, retry).

``SurveyError`` messages stay safe to show to a rater.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, update

from survey.db import read_connection, read_session, write_connection
from survey.package import CONFIDENCE_LEVELS, UnsafePathError, resolve_inside
from survey.schema import (
    DistinctionAnswer,
    DistinctionCandidate,
    DistinctionItem,
    DistinctionRater,
    DistinctionTrial,
    Item,
    Method,
    Rater,
    Study,
    UTCDateTime,
    utcnow,
)
from survey.service import (
    _FINISH,
    _LOCK_RATER,
    FILES_MISSING,
    SurveyError,
    VoteResult,
    _retrying,
    _session_row,
    _study,
    check_rater_id,
)

if TYPE_CHECKING:
    import pandas as pd

TASK = "distinction"
# Shown under the confidence scale; the ends only, so the scale reads as equal steps.
CONFIDENCE_ENDS = {1: "just guessing", 5: "certain"}
CHOOSE = "Please choose one of the maps and how sure you are."
STALE = "This screen is no longer current. Please reload the page."


# ----------------------------------------------------------------------------------------- views
@dataclass(frozen=True)
class Candidate:
    """One map on screen: the class label shown with it and its file. Nothing else, on purpose."""

    label: str
    path: Path


@dataclass(frozen=True)
class DistinctionScreen:
    """One distinction trial as the page shows it. ``candidates`` are in screen order; the answer is
    given as an index into this tuple (the screen slot). ``token`` is random and says nothing."""

    token: str
    position: int  # 1-based
    total: int
    question: str
    image_path: Path
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True)
class DistinctionExample:
    """The worked example shown with the instructions (never scored), in a fixed shuffled order."""

    question: str
    image_path: Path
    candidates: tuple[Candidate, ...]
    answer_label: str  # the example's rank-1 class: the welcome page tells it, so raters learn the task


@dataclass(frozen=True)
class DistinctionSummary:
    """Live numbers for the admin page and ``survey.study list``."""

    study: str
    is_open: bool
    raters_started: int
    raters_finished: int
    n_answers: int
    attention_checks_answered: int
    attention_failures: int  # checks answered with another map than the rank-1 one
    raters_failing_attention: int
    # columns: method, raters, answers (first showings of regular items), correct, accuracy
    per_method: pd.DataFrame


# ---------------------------------------------------------------------------------- the vote path
_POSITIONS = (
    select(DistinctionTrial.id, DistinctionTrial.position, DistinctionTrial.shown_at, DistinctionTrial.token,
           DistinctionTrial.item_id, DistinctionTrial.method_id, DistinctionTrial.is_repeat,
           DistinctionTrial.candidate_order, DistinctionAnswer.id.label("answer_id"))
    .outerjoin(DistinctionAnswer, DistinctionAnswer.trial_id == DistinctionTrial.id)
    .where(DistinctionTrial.rater_id == bindparam("rater_id"))
    .order_by(DistinctionTrial.position)
)
_CANDIDATES = (
    select(Item.image_path, DistinctionCandidate.ordinal, DistinctionCandidate.label, DistinctionCandidate.path)
    .join(DistinctionCandidate, DistinctionCandidate.item_id == Item.id)
    .where(Item.id == bindparam("item_id"), DistinctionCandidate.method_id == bindparam("method_id"))
)
_STAMP = (update(DistinctionTrial)
          .where(DistinctionTrial.id == bindparam("b_id"), DistinctionTrial.shown_at.is_(None))
          .values(shown_at=bindparam("b_now", type_=UTCDateTime())))
_INSERT_ANSWER = insert(DistinctionAnswer)


def _order(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def _files(root: Path, relative: str) -> Path:
    try:
        return resolve_inside(root, relative)
    except UnsafePathError:
        raise SurveyError(FILES_MISSING) from None


def _progress(connection: Connection, rater_id: int) -> list:
    return connection.execute(_POSITIONS, {"rater_id": rater_id}).all()


def next_trial(engine: Engine, study: str, rater: str) -> DistinctionScreen | None:
    """The rater's first unanswered trial (None when finished); stamps its display time once."""
    check_rater_id(rater)
    with read_connection(engine) as connection:
        row = _session_row(connection, study, rater, TASK)
        progress = _progress(connection, row.rater_id)
        current = next((p for p in progress if p.answer_id is None), None)
        if current is None:
            return None
        rows = connection.execute(_CANDIDATES, {"item_id": current.item_id, "method_id": current.method_id}).all()
    root = Path(row.package_root)
    by_ordinal = {r.ordinal: r for r in rows}
    try:
        shown = [by_ordinal[k] for k in _order(current.candidate_order)]
    except KeyError:
        raise SurveyError(FILES_MISSING) from None
    screen = DistinctionScreen(
        token=current.token, position=current.position, total=len(progress), question=row.question,
        image_path=_files(root, rows[0].image_path),
        candidates=tuple(Candidate(r.label, _files(root, r.path)) for r in shown),
    )
    if current.shown_at is None:  # the first display wins; later ones change nothing
        with write_connection(engine, durable=False) as connection:
            connection.execute(_STAMP, {"b_id": current.id, "b_now": utcnow()})
    return screen


def _checked_choice(choice: object, confidence: object) -> tuple[int, int]:
    for value in (choice, confidence):
        if isinstance(value, bool) or not isinstance(value, int):
            raise SurveyError(CHOOSE)
    if confidence not in CONFIDENCE_LEVELS or choice < 0:
        raise SurveyError(CHOOSE)
    return choice, confidence


def record_answer(engine: Engine, study: str, rater: str, token: str, choice: int, confidence: int) -> VoteResult:
    """Stores the rater's answer to trial ``token``: ``choice`` is the screen slot (an index into
    ``DistinctionScreen.candidates``), ``confidence`` 1 (just guessing) .. 5 (certain).

    Idempotent: a second submission of the same trial returns ``duplicate=True`` and changes nothing,
    whatever it chose. Only the rater's current trial can be answered, so nothing is ever skipped.
    """
    choice, confidence = _checked_choice(choice, confidence)
    check_rater_id(rater)
    if not isinstance(token, str) or not token:
        raise SurveyError(STALE)

    def attempt() -> VoteResult:
        with write_connection(engine) as connection:
            row = _session_row(connection, study, rater, TASK)
            if connection.dialect.name == "postgresql":
                connection.execute(_LOCK_RATER, {"rater_id": row.rater_id})  # one answer at a time per rater
            progress = _progress(connection, row.rater_id)
            mine = next((p for p in progress if p.token == token), None)
            if mine is None:
                raise SurveyError(STALE)
            if mine.answer_id is not None:
                return VoteResult(recorded=False, duplicate=True, finished=all(p.answer_id for p in progress))
            unanswered = [p for p in progress if p.answer_id is None]
            if unanswered[0].id != mine.id or mine.shown_at is None:
                raise SurveyError(STALE)
            order = _order(mine.candidate_order)
            if choice >= len(order):
                raise SurveyError(CHOOSE)
            now = utcnow()
            connection.execute(_INSERT_ANSWER, {
                "trial_id": mine.id, "rater_id": row.rater_id, "item_id": mine.item_id,
                "is_repeat": mine.is_repeat, "method_id": mine.method_id, "chosen_ordinal": order[choice],
                "chosen_slot": choice, "confidence": confidence,
                "response_ms": max(0, round((now - mine.shown_at).total_seconds() * 1000)), "created_at": now,
            })  # a concurrent duplicate surfaces here as IntegrityError, inside the retry
            finished = len(unanswered) == 1
            if finished:
                connection.execute(_FINISH, {"b_id": row.rater_id, "b_now": now})
            return VoteResult(recorded=True, duplicate=False, finished=finished)

    return _retrying(attempt)


# ------------------------------------------------------------------------------------- example
def example_of(study: Study) -> DistinctionExample | None:
    """The package's example (``example.candidates``), shuffled once per study, or None."""
    import json

    example = json.loads(study.manifest_json).get("example")
    if not example:
        return None
    root = Path(study.package_root)
    listed = [Candidate(c["label"], _files(root, c["map"])) for c in example["candidates"]]
    random.Random(f"vibcam-example:{study.seed}").shuffle(listed)  # not by rank: says nothing
    answer = next(c["label"] for c in example["candidates"] if c["rank"] == 1)
    return DistinctionExample(study.question, _files(root, example["image"]), tuple(listed), answer)


def get_example(engine: Engine, study: str) -> DistinctionExample | None:
    with read_session(engine) as session:
        return example_of(_study(session, study))


# ----------------------------------------------------------------------------------------- admin
def summary(engine: Engine, study: str) -> DistinctionSummary:
    """Progress, attention checks and accuracy per method (first showings of regular items)."""
    import pandas as pd

    with read_session(engine) as session:
        row = _study(session, study)
        started = session.scalar(select(func.count()).select_from(Rater).where(Rater.study_id == row.id))
        finished = session.scalar(select(func.count()).select_from(Rater)
                                  .where(Rater.study_id == row.id, Rater.finished_at.is_not(None)))
        methods = list(session.execute(select(Method.id, Method.name).where(Method.study_id == row.id)
                                       .order_by(Method.ordinal)))
        raters_per_method = dict(session.execute(
            select(DistinctionRater.method_id, func.count()).join(Rater, Rater.id == DistinctionRater.rater_id)
            .where(Rater.study_id == row.id).group_by(DistinctionRater.method_id)).all())
        answers = session.execute(
            select(DistinctionAnswer.rater_id, DistinctionAnswer.method_id, DistinctionAnswer.is_repeat,
                   DistinctionItem.is_attention_check, DistinctionCandidate.rank)
            .join(Rater, Rater.id == DistinctionAnswer.rater_id)
            .join(DistinctionItem, DistinctionItem.item_id == DistinctionAnswer.item_id)
            .join(DistinctionCandidate, (DistinctionCandidate.item_id == DistinctionAnswer.item_id)
                  & (DistinctionCandidate.method_id == DistinctionAnswer.method_id)
                  & (DistinctionCandidate.ordinal == DistinctionAnswer.chosen_ordinal))
            .where(Rater.study_id == row.id)).all()
    per_method = {mid: [0, 0] for mid, _ in methods}  # answers, correct
    checks = failures = 0
    failing: set[int] = set()
    for a in answers:
        if a.is_attention_check:
            checks += 1
            if a.rank != 1:
                failures += 1
                failing.add(a.rater_id)
        elif not a.is_repeat:
            per_method[a.method_id][0] += 1
            per_method[a.method_id][1] += int(a.rank == 1)
    table = pd.DataFrame(
        [{"method": name, "raters": raters_per_method.get(mid, 0), "answers": per_method[mid][0],
          "correct": per_method[mid][1],
          "accuracy": per_method[mid][1] / per_method[mid][0] if per_method[mid][0] else float("nan")}
         for mid, name in methods],
        columns=["method", "raters", "answers", "correct", "accuracy"])
    return DistinctionSummary(row.name, row.is_open, started, finished, len(answers), checks, failures,
                              len(failing), table)
