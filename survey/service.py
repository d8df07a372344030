"""The survey's service layer: everything the rater app and the admin page do, as plain functions.

Every function takes an Engine (``survey.db.get_engine``) and returns frozen dataclasses, never ORM
objects, so pages stay thin and all rules live here, tested without Streamlit:

* a rater's whole sequence is created once (``start_rater``), from their stored seed and sequence
  number (``survey.assignment``), so a reload, a closed tab or another device resumes exactly;
* ``next_trial`` hands out an opaque random token per trial, never a method name or file name, and
  stamps the server-side display time the first time;
* ``record_vote`` is idempotent: a double click or resubmission records nothing new and skips
  nothing, on SQLite (BEGIN IMMEDIATE serialises writers) and PostgreSQL (unique keys; we retry).

``SurveyError`` messages are safe to show to a rater: they never name a method or a file.
"""
from __future__ import annotations

import json
import random
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from survey import distinction_trials
from survey.assignment import ItemSpec, plan_sequence
from survey.db import read_connection, read_session, write_connection, write_session
from survey.package import UnsafePathError, resolve_inside
from survey.schema import (
    RATER_ID_MAX, Assignment, Item, ItemMap, Method, Rater, Study, UTCDateTime, Vote, utcnow,
)

if TYPE_CHECKING:
    import pandas as pd

Choice = Literal["A", "B", "none"]
RETRIES = 5  # PostgreSQL: attempts when two transactions race on a unique key


class SurveyError(ValueError):
    """Something a rater (or admin) did that cannot be done; the message is safe to show them."""


# ----------------------------------------------------------------------------------------- views
@dataclass(frozen=True)
class ExampleView:
    """The worked example shown with the instructions (never voted on)."""

    label: str
    question: str
    image_path: Path
    left_path: Path
    right_path: Path


@dataclass(frozen=True)
class StudyView:
    name: str
    question: str  # still contains "{label}"; Trial.question has it filled in
    instructions: str
    consent: str | None
    allow_no_preference: bool
    is_open: bool
    invite_only: bool
    n_trials_per_rater: int
    package_root: Path
    example: ExampleView | None  # pairwise only; distinction: survey.distinction_service.get_example
    completion_redirect: str | None
    task: str = "pairwise"  # "distinction": the page shows survey.distinction_service screens


@dataclass(frozen=True)
class RaterView:
    study: str
    rater: str
    answered: int  # trials with a vote
    total: int  # trials in the rater's sequence
    finished: bool


@dataclass(frozen=True)
class Trial:
    """One pair to judge. ``token`` is random and says nothing about the methods."""

    token: str
    position: int  # 1-based
    total: int
    label: str
    question: str  # with {label} filled in
    image_path: Path
    left_path: Path  # shown as "A"
    right_path: Path  # shown as "B"
    allow_no_preference: bool = False


@dataclass(frozen=True)
class VoteResult:
    recorded: bool  # a new vote was stored now
    duplicate: bool  # this trial already had a vote; nothing changed
    finished: bool = False  # the rater has answered every trial


@dataclass(frozen=True)
class Completion:
    code: str
    redirect_url: str | None


@dataclass(frozen=True)
class AdminSummary:
    study: str
    is_open: bool
    raters_started: int
    raters_finished: int
    # columns: item, label, attention_check, assigned, proposed_left, votes, chose_proposed
    votes_per_item: pd.DataFrame
    attention_failures: int  # attention-check votes that did not pick the expected map
    # share of first-showing, non-check votes with a preference that chose the proposed map
    proposed_rate: float | None
    k: int
    n: int
    ci: tuple[float, float] | None  # exact (Clopper-Pearson) 95% binomial CI of proposed_rate
    n_votes: int = 0
    attention_checks_answered: int = 0
    raters_failing_attention: int = 0
    no_preference: int = 0


# --------------------------------------------------------------------------------------- helpers
CLOSED = "This study is closed. Thank you for your interest."
UNKNOWN_STUDY = "Unknown study. Please check the link you were given."
NOT_STARTED = "Your session was not found. Please open the study link again."
STALE = "This pair is no longer current. Please reload the page."
FILES_MISSING = "The images of this study are unavailable. Please contact the researchers."
WRONG_TASK = "This page does not match the study. Please reload the page."


