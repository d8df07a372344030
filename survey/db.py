"""Database engines for the survey: one URL picks SQLite (default) or PostgreSQL.

SQLite is set up for many concurrent raters on one machine: WAL (readers never block the writer), a
busy timeout (writers queue instead of failing), foreign keys on, ``synchronous=NORMAL`` (an
acknowledged vote survives any crash of the app; ``SURVEY_SQLITE_SYNCHRONOUS=FULL`` for power cuts
too), and ``BEGIN IMMEDIATE`` so a read-then-write transaction takes the
write lock *before* it reads. Without that, two transactions can both read, then both try to upgrade
to a write lock, and one gets "database is locked" at once (the busy timeout cannot help a deadlock).
pysqlite's own transaction handling is switched off so we can emit our own BEGIN (the recipe from the
SQLAlchemy SQLite dialect docs). Read-only work uses :func:`read_session` (plain deferred BEGIN).

PostgreSQL (``postgresql+psycopg://...``) needs nothing special: its row locks and unique
constraints give the same guarantees; the service layer retries the rare unique-key race.

:func:`get_engine` also upgrades the schema to the newest Alembic revision, so every entry point
(app, CLI, tests) sees the same schema and a study in progress survives an upgrade.
"""
from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session

DEFAULT_URL = "sqlite:///data/survey.db"
URL_ENV = "SURVEY_DB_URL"
SQLITE_BUSY_TIMEOUT_MS = 10_000
# The longest a write waits for its turn (this process's gate, another process's flock, PostgreSQL row
# locks) before giving up with DatabaseBusy. Short enough that SIGTERM ends the app within 10 s.
WRITER_WAIT_S = 5.0
# The longest a request waits for a pooled connection (SQLAlchemy's default is 30 s).
POOL_TIMEOUT_S = 5.0
MIGRATION_WAIT_S = 60  # a schema upgrade may take a while; others starting at once wait this long for it
SYNCHRONOUS_ENV = "SURVEY_SQLITE_SYNCHRONOUS"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any fixed 64-bit number: serialises concurrent schema upgrades on one PostgreSQL database.
PG_MIGRATION_LOCK = 0x76696263616D

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


class DatabaseBusy(TimeoutError):
    """The database did not give this process its turn to write in time; nothing was written.

    Raised instead of waiting forever: a rater's click must end (with a notice) rather than park a
    thread that nothing can stop (see docs/survey.md, "Under load")."""


class _WriterGate:
    """Queues this machine's SQLite writers on an OS lock before they ask SQLite for its write lock.

    SQLite itself makes a blocked writer poll with growing sleeps (1, 2, 5, ... 100 ms), so under
    contention a vote can wait hundreds of milliseconds for a lock that was free after one. Here
    writers block on a thread lock (same process) and ``flock`` on ``<db>-writer.lock`` (other
    processes), which wake the next writer as soon as the lock is released. Correctness never
    depends on this gate: BEGIN IMMEDIATE and the busy timeout still serialise anyone who bypasses it.

    Every wait here has a deadline (:data:`WRITER_WAIT_S`) and ends in :class:`DatabaseBusy`: a
    Streamlit script thread blocked in a lock cannot be stopped, and with fast reruns every
    impatient click used to add one more such thread (issue 9).
    """

    def __init__(self, database: str) -> None:
        self.path = f"{database}-writer.lock"
        self.lock = threading.RLock()
        self.depth = 0
        self.fd: int | None = None
        self.pid = -1

    def _flock(self, deadline: float) -> None:
        """``flock(LOCK_EX)`` until ``deadline``: non-blocking tries with short sleeps (flock itself
        has no timeout)."""
        pause = 0.0005
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise DatabaseBusy(f"another process held {self.path} for over {WRITER_WAIT_S:.0f} s") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.01)

    def acquire(self, timeout: float | None = None) -> None:
        """Takes the thread lock, then (outermost holder only) the flock; DatabaseBusy after
        ``timeout`` (default :data:`WRITER_WAIT_S`) with nothing held."""
        timeout = WRITER_WAIT_S if timeout is None else timeout
        deadline = time.monotonic() + timeout
        if not self.lock.acquire(timeout=timeout):
            raise DatabaseBusy(f"no turn to write within {timeout:.1f} s")
        try:
            if self.fd is None or self.pid != os.getpid():  # (re)open per process: flock is per open file
                self.fd, self.pid = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
            if self.depth == 0:
                self._flock(deadline)
        except BaseException:
            self.lock.release()
            raise
        self.depth += 1

    def release(self) -> None:
        """Undoes one :meth:`acquire`; the outermost one also lets other processes in."""
        try:
            self.depth -= 1
            if self.depth == 0:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            self.lock.release()

    @contextmanager
    def hold(self, timeout: float | None = None) -> Iterator[None]:
        # acquire/release are plain methods (not this generator) so mutation testing reaches them
        self.acquire(timeout)
        try:
            yield
        finally:
            self.release()


