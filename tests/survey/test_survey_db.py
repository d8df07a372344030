"""Engines, migrations and the constraints the database itself enforces."""
from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError

from survey import service
from survey.db import (
    DEFAULT_URL, DatabaseError, current_revision, database_url, dispose_engines, get_engine, head_revision,
    make_engine, read_session, write_session,
)
from survey.importer import import_package
from survey.schema import Assignment, Base, Study, Vote
from testing.reveal import vote_count


def test_url_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SURVEY_DB_URL", raising=False)
    assert database_url() == DEFAULT_URL == "sqlite:///data/survey.db"
    monkeypatch.setenv("SURVEY_DB_URL", "sqlite:///x.db")
    assert database_url() == "sqlite:///x.db" and database_url("sqlite:///y.db") == "sqlite:///y.db"


def test_default_database_created_in_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SURVEY_DB_URL", raising=False)
    try:
        engine = get_engine()
        assert (tmp_path / "data" / "survey.db").exists()
        assert current_revision(engine) == head_revision()
    finally:
        dispose_engines()


@pytest.mark.parametrize("url, words", [("sqlite://", "in-memory"), ("mysql://u@h/db", "unsupported"),
                                        ("postgresql+psycopg2://u@h/db", "psycopg 3")])
def test_unusable_urls_are_explained(url: str, words: str) -> None:
    with pytest.raises(DatabaseError, match=words):
        make_engine(url)


def test_sqlite_pragmas(sqlite_url: str) -> None:
    engine = get_engine(sqlite_url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL (default)


def test_display_stamps_skip_the_fsync_votes_do_not(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from survey.db import write_connection

    monkeypatch.setenv("SURVEY_SQLITE_SYNCHRONOUS", "FULL")
    engine = get_engine(sqlite_url)
    for durable, expected in [(False, 1), (True, 2), (False, 1), (True, 2)]:  # 1 = NORMAL, 2 = FULL
        with write_connection(engine, durable=durable) as connection:
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == expected


def test_synchronous_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for value, expected in [("full", 2), ("NORMAL", 1)]:
        monkeypatch.setenv("SURVEY_SQLITE_SYNCHRONOUS", value)
        engine = make_engine(f"sqlite:///{tmp_path / 'n.db'}")
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == expected
        engine.dispose()
    monkeypatch.setenv("SURVEY_SQLITE_SYNCHRONOUS", "off")
    with pytest.raises(DatabaseError, match="FULL or NORMAL"):
        make_engine(f"sqlite:///{tmp_path / 'n.db'}")


def test_write_sessions_take_the_write_lock_at_begin_reads_do_not(sqlite_url: str) -> None:
    """BEGIN IMMEDIATE: a write session waits for another writer *before* reading; reads never wait."""
    engine = get_engine(sqlite_url)
    path = engine.url.database
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    with read_session(engine) as session:  # WAL: readers run beside the writer
        assert session.scalar(select(Study.id)) is None
    entered = threading.Event()

    def writer() -> None:
        with write_session(engine) as session:
            session.execute(select(Study.id))  # its first statement: BEGIN IMMEDIATE, then the read
            entered.set()

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.3)
    blocked = not entered.is_set()  # waiting in BEGIN IMMEDIATE, before reading anything
    holder.execute("COMMIT")
    thread.join(10)
    holder.close()
    assert blocked and entered.is_set()


def _schema_diff(url: str) -> list:
    engine = get_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def test_migrated_schema_equals_models(any_url: str) -> None:
    assert _schema_diff(any_url) == []
    engine = get_engine(any_url)
    assert current_revision(engine) == head_revision()
    names = set(inspect(engine).get_table_names())
    tables = {"studies", "methods", "items", "item_maps", "raters", "assignments", "votes", "admin_sign_ins",
              "alembic_version"}
    assert tables <= names
    checks = {c["name"] for c in inspect(engine).get_check_constraints("votes")}
    assert {"ck_votes_side_known", "ck_votes_method_iff_side"} <= checks


def test_get_engine_is_cached_and_upgrade_is_idempotent(sqlite_url: str) -> None:
    from survey.db import upgrade

    engine = get_engine(sqlite_url)
    assert get_engine(sqlite_url) is engine
    upgrade(engine)  # already at head: nothing to do, no error
    assert current_revision(engine) == head_revision()


def _voted_study(url: str, package: Path) -> Engine:
    engine = get_engine(url)
    import_package(engine, package)
    service.start_rater(engine, "demo", "r1")
    trial = service.next_trial(engine, "demo", "r1")
    service.record_vote(engine, "demo", "r1", trial.token, "A")
    return engine


def test_database_refuses_inconsistent_or_duplicate_votes(any_url: str, sample_package: Path) -> None:
    engine = _voted_study(any_url, sample_package)
    with read_session(engine) as session:
        vote = session.scalar(select(Vote))
        other = session.scalar(select(Assignment).where(Assignment.id != vote.assignment_id))
        columns = ("assignment_id", "rater_id", "item_id", "is_repeat", "chosen_method_id", "chosen_side",
                   "response_ms", "created_at")
        fields = {c: getattr(vote, c) for c in columns}
        other_fields = {"assignment_id": other.id, "item_id": other.item_id, "is_repeat": other.is_repeat}
    bad_rows = [
        fields,  # the same vote again
        {**fields, "assignment_id": other_fields["assignment_id"]},  # assignment of another item
        {**fields, **other_fields, "chosen_side": "up"},
        {**fields, **other_fields, "chosen_side": "none"},  # "none" with a method
        {**fields, **other_fields, "response_ms": -5},
    ]
    for row in bad_rows:
        with pytest.raises(IntegrityError):
            with write_session(engine) as session:
                session.add(Vote(**row))
    assert vote_count(engine, "demo") == 1


def test_database_refuses_deleting_a_study_with_votes(any_url: str, sample_package: Path) -> None:
    engine = _voted_study(any_url, sample_package)
    with pytest.raises(IntegrityError):
        with write_session(engine) as session:
            session.execute(text("DELETE FROM studies"))
    assert vote_count(engine, "demo") == 1
