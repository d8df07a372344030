"""Looking behind the blinding: which method is on which side of a trial, and how many votes a study has.

Simulated raters and tests need to know which map is the proposed one to vote on purpose, and an
oracle count of stored votes. The rater app must never be able to do the first (blinding depends on
it), so neither lives in ``survey``: they read the database directly through ``survey.schema``.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from survey.db import read_session
from survey.schema import Assignment, Item, Method, Rater, Study, Vote
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