def check_rater_id(rater: object) -> str:
    """The rater id, verbatim, if it can be stored; else SurveyError saying what to change."""
    if not isinstance(rater, str) or not rater.strip():
        raise SurveyError("Please enter your participant id.")
    if len(rater) > RATER_ID_MAX:
        raise SurveyError(f"Participant ids are at most {RATER_ID_MAX} characters long.")
    if "\x00" in rater or any(unicodedata.category(ch) == "Cs" for ch in rater):
        raise SurveyError("This participant id contains characters that cannot be stored.")
    return rater


def _study(session: Session, name: str) -> Study:
    study = session.scalar(select(Study).where(Study.name == name)) if isinstance(name, str) else None
    if study is None:
        raise SurveyError(UNKNOWN_STUDY)
    return study


def _rater(session: Session, study: Study, rater: str) -> Rater:
    row = session.scalar(select(Rater).where(Rater.study_id == study.id, Rater.external_id == rater))
    if row is None:
        raise SurveyError(NOT_STARTED)
    return row


def _file(study: Study, relative: str) -> Path:
    try:
        return resolve_inside(Path(study.package_root), relative)
    except UnsafePathError:
        raise SurveyError(FILES_MISSING) from None


def _fill(question: str, label: str) -> str:
    return question.replace("{label}", label)


def _methods(session: Session, study: Study) -> dict[int, Method]:
    return {m.id: m for m in session.scalars(select(Method).where(Method.study_id == study.id))}


def _role(methods: dict[int, Method], role: str) -> Method:
    return next(m for m in methods.values() if m.role == role)


def _item_specs(session: Session, study: Study) -> list[ItemSpec]:
    """What to plan: each item's pair, with the side-balanced method first (proposed, or expected)."""
    methods = _methods(session, study)
    proposed, baseline = _role(methods, "proposed").id, _role(methods, "baseline").id
    specs = []
    for item in session.scalars(select(Item).where(Item.study_id == study.id).order_by(Item.ordinal)):
        if item.is_attention_check:
            expected = item.expected_method_id
            other = baseline if expected == proposed else proposed
            specs.append(ItemSpec(item.id, expected, other, True))
        else:
            specs.append(ItemSpec(item.id, proposed, baseline, False))
    return specs


def _progress(session: Session, rater: Rater) -> list[tuple[Assignment, bool]]:
    """The rater's assignments in order, each with whether it has a vote."""
    rows = session.execute(
        select(Assignment, Vote.id.is_not(None))
        .outerjoin(Vote, Vote.assignment_id == Assignment.id)
        .where(Assignment.rater_id == rater.id)
        .order_by(Assignment.position)
    ).all()
    return [(a, bool(voted)) for a, voted in rows]


def n_trials_per_rater(session: Session, study: Study) -> int:
    """Items plus repeats: the length of every rater's sequence, whatever the task."""
    n_items = session.scalar(select(func.count()).select_from(Item).where(Item.study_id == study.id))
    return n_items + study.repeats


def _example(study: Study) -> ExampleView | None:
    example = json.loads(study.manifest_json).get("example")
    if not example or study.task != "pairwise":
        return None
    methods = list(example["maps"])
    random.Random(f"vibcam-example:{study.seed}").shuffle(methods)  # fixed per study, says nothing
    return ExampleView(example["label"], _fill(study.question, example["label"]),
                       _file(study, example["image"]), _file(study, example["maps"][methods[0]]),
                       _file(study, example["maps"][methods[1]]))


def _retrying(action):  # noqa: ANN001, ANN202
    """Runs ``action()`` again when a concurrent transaction won a unique-key race (PostgreSQL)."""
    for attempt in range(RETRIES):
        try:
            return action()
        except IntegrityError:
            if attempt == RETRIES - 1:
                raise


# -------------------------------------------------------------------------------------- studies
def get_study(engine: Engine, study: str) -> StudyView | None:
    """The study's settings and texts, or None if there is no such study."""
    with read_session(engine) as session:
        row = session.scalar(select(Study).where(Study.name == study)) if isinstance(study, str) else None
        if row is None:
            return None
        return StudyView(
            name=row.name, question=row.question, instructions=row.instructions, consent=row.consent,
            allow_no_preference=row.allow_no_preference, is_open=row.is_open, invite_only=row.invite_only,
            n_trials_per_rater=n_trials_per_rater(session, row), package_root=Path(row.package_root),
            example=_example(row), completion_redirect=row.completion_redirect, task=row.task,
        )


