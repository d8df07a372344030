"""Looking behind the blinding: which method is on which side of a trial (pairwise), which map is the
model's prediction (distinction), and how many votes or answers a study has.

Simulated raters and tests need to know which map is the proposed one to vote on purpose, and an
oracle count of stored votes. The rater app must never be able to do the first (blinding depends on
it), so neither lives in ``survey``: they read the database directly through ``survey.schema``.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from survey.db import read_session
from survey.schema import (
    Assignment,
    DistinctionAnswer,
    DistinctionCandidate,
    DistinctionItem,
    DistinctionTrial,
    Item,
    Method,
    Rater,
    Study,
    Vote,
)
from survey.service import STALE, UNKNOWN_STUDY, SurveyError


@dataclass(frozen=True)
class RevealedTrial:
    """Which method is where, for server-side simulations and tests. Never send this to a browser."""

    item: str
    left_method: str
    right_method: str
    proposed_method: str
    is_attention_check: bool
    expected_method: str | None
    is_repeat: bool


def reveal_trial(engine: Engine, token: str) -> RevealedTrial:
    """Which method is on which side of the trial handed out as ``token`` (``service.next_trial``);
    SurveyError when no trial has that token."""
    with read_session(engine) as session:
        found = session.execute(
            select(Assignment, Item).join(Item, Assignment.item_id == Item.id)
            .where(Assignment.token == token)
        ).one_or_none()
        if found is None:
            raise SurveyError(STALE)
        assignment, item = found
        methods = {m.id: m for m in session.scalars(select(Method).where(Method.study_id == item.study_id))}
        proposed = next(m.name for m in methods.values() if m.role == "proposed")
        expected = methods[item.expected_method_id].name if item.expected_method_id else None
        return RevealedTrial(item.key, methods[assignment.left_method_id].name,
                             methods[assignment.right_method_id].name, proposed,
                             item.is_attention_check, expected, assignment.is_repeat)


def vote_count(engine: Engine, study: str) -> int:
    """Votes stored for ``study`` (SurveyError if there is no such study)."""
    with read_session(engine) as session:
        study_id = session.scalar(select(Study.id).where(Study.name == study))
        if study_id is None:
            raise SurveyError(UNKNOWN_STUDY)
        return session.scalar(select(func.count()).select_from(Vote).join(Rater, Vote.rater_id == Rater.id)
                              .where(Rater.study_id == study_id))


@dataclass(frozen=True)
class RevealedScreen:
    """What a distinction trial hides, for server-side simulations and tests. Never send to a browser."""

    item: str
    method: str
    answer_slot: int  # screen slot of the rank-1 candidate
    ranks: tuple[int, ...]  # rank of each candidate, in screen order
    labels: tuple[str, ...]
    is_attention_check: bool
    is_repeat: bool


def reveal_distinction_trial(engine: Engine, token: str) -> RevealedScreen:
    """The hidden side of a distinction trial (``survey.distinction_service.next_trial``'s token)."""
    with read_session(engine) as session:
        found = session.execute(
            select(DistinctionTrial, Item.key, Method.name, DistinctionItem.is_attention_check)
            .join(Item, Item.id == DistinctionTrial.item_id)
            .join(Method, Method.id == DistinctionTrial.method_id)
            .join(DistinctionItem, DistinctionItem.item_id == Item.id)
            .where(DistinctionTrial.token == token)).one_or_none()
        if found is None:
            raise SurveyError(STALE)
        trial, key, method, check = found
        rows = {c.ordinal: c for c in session.scalars(select(DistinctionCandidate).where(
            DistinctionCandidate.item_id == trial.item_id, DistinctionCandidate.method_id == trial.method_id))}
        shown = [rows[int(k)] for k in trial.candidate_order.split(",")]  # the stored screen order
        ranks = tuple(c.rank for c in shown)
        return RevealedScreen(key, method, ranks.index(1), ranks, tuple(c.label for c in shown), bool(check),
                              trial.is_repeat)


def answer_count(engine: Engine, study: str) -> int:
    """Answers stored for a distinction study, counted independently of the service under test."""
    with read_session(engine) as session:
        row = session.scalar(select(Study).where(Study.name == study))
        if row is None:
            raise SurveyError(UNKNOWN_STUDY)
        return session.scalar(select(func.count()).select_from(DistinctionAnswer)
                              .join(Rater, DistinctionAnswer.rater_id == Rater.id).where(Rater.study_id == row.id))