_gates: dict[str, _WriterGate] = {}
_gates_lock = threading.Lock()


def _gate(engine: Engine) -> _WriterGate | None:
    """The writer gate of ``engine``'s SQLite file, shared by every engine on that file (None for
    PostgreSQL, which has row locks)."""
    if engine.dialect.name != "sqlite":
        return None
    database = str(Path(engine.url.database).resolve())
    with _gates_lock:
        return _gates.setdefault(database, _WriterGate(database))


@contextmanager
def _writer_turn(engine: Engine, timeout: float | None = None) -> Iterator[None]:
    """Waits for this machine's turn to write (SQLite only; PostgreSQL has row locks)."""
    gate = _gate(engine)
    if gate is None:
        yield
        return
    with gate.hold(timeout):
        yield


class DatabaseError(RuntimeError):
    """A database URL that cannot be used (unsupported driver, folder not creatable, ...)."""


def database_url(url: str | None = None) -> str:
    """``url``, else ``$SURVEY_DB_URL``, else the default SQLite file ``data/survey.db``."""
    return url or os.environ.get(URL_ENV) or DEFAULT_URL


def sqlite_synchronous() -> str:
    """NORMAL (default) or FULL, from ``$SURVEY_SQLITE_SYNCHRONOUS``.

    With WAL, NORMAL keeps every committed vote through any crash of the app (SIGKILL included) and
    never corrupts the file; only a crash of the whole machine (power cut, kernel panic) can undo the
    last commits. It avoids an fsync per vote, which on a busy disk stalls every rater queued behind
    the write lock (see docs/benchmarks.md). FULL also survives power cuts, at that cost."""
    value = os.environ.get(SYNCHRONOUS_ENV, "NORMAL").upper()
    if value not in {"FULL", "NORMAL"}:
        raise DatabaseError(f"{SYNCHRONOUS_ENV}={value!r}: use FULL or NORMAL")
    return value


def _configure_sqlite(engine: Engine) -> None:
    durable = sqlite_synchronous()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, record) -> None:  # noqa: ANN001 (DB-API objects)
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {durable}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()
        record.info["synchronous"] = durable

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # noqa: ANN001
        options = connection.get_execution_options()
        mode = options.get("sqlite_begin", "IMMEDIATE")
        if mode not in {"DEFERRED", "IMMEDIATE", "EXCLUSIVE"}:
            raise ValueError(f"bad sqlite_begin execution option {mode!r}")
        # Per transaction: "NORMAL" skips the fsync at commit for writes that may be lost in a power
        # cut (display times). WAL is sequential, so the next durable commit syncs them as well.
        synchronous = "NORMAL" if options.get("sqlite_durable", True) is False else durable
        info = connection.connection.info
        if info.get("synchronous") != synchronous:
            connection.exec_driver_sql(f"PRAGMA synchronous = {synchronous}")
            info["synchronous"] = synchronous
        connection.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str | None = None) -> Engine:
    """A new engine for ``url`` (see :func:`database_url`) with the SQLite settings; no migration."""
    url = database_url(url)
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if not database or database == ":memory:" or parsed.query.get("mode") == "memory":
            raise DatabaseError(f"{url}: use a SQLite file (e.g. sqlite:///data/survey.db); "
                                "an in-memory database is not shared between the app's connections")
        folder = Path(database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"cannot create the folder {folder} for {url}: {exc}") from None
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                                  "check_same_thread": False},
                               pool_size=8, max_overflow=24, pool_timeout=POOL_TIMEOUT_S)
        _configure_sqlite(engine)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            raise DatabaseError(f"{parsed.drivername}: use postgresql+psycopg://... (psycopg 3)")
        # Server-side limits, so no statement on a rater's path waits without end: a row lock held too
        # long ends in an error (LockNotAvailable), as does a transaction left idle by a dead client.
        options = (f"-c lock_timeout={int(WRITER_WAIT_S * 1000)} "
                   "-c idle_in_transaction_session_timeout=60000")
        return create_engine(url, pool_pre_ping=True, pool_timeout=POOL_TIMEOUT_S,
                             connect_args={"connect_timeout": 10, "options": options})
    raise DatabaseError(f"unsupported database {parsed.drivername!r} in {url}; "
                        "use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB")