def list_open_studies(engine: Engine) -> list[str]:
    with read_session(engine) as session:
        return list(session.scalars(select(Study.name).where(Study.is_open.is_(True)).order_by(Study.name)))


def list_studies(engine: Engine) -> list[str]:
    """Every study name, open or closed (admin page, CLI)."""
    with read_session(engine) as session:
        return list(session.scalars(select(Study.name).order_by(Study.name)))


def set_study_open(engine: Engine, study: str, is_open: bool) -> None:
    with write_session(engine) as session:
        _study(session, study).is_open = bool(is_open)


# --------------------------------------------------------------------------------------- raters
def _rater_view(session: Session, study: Study, rater: Rater) -> RaterView:
    if study.task == "distinction":
        answered, total = distinction_trials.progress_counts(session, rater)
        return RaterView(study.name, rater.external_id, answered, total, answered == total)
    progress = _progress(session, rater)
    answered = sum(voted for _, voted in progress)
    return RaterView(study.name, rater.external_id, answered, len(progress), answered == len(progress))


def start_rater(engine: Engine, study: str, rater: str) -> RaterView:
    """Creates the rater and their whole sequence on first call; afterwards just reports progress.

    The rater's sequence number comes from an atomic increment of the study's counter in the same
    transaction, so concurrent arrivals get distinct, gap-free numbers and the sides stay balanced.
    """
    check_rater_id(rater)

    def attempt() -> RaterView:
        with write_session(engine) as session:
            row = _study(session, study)
            existing = session.scalar(
                select(Rater).where(Rater.study_id == row.id, Rater.external_id == rater))
            if existing is not None:
                return _rater_view(session, row, existing)
            if not row.is_open:
                raise SurveyError(CLOSED)
            seq = session.execute(
                update(Study.__table__).where(Study.__table__.c.id == row.id)
                .values(n_raters=Study.__table__.c.n_raters + 1).returning(Study.__table__.c.n_raters)
            ).scalar_one() - 1
            new = Rater(study_id=row.id, external_id=rater, seq=seq, seed=secrets.randbits(62),
                        created_at=utcnow())
            session.add(new)
            session.flush()
            if row.task == "distinction":  # one method per rater, fixed here with the sequence number
                return RaterView(row.name, rater, 0, distinction_trials.create_trials(session, row, new), False)
            plan = plan_sequence(_item_specs(session, row), rater_seed=new.seed, rater_index=seq,
                                 study_seed=row.seed, repeats=row.repeats)
            session.add_all(
                Assignment(rater_id=new.id, item_id=t.item, position=t.position, left_method_id=t.left,
                           right_method_id=t.right, is_repeat=t.is_repeat, token=secrets.token_urlsafe(16))
                for t in plan
            )
            session.flush()
            return RaterView(row.name, rater, 0, len(plan), False)

    return _retrying(attempt)


# The vote path (next_trial, record_vote) runs prebuilt Core statements on a plain Connection: no
# ORM unit of work and no statement building per call, so SQLite's single write lock is held briefly.
_SESSION_ROW = (
    select(Study.id, Study.is_open, Study.question, Study.package_root, Study.allow_no_preference, Study.task,
           Rater.id.label("rater_id"))
    .outerjoin(Rater, (Rater.study_id == Study.id) & (Rater.external_id == bindparam("rater")))
    .where(Study.name == bindparam("study"))
)
_POSITIONS = (
    select(Assignment.id, Assignment.position, Assignment.shown_at, Assignment.token, Assignment.item_id,
           Assignment.left_method_id, Assignment.right_method_id, Assignment.is_repeat,
           Vote.id.label("vote_id"))
    .outerjoin(Vote, Vote.assignment_id == Assignment.id)
    .where(Assignment.rater_id == bindparam("rater_id"))
    .order_by(Assignment.position)
)
_FILES = (select(Item.label, Item.image_path, ItemMap.method_id, ItemMap.path)
          .join(ItemMap, ItemMap.item_id == Item.id).where(Item.id == bindparam("item_id")))
_STAMP = (update(Assignment).where(Assignment.id == bindparam("b_id"), Assignment.shown_at.is_(None))
          .values(shown_at=bindparam("b_now", type_=UTCDateTime())))
_LOCK_RATER = select(Rater.id).where(Rater.id == bindparam("rater_id")).with_for_update()
_INSERT_VOTE = insert(Vote)
_FINISH = (update(Rater).where(Rater.id == bindparam("b_id"))
           .values(finished_at=bindparam("b_now", type_=UTCDateTime())))


