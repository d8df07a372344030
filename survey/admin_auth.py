"""Admin sign-in that withstands guessing: lockouts, the sign-in log, and the start-up password rules.

The survey link is public, so anyone can reach ``/admin``. Three defences, all plain functions here
(the Streamlit page only calls them):

* **Lockout.** After :data:`MAX_FAILURES` wrong passwords from one client address (all sessions
  without a known address share one count), sign-in is refused for :data:`FIRST_LOCKOUT_S`,
  doubling with each further failure up to :data:`MAX_LOCKOUT_S`. A second count over *all*
  addresses locks everyone out after :data:`GLOBAL_MAX_FAILURES`, so rotating addresses does not
  help either. A success resets the count of its address, and the global one; an operator can
  clear every lockout with ``python -m survey.study unlock-admin`` (:func:`unlock`).
* **State in the database.** The counts are derived from the sign-in log (:class:`AdminSignIn`), so
  a restart forgets nothing and replicas on one database share them. Each attempt checks, compares
  and records in one write transaction (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an advisory lock),
  so two replicas cannot both let a sixth guess through.
* **No weak passwords.** :func:`password_problem` refuses passwords under :data:`MIN_PASSWORD_CHARS`
  characters and the demo's published password outside the demo (:func:`is_demo`).

Time is the database server's on PostgreSQL (replicas on several machines agree on it) and this
machine's on SQLite (one file, one machine). A clock that jumps back never lengthens a lockout
beyond its period. Tests pass their own ``clock``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, func, select

from survey import ui_logic
from survey.db import read_connection, write_connection
from survey.schema import CLIENT_ADDRESS_MAX, AdminSignIn, utcnow

MAX_FAILURES = 5  # wrong passwords per client address before the first lockout
GLOBAL_MAX_FAILURES = 20  # wrong passwords over all addresses before everyone is locked out
FIRST_LOCKOUT_S = 60.0
MAX_LOCKOUT_S = 3600.0
MIN_PASSWORD_CHARS = 12
RECENT_SIGN_INS = 20  # how many the admin page lists

DEMO_PASSWORD = "demo-admin"  # printed by `make demo`, so public: only ever accepted by the demo
DEMO_ENV = "SURVEY_DEMO"  # scripts/demo.py sets it to 1 and binds the server to 127.0.0.1
LOCAL_ADDRESSES = frozenset({"127.0.0.1", "localhost", "::1"})
# Any fixed 64-bit number (not the migration lock): serialises sign-in attempts on one PostgreSQL database.
PG_SIGN_IN_LOCK = 0x76696263616E

GOOD_PASSWORD_HINT = (
    "Set SURVEY_ADMIN_PASSWORD (or admin_password in .streamlit/secrets.toml) to a password of at least "
    f"{MIN_PASSWORD_CHARS} characters, for example the output of "
    "`python -c 'import secrets; print(secrets.token_urlsafe(18))'`, and restart the app.")

Clock = Callable[[Connection], datetime]


class WeakPassword(ValueError):
    """The configured admin password is refused; the message says why and how to set a good one."""


@dataclass(frozen=True)
class SignInResult:
    """What one attempt did. ``retry_after_s`` > 0: sign-in is locked for that long from now."""

    outcome: str  # "success", "failure" or "locked" (refused without looking at the password)
    retry_after_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome == "success"


@dataclass(frozen=True)
class SignInRecord:
    """One line of the sign-in log, as the admin page shows it."""

    at: datetime
    client_address: str | None
    outcome: str


# ------------------------------------------------------------------------------ configuration rules
def is_demo(env: Mapping[str, str], server_address: str | None) -> bool:
    """True only for `make demo`: ``SURVEY_DEMO=1`` *and* a server that listens on localhost only.

    Both are needed: the flag alone (copied into a deployment by mistake) must not make the
    published demo password valid on a reachable server.
    """
    return env.get(DEMO_ENV, "").strip() == "1" and (server_address or "").strip() in LOCAL_ADDRESSES


def password_problem(password: str | None, *, demo: bool) -> str | None:
    """Why the configured admin password is refused, or None when it is fine (or not set at all).

    No password means no admin page, which is safe. The demo's own password is accepted only in the
    demo (:func:`is_demo`), where it is the one password exempt from the length rule.
    """
    if password is None:
        return None
    if password == DEMO_PASSWORD:
        if demo:
            return None
        return (f"The admin password is the demo's published password ({DEMO_PASSWORD!r}); it only works "
                f"for `make demo` ({DEMO_ENV}=1, server on 127.0.0.1). {GOOD_PASSWORD_HINT}")
    if len(password) < MIN_PASSWORD_CHARS:
        return (f"The admin password is too short ({len(password)} characters, at least "
                f"{MIN_PASSWORD_CHARS} needed). {GOOD_PASSWORD_HINT}")
    return None


def check_password(password: str | None, *, demo: bool) -> None:
    """Raises :class:`WeakPassword` when :func:`password_problem` finds one."""
    problem = password_problem(password, demo=demo)
    if problem is not None:
        raise WeakPassword(problem)


def client_address(raw: object) -> str | None:
    """The client address to count failures under, or None when unknown (localhost, tests, proxies
    that hide it). Anything that is not a non-empty string counts as unknown; overlong values are
    cut to the column's width."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    return raw.strip()[:CLIENT_ADDRESS_MAX]