def _alembic_config(connection):  # noqa: ANN001, ANN202
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest Alembic revision shipped with this code."""
    from alembic.script import ScriptDirectory

    config = _alembic_config(None)
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: empty database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect().execution_options(sqlite_begin="DEFERRED") as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrates the schema to ``revision``; safe when several processes do it at once."""
    from alembic import command

    with _writer_turn(engine, MIGRATION_WAIT_S), engine.begin() as connection:  # SQLite: BEGIN IMMEDIATE
        if connection.dialect.name == "postgresql":
            # Replicas starting together queue here while one migrates: longer than a vote's lock wait.
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{MIGRATION_WAIT_S}s'")
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})")
        command.upgrade(_alembic_config(connection), revision)


def get_engine(url: str | None = None, *, migrate: bool = True) -> Engine:
    """The shared engine for ``url`` (one per URL and process), with the schema at head."""
    url = database_url(url)
    engine = _engines.get(url)  # the common case: no lock at all
    if engine is not None:
        return engine
    # The first requests after a start wait here while one of them migrates: with an end, too.
    if not _engines_lock.acquire(timeout=MIGRATION_WAIT_S + 10):
        raise DatabaseBusy(f"the database was still being prepared after {MIGRATION_WAIT_S + 10} s")
    try:
        engine = _engines.get(url)
        if engine is None:
            engine = make_engine(url)
            if migrate and current_revision(engine) != head_revision():
                upgrade(engine)
            _engines[url] = engine
        return engine
    finally:
        _engines_lock.release()


def dispose_engines() -> None:
    """Closes every cached engine (tests, and processes about to fork)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def write_connection(engine: Engine, *, durable: bool = True) -> Iterator[Connection]:
    """A Core connection in one read-then-write transaction (SQLite: BEGIN IMMEDIATE), committed on
    exit. The vote path uses this rather than a Session: less work while holding the write lock.
    ``durable=False`` (SQLite): commit without fsync, for data whose loss in a power cut is harmless."""
    with _writer_turn(engine), engine.connect() as connection:
        if not durable:
            connection.execution_options(sqlite_durable=False)
        with connection.begin():
            yield connection


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A Core connection in a read-only transaction (SQLite: deferred BEGIN)."""
    with engine.connect() as connection:
        connection.execution_options(sqlite_begin="DEFERRED")
        with connection.begin():
            yield connection


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session in one read-then-write transaction (SQLite: BEGIN IMMEDIATE), committed on exit."""
    with _writer_turn(engine), Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A read-only session (SQLite: deferred BEGIN, runs beside a writer under WAL)."""
    with Session(engine, execution_options={"sqlite_begin": "DEFERRED"}) as session:
        yield session  # closing the session ends (rolls back) its read transaction


def is_busy(exc: BaseException) -> bool:
    """True when ``exc`` means "the database was too busy, nothing was written, try again": our own
    :class:`DatabaseBusy`, a full connection pool, SQLite's "database is locked" after its busy
    timeout, PostgreSQL's ``lock_timeout`` (LockNotAvailable)."""
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, (DatabaseBusy, PoolTimeout)):
        return True
    if isinstance(exc, OperationalError):
        original = exc.orig
        if getattr(original, "sqlstate", None) == "55P03":  # lock_not_available
            return True
        return "database is locked" in str(original)
    return False
