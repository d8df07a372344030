"""The distinction service end to end on SQLite and PostgreSQL: import, one method per rater
(balanced), whole sessions, resume, idempotent answers, refused input, what the database itself
refuses, the export against the package, the admin numbers, and the migration from 0002."""
from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import fields as dataclass_fields
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError

import survey.distinction_service as ds
from survey import service
from survey.db import get_engine, read_session, write_session
from survey.distinction_export import ANSWER_COLUMNS, answers_frame
from survey.export import export_votes_csv
from survey.importer import StudyImportError, import_package
from survey.package import DEFAULT_DISTINCTION_QUESTION, MANIFEST_NAME
from survey.schema import DistinctionAnswer, DistinctionRater, DistinctionTrial, Method, Study
from survey.service import SurveyError
from survey.votes_format import ALL_TASKS
from testing.distinction_package import SECRET_METHODS, make_distinction_package
from testing.reveal import answer_count, reveal_distinction_trial

COLUMNS = tuple(c for c in ALL_TASKS.columns if c in ANSWER_COLUMNS)

N_ITEMS, N_CHECKS = 5, 1


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_distinction_package(tmp_path_factory.mktemp("dist") / "pkg", name="dist", n_items=N_ITEMS,
                                    n_checks=N_CHECKS)


@pytest.fixture()
def engine(any_url: str, package: Path) -> Engine:
    engine = get_engine(any_url)
    import_package(engine, package, repeats=1)
    return engine


def manifest(package: Path) -> dict:
    return json.loads((package / MANIFEST_NAME).read_text())


def answer_all(engine: Engine, rater: str, pick=lambda screen, k: 0, confidence: int = 3) -> list:
    screens = []
    while (screen := ds.next_trial(engine, "dist", rater)) is not None:
        screens.append(screen)
        assert ds.record_answer(engine, "dist", rater, screen.token, pick(screen, len(screens)), confidence).recorded
    return screens


def test_import_keeps_the_task_and_the_default_question(engine: Engine, package: Path) -> None:
    view = service.get_study(engine, "dist")
    assert view.task == "distinction" and view.example is None
    assert view.question == DEFAULT_DISTINCTION_QUESTION and view.n_trials_per_rater == N_ITEMS + N_CHECKS + 1
    example = ds.get_example(engine, "dist")
    assert example is not None and len(example.candidates) == 4
    assert example == ds.get_example(engine, "dist")  # a fixed order per study
    ranked = manifest(package)["example"]["candidates"]
    assert example.answer_label == next(c["label"] for c in ranked if c["rank"] == 1)
    assert {f.name for f in dataclass_fields(ds.Candidate)} == {"label", "path"}
    assert import_package(engine, package, repeats=1).action == "unchanged"


def test_whole_session_blinded_then_completion(engine: Engine, package: Path) -> None:
    view = service.start_rater(engine, "dist", "alice")
    assert (view.answered, view.total, view.finished) == (0, N_ITEMS + N_CHECKS + 1, False)
    tokens, slots = [], []
    revealed_labels = []
    while (screen := ds.next_trial(engine, "dist", "alice")) is not None:
        assert screen == ds.next_trial(engine, "dist", "alice")  # a reload shows the same screen
        assert screen.position == len(tokens) + 1 and screen.total == view.total
        assert screen.question == DEFAULT_DISTINCTION_QUESTION
        assert len(screen.candidates) == 4 and all(c.path.is_file() for c in screen.candidates)
        shown = repr(screen)
        assert not [m for m in SECRET_METHODS if m in shown]  # nothing in the screen names a method
        hidden = reveal_distinction_trial(engine, screen.token)
        assert hidden.labels == tuple(c.label for c in screen.candidates)
        revealed_labels.append(hidden)
        slot = len(tokens) % 4
        result = ds.record_answer(engine, "dist", "alice", screen.token, slot, 1 + len(tokens) % 5)
        assert result.recorded and result.finished == (screen.position == view.total)
        tokens.append(screen.token)
        slots.append(slot)
    assert len(set(tokens)) == view.total
    assert service.rater_progress(engine, "dist", "alice").finished
    assert service.completion(engine, "dist", "alice").code

    # the export agrees with the package, computed independently from the manifest
    frame = answers_frame(engine, "dist")
    assert tuple(frame.columns) == COLUMNS and len(frame) == view.total
    assert list(frame["position"]) == list(range(1, view.total + 1))
    assert list(frame["chosen_slot"]) == slots and frame["rater_finished"].all()
    assert list(frame["confidence"]) == [1 + k % 5 for k in range(view.total)]
    assert frame["method"].nunique() == 1 and frame["task"].eq("distinction").all()
    assert frame["repeat"].sum() == 1
    items = {item["id"]: item for item in manifest(package)["items"]}
    for row, hidden in zip(frame.itertuples(), revealed_labels):
        listed = items[row.item]["candidates"][row.method]
        assert row.answer_index == items[row.item]["answer"][row.method]
        assert listed[row.chosen_index]["rank"] == row.chosen_rank
        assert listed[row.chosen_index]["label"] == hidden.labels[row.chosen_slot]
        assert row.correct == (row.chosen_index == row.answer_index) == (row.chosen_rank == 1)
        assert row.answer_slot == hidden.answer_slot and row.attention_check == items[row.item]["attention_check"]
        assert row.label == items[row.item]["label"]