# ------------------------------------------------------------------------------------ lockout logic
def lockout_seconds(failures: int, threshold: int = MAX_FAILURES) -> float:
    """How long sign-in stays locked after the latest of ``failures`` consecutive wrong passwords:
    0 below ``threshold``, then 60 s, 120 s, 240 s, ... up to one hour."""
    if failures < threshold:
        return 0.0
    return min(FIRST_LOCKOUT_S * 2.0 ** min(failures - threshold, 32), MAX_LOCKOUT_S)


def remaining_lockout(failures: int, last_failure_at: datetime | None, now: datetime,
                      threshold: int = MAX_FAILURES) -> float:
    """Seconds of lockout left at ``now``. Capped at the full period, so a clock that jumped back
    (``now`` before the last failure) cannot lock anyone out for longer than the schedule says."""
    period = lockout_seconds(failures, threshold)
    if period == 0.0 or last_failure_at is None:
        return 0.0
    left = period - (now - last_failure_at).total_seconds()
    return min(max(left, 0.0), period)


def database_now(connection: Connection) -> datetime:
    """Server time: PostgreSQL's clock (shared by every replica), else this machine's (SQLite)."""
    if connection.dialect.name == "postgresql":
        return connection.execute(select(func.clock_timestamp())).scalar_one()
    return utcnow()


def _failures_since_success(connection: Connection, address: str | None, *, per_address: bool
                            ) -> tuple[int, datetime | None]:
    """(wrong passwords since the last success or reset, time of the latest) for one address or all."""
    table = AdminSignIn.__table__
    clears = table.c.outcome.in_(("success", "reset"))
    failures = select(func.count(), func.max(table.c.at)).where(table.c.outcome == "failure")
    if per_address:  # a success clears its own address; a reset clears every address
        same = table.c.client_address.is_(None) if address is None else table.c.client_address == address
        clears = (table.c.outcome == "reset") | ((table.c.outcome == "success") & same)
        failures = failures.where(same)
    last_success = select(func.coalesce(func.max(table.c.id), 0)).where(clears)
    count, latest = connection.execute(failures.where(table.c.id > last_success.scalar_subquery())).one()
    return int(count), latest  # max() keeps the column's type: an aware UTC datetime on every backend


def _lockout_left(connection: Connection, address: str | None, now: datetime) -> float:
    """The longer of the per-address and the global lockout still running at ``now``."""
    mine = _failures_since_success(connection, address, per_address=True)
    everyone = _failures_since_success(connection, address, per_address=False)
    return max(remaining_lockout(*mine, now, MAX_FAILURES),
               remaining_lockout(*everyone, now, GLOBAL_MAX_FAILURES))


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":  # SQLite: BEGIN IMMEDIATE already serialises writers
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_SIGN_IN_LOCK})")


def attempt_sign_in(engine: Engine, given: str | None, expected: str, address: str | None, *,
                    clock: Clock | None = None) -> SignInResult:
    """Checks one sign-in attempt and records it, in one transaction.

    During a lockout the password is not even compared (the right one is refused too), and the
    attempt is logged as ``locked``. A wrong password that reaches the limit returns the lockout it
    started in ``retry_after_s``.
    """
    clock = clock or database_now
    with write_connection(engine) as connection:
        _lock(connection)
        now = clock(connection)
        left = _lockout_left(connection, address, now)
        if left > 0:
            outcome = "locked"
        else:
            outcome = "success" if ui_logic.password_matches(given, expected) else "failure"
        connection.execute(AdminSignIn.__table__.insert().values(at=now, client_address=address,
                                                                 outcome=outcome))
        if outcome == "failure":
            left = _lockout_left(connection, address, now)
    return SignInResult(outcome, left)


def lockout_left(engine: Engine, address: str | None, *, clock: Clock | None = None) -> float:
    """Seconds until ``address`` may try again (0: it may now); read-only, for the sign-in form."""
    with read_connection(engine) as connection:
        return _lockout_left(connection, address, (clock or database_now)(connection))


def unlock(engine: Engine, *, clock: Clock | None = None) -> None:
    """Clears every lockout (the operator's way back in after an attack); logged as ``reset``."""
    with write_connection(engine) as connection:
        _lock(connection)
        connection.execute(AdminSignIn.__table__.insert().values(at=(clock or database_now)(connection),
                                                                 client_address=None, outcome="reset"))


def recent_sign_ins(engine: Engine, limit: int = RECENT_SIGN_INS) -> list[SignInRecord]:
    """The latest sign-in attempts, newest first."""
    table = AdminSignIn.__table__
    query = (select(table.c.at, table.c.client_address, table.c.outcome)
             .order_by(table.c.id.desc()).limit(limit))
    with read_connection(engine) as connection:
        return [SignInRecord(*row) for row in connection.execute(query)]


def wait_text(seconds: float) -> str:
    """"45 s", "2 min", "1 h" for a lockout message (rounded up: never promise too early)."""
    whole = max(int(-(-seconds // 1)), 1)
    if whole < 60:
        return f"{whole} s"
    minutes = -(-whole // 60)
    return f"{minutes} min" if minutes < 60 else f"{-(-minutes // 60)} h"