def _session_row(connection: Connection, study: str, rater: str, task: str = "pairwise"):  # noqa: ANN202
    """(study columns, rater id) in one query; SurveyError if either is unknown, the study is closed,
    or it runs another task than the caller serves (a pairwise call on a distinction study would
    find no trials and look finished)."""
    found = connection.execute(_SESSION_ROW, {"study": study, "rater": rater}).one_or_none() \
        if isinstance(study, str) else None
    if found is None:
        raise SurveyError(UNKNOWN_STUDY)
    if not found.is_open:
        raise SurveyError(CLOSED)
    if found.rater_id is None:
        raise SurveyError(NOT_STARTED)
    if found.task != task:
        raise SurveyError(WRONG_TASK)
    return found


def next_trial(engine: Engine, study: str, rater: str) -> Trial | None:
    """The rater's first unanswered trial (None when finished); stamps its display time once."""
    check_rater_id(rater)
    with read_connection(engine) as connection:
        row = _session_row(connection, study, rater)
        progress = connection.execute(_POSITIONS, {"rater_id": row.rater_id}).all()
        current = next((p for p in progress if p.vote_id is None), None)
        if current is None:
            return None
        files = connection.execute(_FILES, {"item_id": current.item_id}).all()
    maps = {f.method_id: f.path for f in files}
    root = Path(row.package_root)

    def file(relative: str) -> Path:
        try:
            return resolve_inside(root, relative)
        except UnsafePathError:
            raise SurveyError(FILES_MISSING) from None

    label = files[0].label
    trial = Trial(
        token=current.token, position=current.position, total=len(progress), label=label,
        question=_fill(row.question, label), image_path=file(files[0].image_path),
        left_path=file(maps[current.left_method_id]), right_path=file(maps[current.right_method_id]),
        allow_no_preference=row.allow_no_preference,
    )
    if current.shown_at is None:  # blind conditional write: the first display wins, later ones do nothing
        with write_connection(engine, durable=False) as connection:  # the vote's commit syncs it too
            connection.execute(_STAMP, {"b_id": current.id, "b_now": utcnow()})
    return trial


def record_vote(engine: Engine, study: str, rater: str, token: str, choice: Choice) -> VoteResult:
    """Stores the rater's choice for the trial ``token`` ("A" = left, "B" = right, "none").

    Idempotent: a second submission of the same trial returns ``duplicate=True`` and changes nothing.
    Only the rater's current trial can be answered, so nothing is ever skipped.
    """
    if choice not in ("A", "B", "none"):
        raise SurveyError("Please choose A or B.")
    check_rater_id(rater)
    if not isinstance(token, str) or not token:
        raise SurveyError(STALE)

    def attempt() -> VoteResult:
        with write_connection(engine) as connection:
            row = _session_row(connection, study, rater)
            if connection.dialect.name == "postgresql":
                # One vote at a time per rater, so the checks below see a concurrent click's vote.
                # (SQLite needs nothing: BEGIN IMMEDIATE already serialises all writers.)
                connection.execute(_LOCK_RATER, {"rater_id": row.rater_id})
            progress = connection.execute(_POSITIONS, {"rater_id": row.rater_id}).all()
            mine = next((p for p in progress if p.token == token), None)
            if mine is None:
                raise SurveyError(STALE)  # unknown token, or another rater's
            if mine.vote_id is not None:
                return VoteResult(recorded=False, duplicate=True, finished=all(p.vote_id for p in progress))
            if choice == "none" and not row.allow_no_preference:
                raise SurveyError("Please choose A or B.")
            unanswered = [p for p in progress if p.vote_id is None]
            if unanswered[0].id != mine.id or mine.shown_at is None:
                raise SurveyError(STALE)  # not the pair on the rater's screen
            now = utcnow()
            side = {"A": "left", "B": "right", "none": "none"}[choice]
            method = {"left": mine.left_method_id, "right": mine.right_method_id}.get(side)
            connection.execute(_INSERT_VOTE, {
                "assignment_id": mine.id, "rater_id": row.rater_id, "item_id": mine.item_id,
                "is_repeat": mine.is_repeat, "chosen_method_id": method, "chosen_side": side,
                "response_ms": max(0, round((now - mine.shown_at).total_seconds() * 1000)), "created_at": now,
            })  # a concurrent duplicate surfaces here as IntegrityError, inside the retry
            finished = len(unanswered) == 1
            if finished:
                connection.execute(_FINISH, {"b_id": row.rater_id, "b_now": now})
            return VoteResult(recorded=True, duplicate=False, finished=finished)

    return _retrying(attempt)


