"""Engines, migrations and the constraints the database itself enforces."""
from __future__ import annotations

import fcntl
import os
import re
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError

from survey import db, service
from survey.db import (
    DEFAULT_URL, DatabaseBusy, DatabaseError, current_revision, database_url, dispose_engines, get_engine,
    head_revision, is_busy, make_engine, read_session, write_connection, write_session,
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


IN_MEMORY = re.escape("; an in-memory database is not shared between the app's connections") + "$"


@pytest.mark.parametrize("url, words", [
    ("sqlite://", IN_MEMORY), ("sqlite:///:memory:", IN_MEMORY),
    ("sqlite:///file:votes?mode=memory&cache=shared&uri=true", IN_MEMORY),
    ("mysql://u@h/db", r"^unsupported database 'mysql' in mysql://u@h/db; "
                       + re.escape("use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB") + "$"),
    ("postgresql+psycopg2://u@h/db", "psycopg 3")])
def test_unusable_urls_are_explained(url: str, words: str) -> None:
    with pytest.raises(DatabaseError, match=words):
        make_engine(url)


def test_database_folders_are_created_or_the_failure_named(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c" / "survey.db"
    engine = make_engine(f"sqlite:///{deep}")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        assert deep.is_file()
    finally:
        engine.dispose()
    (tmp_path / "plain-file").write_text("not a folder")
    url = f"sqlite:///{tmp_path / 'plain-file' / 'sub' / 'survey.db'}"
    with pytest.raises(DatabaseError, match=f"^cannot create the folder {re.escape(str(tmp_path / 'plain-file'))}"
                                            f"/sub for {re.escape(url)}: "):
        make_engine(url)


def test_postgresql_engines_ask_the_server_for_bounded_waits() -> None:
    """What the PostgreSQL engine sends to psycopg when it connects (no server needed: the connection
    attempt is stopped right there). The waits themselves are tested on a real server in
    tests/survey/test_clicks.py."""
    from sqlalchemy import event

    class Stop(Exception):
        pass

    engine = make_engine("postgresql+psycopg://rater@127.0.0.1:9/survey")
    sent: dict = {}

    @event.listens_for(engine, "do_connect")
    def _capture(dialect, record, cargs, cparams) -> None:  # noqa: ANN001
        sent.update(cparams)
        raise Stop

    with pytest.raises(Stop):
        engine.connect()
    assert sent["connect_timeout"] == 10
    assert sent["options"] == "-c lock_timeout=5000 -c idle_in_transaction_session_timeout=60000"
    assert (sent["host"], sent["port"], sent["user"], sent["dbname"]) == ("127.0.0.1", 9, "rater", "survey")
    assert engine.pool.timeout() == db.POOL_TIMEOUT_S
    engine.dispose()


def test_concurrent_first_requests_share_one_engine(sqlite_url: str) -> None:
    """Requests arriving together at a fresh process: one migrates, the others wait and get its engine."""
    barrier, engines = threading.Barrier(6), []

    def first_request() -> None:
        barrier.wait(10)
        engines.append(get_engine(sqlite_url))

    threads = [threading.Thread(target=first_request) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(engines) == 6 and len({id(engine) for engine in engines}) == 1
    assert current_revision(engines[0]) == head_revision()


def test_migrate_false_leaves_the_schema_alone(sqlite_url: str) -> None:
    engine = get_engine(sqlite_url, migrate=False)
    assert current_revision(engine) is None and inspect(engine).get_table_names() == []


def test_waiting_for_another_request_s_migration_has_an_end(sqlite_url: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch, db._engines_lock:  # another request is preparing the database
        patch.setattr(db, "MIGRATION_WAIT_S", -9.5)  # the wait is MIGRATION_WAIT_S + 10 s: here 0.5 s
        with pytest.raises(DatabaseBusy, match=r"^the database was still being prepared after 0\.5 s$"):
            get_engine(sqlite_url)
    assert current_revision(get_engine(sqlite_url)) == head_revision()


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


def _writer_lock_file(engine: Engine) -> str:
    """The lock file every process writing this SQLite database queues on (docs/survey.md)."""
    return f"{Path(engine.url.database).resolve()}-writer.lock"


def test_a_vote_gives_up_with_database_busy_while_another_process_writes(
        sqlite_url: str, sample_package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process holding the writer lock: the vote ends in DatabaseBusy within the wait limit,
    records nothing, and goes through once the lock is free."""
    engine = get_engine(sqlite_url)
    import_package(engine, sample_package)
    service.start_rater(engine, "demo", "r1")
    trial = service.next_trial(engine, "demo", "r1")
    monkeypatch.setattr(db, "WRITER_WAIT_S", 0.3)
    other = os.open(_writer_lock_file(engine), os.O_RDWR | os.O_CREAT, 0o600)  # a second open file
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        with pytest.raises(DatabaseBusy, match=f"another process held {re.escape(_writer_lock_file(engine))}"):
            service.record_vote(engine, "demo", "r1", trial.token, "A")
        assert vote_count(engine, "demo") == 0
    finally:
        fcntl.flock(other, fcntl.LOCK_UN)
    try:
        assert service.record_vote(engine, "demo", "r1", trial.token, "A").recorded
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the vote let go of the lock: free at once
        fcntl.flock(other, fcntl.LOCK_UN)
    finally:
        os.close(other)
    assert vote_count(engine, "demo") == 1
    assert os.stat(_writer_lock_file(engine)).st_mode & 0o077 == 0  # only the app's user may lock it


def test_a_short_write_by_another_process_is_waited_for(sqlite_url: str, sample_package: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    engine = get_engine(sqlite_url)
    monkeypatch.setattr(db, "WRITER_WAIT_S", 30.0)  # generous: the machine may be busy
    import_package(engine, sample_package)
    service.start_rater(engine, "demo", "r1")
    trial = service.next_trial(engine, "demo", "r1")
    other = os.open(_writer_lock_file(engine), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(other, fcntl.LOCK_EX)
    timer = threading.Timer(0.2, fcntl.flock, (other, fcntl.LOCK_UN))  # its write ends after 0.2 s
    timer.start()
    try:
        assert service.record_vote(engine, "demo", "r1", trial.token, "A").recorded  # it waited
    finally:
        timer.join(10)
        os.close(other)
    assert vote_count(engine, "demo") == 1


def test_nested_writer_turns_keep_the_lock_until_the_outermost_ends(sqlite_url: str) -> None:
    """The gate is re-entrant in one thread; other processes stay out until the outermost turn ends,
    and the lock file is opened once per process, not once per write."""
    engine = get_engine(sqlite_url)
    with write_connection(engine):
        pass
    open_files = len(os.listdir("/proc/self/fd"))
    other = os.open(_writer_lock_file(engine), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        with db._writer_turn(engine):
            with db._writer_turn(engine):
                with pytest.raises(BlockingIOError):
                    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            with pytest.raises(BlockingIOError):  # the inner turn ended; the outer still holds the lock
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free once the outermost turn ended
        fcntl.flock(other, fcntl.LOCK_UN)
    finally:
        os.close(other)
    for _ in range(20):
        with write_connection(engine):
            pass
    assert len(os.listdir("/proc/self/fd")) == open_files


def test_a_forked_process_queues_on_its_own_lock(sqlite_url: str) -> None:
    """flock belongs to an open file, which fork shares: a child process must open the lock file again,
    or the parent and child would both "hold" it at once."""
    engine = get_engine(sqlite_url)
    gate = db._gate(engine)
    with gate.hold():  # the parent has opened the lock file
        pass
    holding_r, holding_w = os.pipe()
    done_r, done_w = os.pipe()
    child = os.fork()
    if child == 0:  # the child: hold the gate until the parent has tried
        code = 1
        try:
            os.close(holding_r)
            os.close(done_w)
            with gate.hold(timeout=30):
                os.write(holding_w, b"1")
                os.read(done_r, 1)
            code = 0
        finally:
            os._exit(code)
    os.close(holding_w)  # so that a child that died reads as end of file here, not a hang
    os.close(done_r)
    try:
        assert os.read(holding_r, 1) == b"1"
        with pytest.raises(DatabaseBusy, match="another process held"):
            with gate.hold(timeout=0.3):
                pass
    finally:
        os.write(done_w, b"1")
        _, status = os.waitpid(child, 0)
        os.close(holding_r)
        os.close(done_w)
    assert os.waitstatus_to_exitcode(status) == 0
    with gate.hold(timeout=0.3):  # the child is gone: free again
        pass


def test_two_databases_do_not_queue_on_each_other(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_engine(f"sqlite:///{tmp_path / 'a' / 'survey.db'}")
    second = get_engine(f"sqlite:///{tmp_path / 'b' / 'survey.db'}")
    try:
        monkeypatch.setattr(db, "WRITER_WAIT_S", 0.2)
        holding, release = threading.Event(), threading.Event()

        def write_first() -> None:
            with write_connection(first):
                holding.set()
                release.wait(10)

        writer = threading.Thread(target=write_first)
        writer.start()
        holding.wait(10)
        try:
            with write_connection(second):  # another file: no wait for the first database's writer
                pass
            with pytest.raises(DatabaseBusy):  # the same file: queues, and gives up after 0.2 s
                with write_connection(first):
                    pass
        finally:
            release.set()
            writer.join(10)
    finally:
        dispose_engines()


def test_a_schema_upgrade_waits_for_a_write_longer_than_a_vote_would(
        sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replicas starting while raters vote: the upgrade queues behind the write (MIGRATION_WAIT_S)
    where a vote would give up after WRITER_WAIT_S."""
    from survey.db import upgrade

    engine = get_engine(sqlite_url)
    monkeypatch.setattr(db, "WRITER_WAIT_S", 0.1)
    holding, release = threading.Event(), threading.Event()

    def write() -> None:
        with write_connection(engine):
            holding.set()
            release.wait(10)

    writer = threading.Thread(target=write)
    writer.start()
    holding.wait(10)
    timer = threading.Timer(0.5, release.set)  # the write ends after 0.5 s, during the upgrade's wait
    try:
        with pytest.raises(DatabaseBusy, match=r"^no turn to write within 0\.1 s$"):  # a vote gives up
            with write_connection(engine):
                pass
        timer.start()
        upgrade(engine)
    finally:
        timer.cancel()
        release.set()
        writer.join(10)
    assert current_revision(engine) == head_revision()


def test_busy_errors_are_recognised_and_others_are_not(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """is_busy decides between "try again" (a notice to the rater) and a real error."""
    from psycopg.errors import LockNotAvailable, UniqueViolation
    from sqlalchemy import create_engine
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    engine = get_engine(sqlite_url)
    assert is_busy(DatabaseBusy("no turn to write within 5.0 s"))
    # SQLite's own "database is locked", from a connection that does not wait at all
    holder = sqlite3.connect(engine.url.database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    impatient = create_engine(sqlite_url, connect_args={"timeout": 0})
    try:
        with pytest.raises(OperationalError) as locked, impatient.connect() as connection:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        impatient.dispose()
    assert is_busy(locked.value)
    # every pooled connection in use: the next request waits POOL_TIMEOUT_S, then is told to try again
    monkeypatch.setattr(db, "POOL_TIMEOUT_S", 0.2)
    small = make_engine(f"sqlite:///{Path(engine.url.database).parent / 'pool.db'}")
    assert small.pool.timeout() == db.POOL_TIMEOUT_S
    held = [small.connect() for _ in range(32)]  # pool_size 8 + max_overflow 24
    try:
        with pytest.raises(PoolTimeout) as exhausted:
            small.connect()
    finally:
        for connection in held:
            connection.close()
        small.dispose()
    assert is_busy(exhausted.value)
    # PostgreSQL's lock_timeout (SQLSTATE 55P03) is busy; a unique violation (23505) is not
    assert is_busy(OperationalError("SELECT ... FOR UPDATE", {}, LockNotAvailable("lock timeout")))
    assert not is_busy(OperationalError("INSERT ...", {}, UniqueViolation("duplicate key")))
    with pytest.raises(OperationalError) as broken, engine.connect() as connection:
        connection.exec_driver_sql("SELECT * FROM no_such_table")
    assert not is_busy(broken.value)
    assert not is_busy(IntegrityError("INSERT ...", {}, Exception("database is locked")))  # wrong kind
    assert not is_busy(TimeoutError("some other timeout")) and not is_busy(ValueError("database is locked"))


def test_next_trial_stamps_the_display_without_fsync_the_vote_with_it(
        sqlite_url: str, sample_package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With SURVEY_SQLITE_SYNCHRONOUS=FULL only the vote pays for an fsync: the display time written by
    next_trial commits under NORMAL (a power cut may lose it; the vote's commit syncs it too)."""
    from sqlalchemy import event

    monkeypatch.setenv("SURVEY_SQLITE_SYNCHRONOUS", "FULL")
    engine = get_engine(sqlite_url)
    import_package(engine, sample_package)
    service.start_rater(engine, "demo", "r1")
    seen: list[tuple[str, int]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _record(connection, cursor, statement, *args) -> None:  # noqa: ANN001
        if statement.lstrip().upper().startswith(("UPDATE ASSIGNMENTS", "INSERT INTO VOTES")):
            mode = connection.connection.dbapi_connection.execute("PRAGMA synchronous").fetchone()[0]
            seen.append((statement.split()[0].upper(), mode))

    trial = service.next_trial(engine, "demo", "r1")
    service.record_vote(engine, "demo", "r1", trial.token, "A")
    assert seen == [("UPDATE", 1), ("INSERT", 2)]  # 1 = NORMAL, 2 = FULL


@pytest.mark.postgres
def test_postgresql_connections_dropped_by_the_server_are_replaced(pg_url: str) -> None:
    """A server restart or an idle-connection kill leaves dead connections in the pool; the engine
    checks each one before use (pre-ping), so the next rater request does not fail."""
    engine = get_engine(pg_url)
    with engine.connect() as connection:
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    admin = make_engine(pg_url)
    try:
        with admin.connect() as connection:  # the server ends the pooled connection's backend
            assert connection.execute(text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid}).scalar()
    finally:
        admin.dispose()
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT pg_backend_pid()").scalar() != pid