def test_methods_balanced_across_raters_and_fixed_per_rater(engine: Engine) -> None:
    raters = [f"r{k}" for k in range(7)]
    for rater in raters:
        service.start_rater(engine, "dist", rater)
    with read_session(engine) as session:
        per_rater = dict(session.execute(select(DistinctionRater.rater_id, DistinctionRater.method_id)).all())
        trial_methods = set(session.execute(select(DistinctionTrial.rater_id, DistinctionTrial.method_id)).all())
    counts = Counter(per_rater.values())
    assert len(counts) == 2 and max(counts.values()) - min(counts.values()) <= 1
    assert trial_methods == set(per_rater.items())  # every trial carries its rater's method
    summary = ds.summary(engine, "dist")
    assert summary.raters_started == 7 and sorted(summary.per_method["raters"]) == sorted(counts.values())


def test_resume_duplicates_and_refused_answers(engine: Engine) -> None:
    service.start_rater(engine, "dist", "bob")
    first = ds.next_trial(engine, "dist", "bob")
    for choice, confidence in [(0, 0), (0, 6), (0, True), (True, 3), ("1", 3), (-1, 3), (4, 3), (0, "5")]:
        with pytest.raises(SurveyError):
            ds.record_answer(engine, "dist", "bob", first.token, choice, confidence)
    assert ds.record_answer(engine, "dist", "bob", first.token, 2, 4).recorded
    again = ds.record_answer(engine, "dist", "bob", first.token, 1, 1)  # a second click changes nothing
    assert again.duplicate and not again.recorded
    second = ds.next_trial(engine, "dist", "bob")
    assert second.position == 2
    with pytest.raises(SurveyError):
        ds.record_answer(engine, "dist", "bob", "not-a-token", 0, 3)
    service.start_rater(engine, "dist", "carol")
    carol = ds.next_trial(engine, "dist", "carol")
    with pytest.raises(SurveyError):  # another rater's trial
        ds.record_answer(engine, "dist", "bob", carol.token, 0, 3)
    frame = answers_frame(engine, "dist")
    assert list(zip(frame["chosen_slot"], frame["confidence"])) == [(2, 4)]
    assert service.start_rater(engine, "dist", "bob").answered == 1  # resume from another device


def test_an_unshown_trial_cannot_be_answered(engine: Engine) -> None:
    service.start_rater(engine, "dist", "dave")
    with read_session(engine) as session:
        token = session.scalar(select(DistinctionTrial.token).where(DistinctionTrial.position == 1))
    with pytest.raises(SurveyError):
        ds.record_answer(engine, "dist", "dave", token, 0, 3)  # never displayed: no response time