def rater_progress(engine: Engine, study: str, rater: str) -> RaterView | None:
    """Progress of an existing rater without creating one (None if they never started)."""
    check_rater_id(rater)
    with read_session(engine) as session:
        row = _study(session, study)
        person = session.scalar(select(Rater).where(Rater.study_id == row.id, Rater.external_id == rater))
        return None if person is None else _rater_view(session, row, person)


def completion(engine: Engine, study: str, rater: str) -> Completion:
    """The completion code and, if the study has a redirect template, the filled-in URL."""
    check_rater_id(rater)
    with read_session(engine) as session:
        row = _study(session, study)
        person = _rater(session, row, rater)
        if person.finished_at is None:
            raise SurveyError("You have not finished the study yet.")
        redirect = row.completion_redirect
        if redirect:
            redirect = (redirect.replace("{code}", quote(row.completion_code, safe=""))
                        .replace("{rater}", quote(person.external_id, safe=""))
                        .replace("{study}", quote(row.name, safe="")))
        return Completion(row.completion_code, redirect)


# ---------------------------------------------------------------------------------------- admin
def admin_summary(engine: Engine, study: str) -> AdminSummary:
    """Live numbers for the admin page: progress, balance per item, attention checks, preference rate."""
    import pandas as pd
    from scipy.stats import binomtest

    with read_session(engine) as session:
        row = _study(session, study)
        if row.task != "pairwise":
            raise SurveyError(f"{study!r} is a {row.task} study: use survey.distinction_service.summary")
        methods = _methods(session, row)
        proposed = _role(methods, "proposed").id
        started = session.scalar(select(func.count()).select_from(Rater).where(Rater.study_id == row.id))
        finished = session.scalar(select(func.count()).select_from(Rater)
                                  .where(Rater.study_id == row.id, Rater.finished_at.is_not(None)))
        trials = session.execute(
            select(Item.key, Item.label, Item.is_attention_check, Item.expected_method_id, Item.ordinal,
                   Assignment.is_repeat, Assignment.left_method_id, Assignment.rater_id,
                   Vote.id, Vote.chosen_method_id)
            .join(Assignment, Assignment.item_id == Item.id)
            .outerjoin(Vote, Vote.assignment_id == Assignment.id)
            .where(Item.study_id == row.id)
        ).all()
        items = session.execute(select(Item.key, Item.label, Item.is_attention_check, Item.ordinal)
                                .where(Item.study_id == row.id).order_by(Item.ordinal)).all()

    per_item = {key: {"item": key, "label": label, "attention_check": bool(check), "assigned": 0,
                      "proposed_left": 0, "votes": 0, "chose_proposed": 0} for key, label, check, _ in items}
    k = n = no_pref = checks = failures = n_votes = 0
    failing: set[int] = set()
    for t in trials:
        entry = per_item[t.key]
        if not t.is_repeat:
            entry["assigned"] += 1
            entry["proposed_left"] += int(t.left_method_id == proposed)
        if t.id is None:
            continue
        n_votes += 1
        entry["votes"] += 1
        entry["chose_proposed"] += int(t.chosen_method_id == proposed)
        if t.is_attention_check:
            checks += 1
            if t.chosen_method_id != t.expected_method_id:
                failures += 1
                failing.add(t.rater_id)
        elif not t.is_repeat:
            if t.chosen_method_id is None:
                no_pref += 1
            else:
                n += 1
                k += int(t.chosen_method_id == proposed)
    ci = None
    if n:
        interval = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        ci = (float(interval.low), float(interval.high))
    columns = ["item", "label", "attention_check", "assigned", "proposed_left", "votes", "chose_proposed"]
    return AdminSummary(
        study=row.name, is_open=row.is_open, raters_started=started, raters_finished=finished,
        votes_per_item=pd.DataFrame(list(per_item.values()), columns=columns), attention_failures=failures,
        proposed_rate=(k / n) if n else None, k=k, n=n, ci=ci, n_votes=n_votes,
        attention_checks_answered=checks, raters_failing_attention=len(failing), no_preference=no_pref,
    )