def test_threads_racing_on_one_trial_store_one_answer(engine: Engine) -> None:
    service.start_rater(engine, "dist", "erin")
    screen = ds.next_trial(engine, "dist", "erin")
    results, barrier = [], threading.Barrier(8)

    def click(k: int) -> None:
        barrier.wait()
        results.append(ds.record_answer(engine, "dist", "erin", screen.token, k % 4, 1 + k % 5))

    threads = [threading.Thread(target=click, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(r.recorded for r in results) == 1 and sum(r.duplicate for r in results) == 7
    assert answer_count(engine, "dist") == 1


def test_database_refuses_inconsistent_answers_and_deleting_them(engine: Engine) -> None:
    service.start_rater(engine, "dist", "frank")
    screen = ds.next_trial(engine, "dist", "frank")
    ds.record_answer(engine, "dist", "frank", screen.token, 0, 3)
    with read_session(engine) as session:
        answer = session.scalar(select(DistinctionAnswer))
        columns = [c.name for c in DistinctionAnswer.__table__.columns if c.name != "id"]
        row = {c: getattr(answer, c) for c in columns}
        other = session.scalar(select(DistinctionTrial).where(DistinctionTrial.id != answer.trial_id,
                                                              DistinctionTrial.rater_id == answer.rater_id))
        free = {"trial_id": other.id, "item_id": other.item_id, "is_repeat": other.is_repeat}
        foreign = session.scalar(select(Method.id).where(Method.id != answer.method_id).limit(1))
    bad_rows = [
        row,  # the same answer again
        {**row, "trial_id": other.id},  # another trial's id with this item
        {**row, **free, "confidence": 6},
        {**row, **free, "confidence": 0},
        {**row, **free, "chosen_ordinal": 4},  # no such candidate: index out of range
        {**row, **free, "chosen_slot": -1},
        {**row, **free, "response_ms": -1},
        {**row, **free, "method_id": foreign},  # not the method of the trial (and rater)
    ]
    for bad in bad_rows:
        with pytest.raises(IntegrityError), write_session(engine) as session:
            session.add(DistinctionAnswer(**bad))
    assert answer_count(engine, "dist") == 1
    with pytest.raises(IntegrityError), write_session(engine) as session:
        session.execute(text("DELETE FROM studies"))
    assert answer_count(engine, "dist") == 1


def test_changed_package_with_answers_is_not_replaced(engine: Engine, package: Path, tmp_path: Path) -> None:
    service.start_rater(engine, "dist", "gina")
    screen = ds.next_trial(engine, "dist", "gina")
    ds.record_answer(engine, "dist", "gina", screen.token, 1, 2)
    with pytest.raises(StudyImportError, match="1 vote"):
        import_package(engine, package, repeats=0)  # other options: a changed study
    with write_session(engine) as session:  # a bad task value is refused by the database
        study = session.scalar(select(Study))
        study.task = "ranking"
        with pytest.raises(IntegrityError):
            session.flush()
        session.rollback()


def test_summary_counts_accuracy_and_attention(engine: Engine) -> None:
    def right(screen, _k):
        return reveal_distinction_trial(engine, screen.token).answer_slot

    def wrong(screen, _k):
        return (reveal_distinction_trial(engine, screen.token).answer_slot + 1) % 4

    for rater, pick in [("good", right), ("bad", wrong)]:
        service.start_rater(engine, "dist", rater)
        answer_all(engine, rater, pick)
    s = ds.summary(engine, "dist")
    assert (s.raters_started, s.raters_finished) == (2, 2)
    assert s.n_answers == 2 * (N_ITEMS + N_CHECKS + 1)
    assert (s.attention_checks_answered, s.attention_failures, s.raters_failing_attention) == (2, 1, 1)
    table = s.per_method.set_index("method")
    assert table["answers"].sum() == 2 * N_ITEMS and table["correct"].sum() == N_ITEMS
    frame = answers_frame(engine, "dist")
    assert frame.groupby("rater")["correct"].mean().to_dict() == {"bad": 0.0, "good": 1.0}


def test_csv_export_round_trips(engine: Engine, tmp_path: Path) -> None:
    import pandas as pd

    rater = 'x,"y"\rz'
    service.start_rater(engine, "dist", rater)
    answer_all(engine, rater)
    out = tmp_path / "answers.csv"
    assert export_votes_csv(engine, "dist", out) == N_ITEMS + N_CHECKS + 1
    back = pd.read_csv(out, keep_default_na=False)
    assert list(back.columns) == list(COLUMNS) and set(back["rater"]) == {rater}
    assert back["chosen_index"].tolist() == answers_frame(engine, "dist")["chosen_index"].tolist()


def test_pairwise_functions_still_refuse_nothing_new(any_url: str, sample_package: Path) -> None:
    """A pairwise study after the migration: task 'pairwise', votes as before."""
    engine = get_engine(any_url)
    import_package(engine, sample_package)
    assert service.get_study(engine, "demo").task == "pairwise"
    service.start_rater(engine, "demo", "p")
    trial = service.next_trial(engine, "demo", "p")
    assert service.record_vote(engine, "demo", "p", trial.token, "A").recorded
    with read_session(engine) as session:
        assert session.scalar(select(Study.task)) == "pairwise"


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_migration_0003_keeps_studies_in_progress(backend: str, request: pytest.FixtureRequest,
                                                  tmp_path: Path) -> None:
    """A database at 0002 with a study: upgrading makes it 'pairwise' and keeps every row; the
    downgrade removes exactly what 0003 added."""
    from alembic import command
    from sqlalchemy import create_engine, inspect, make_url

    from survey.db import _alembic_config, head_revision, make_engine, upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    if backend == "postgresql":
        cluster = request.getfixturevalue("pg_cluster")
        admin = create_engine(cluster, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql("DROP DATABASE IF EXISTS at_0002")
            connection.exec_driver_sql("CREATE DATABASE at_0002")
        admin.dispose()
        url = make_url(cluster).set(database="at_0002").render_as_string(hide_password=False)
    engine = make_engine(url)
    try:
        upgrade(engine, "0002")
        assert "task" not in {c["name"] for c in inspect(engine).get_columns("studies")}
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO studies (name, question, instructions, allow_no_preference, is_open, invite_only, "
                "repeats, completion_code, seed, n_raters, package_root, fingerprint, manifest_json, imported_at) "
                "VALUES ('old', 'q {label}', 'i', false, true, false, 0, 'C0DE', 1, 0, '/x', 'f', '{}', "
                "CURRENT_TIMESTAMP)"))
        upgrade(engine)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT name, task FROM studies")).all() == [("old", "pairwise")]
        assert {"distinction_answers", "distinction_trials"} <= set(inspect(engine).get_table_names())
        with engine.begin() as connection:
            command.downgrade(_alembic_config(connection), "0002")
        inspector = inspect(engine)
        assert not [t for t in inspector.get_table_names() if t.startswith("distinction_")]
        assert "task" not in {c["name"] for c in inspector.get_columns("studies")}
        upgrade(engine)
        from alembic.runtime.migration import MigrationContext

        with engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() == head_revision()
            assert connection.execute(text("SELECT count(*) FROM studies")).scalar() == 1
    finally:
        engine.dispose()


def test_each_task_refuses_the_others_trial_functions(engine: Engine, any_url: str, sample_package: Path) -> None:
    """A pairwise call on a distinction study (or the reverse) would find no trials and look finished."""
    import_package(engine, sample_package)
    for rater in ("t1", "t2"):
        service.start_rater(engine, "dist", rater)
        service.start_rater(engine, "demo", rater)
    with pytest.raises(SurveyError, match="does not match"):
        service.next_trial(engine, "dist", "t1")
    with pytest.raises(SurveyError, match="does not match"):
        service.record_vote(engine, "dist", "t1", "token", "A")
    with pytest.raises(SurveyError, match="does not match"):
        ds.next_trial(engine, "demo", "t1")
    with pytest.raises(SurveyError, match="does not match"):
        ds.record_answer(engine, "demo", "t1", "token", 0, 3)
    with pytest.raises(SurveyError, match="distinction study"):
        service.admin_summary(engine, "dist")
    assert service.next_trial(engine, "demo", "t2") is not None and ds.next_trial(engine, "dist", "t2") is not None
