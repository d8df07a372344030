"""Admin sign-in against guessing (survey.admin_auth): the lockout schedule, per-address and global
counts, state that survives restarts and is shared by replicas, atomic attempts, password rules."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, inspect, select, text

from survey import admin_auth
from survey.admin_auth import (
    FIRST_LOCKOUT_S, GLOBAL_MAX_FAILURES, MAX_FAILURES, MAX_LOCKOUT_S, MIN_PASSWORD_CHARS, attempt_sign_in,
)
from survey.db import current_revision, dispose_engines, get_engine, head_revision, make_engine, upgrade
from survey.schema import AdminSignIn

RIGHT = "the-right-admin-password"
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


class FakeClock:
    """An injected clock: time moves only when the test says so (no sleeping)."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self, connection: Connection) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def guess(engine: Engine, address: str | None, clock: FakeClock,
          password: str = "wrong guess") -> admin_auth.SignInResult:
    return attempt_sign_in(engine, password, RIGHT, address, clock=clock)


# ------------------------------------------------------------------------------- pure rules
def test_lockout_schedule_grows_and_is_capped() -> None:
    assert [admin_auth.lockout_seconds(n) for n in range(MAX_FAILURES)] == [0.0] * MAX_FAILURES
    periods = [admin_auth.lockout_seconds(n) for n in range(MAX_FAILURES, MAX_FAILURES + 8)]
    assert periods[:4] == [FIRST_LOCKOUT_S, 2 * FIRST_LOCKOUT_S, 4 * FIRST_LOCKOUT_S, 8 * FIRST_LOCKOUT_S]
    assert all(b >= a for a, b in zip(periods, periods[1:])) and periods[-1] == MAX_LOCKOUT_S
    assert admin_auth.lockout_seconds(10_000) == MAX_LOCKOUT_S  # no overflow
    assert admin_auth.lockout_seconds(GLOBAL_MAX_FAILURES - 1, GLOBAL_MAX_FAILURES) == 0.0
    assert admin_auth.lockout_seconds(GLOBAL_MAX_FAILURES, GLOBAL_MAX_FAILURES) == FIRST_LOCKOUT_S


def test_remaining_lockout_is_safe_against_clock_jumps() -> None:
    n = MAX_FAILURES
    assert admin_auth.remaining_lockout(n, T0, T0 + timedelta(seconds=20)) == FIRST_LOCKOUT_S - 20
    assert admin_auth.remaining_lockout(n, T0, T0 + timedelta(seconds=FIRST_LOCKOUT_S)) == 0.0
    # the clock jumped back a day: still locked, but never for longer than the period
    assert admin_auth.remaining_lockout(n, T0, T0 - timedelta(days=1)) == FIRST_LOCKOUT_S
    assert admin_auth.remaining_lockout(n - 1, T0, T0) == 0.0
    assert admin_auth.remaining_lockout(n, None, T0) == 0.0


@pytest.mark.parametrize("password, demo, words", [
    ("short", False, "too short (5 characters"),
    ("x" * (MIN_PASSWORD_CHARS - 1), True, "too short"),
    (admin_auth.DEMO_PASSWORD, False, "demo's published password"),
])
def test_weak_passwords_are_refused_with_the_fix(password: str, demo: bool, words: str) -> None:
    problem = admin_auth.password_problem(password, demo=demo)
    assert problem is not None and words in problem
    assert "SURVEY_ADMIN_PASSWORD" in problem and "secrets.token_urlsafe" in problem
    with pytest.raises(admin_auth.WeakPassword, match="at least 12 characters"):
        admin_auth.check_password(password, demo=demo)


def test_good_passwords_and_the_demo_password_in_the_demo_pass() -> None:
    assert admin_auth.password_problem("x" * MIN_PASSWORD_CHARS, demo=False) is None
    assert admin_auth.password_problem("adm1n ✓ pass", demo=False) is None  # 12 characters, not bytes
    assert admin_auth.password_problem(admin_auth.DEMO_PASSWORD, demo=True) is None
    assert admin_auth.password_problem(None, demo=False) is None  # no password: admin disabled, safe


def test_demo_needs_the_flag_and_localhost() -> None:
    flag = {admin_auth.DEMO_ENV: "1"}
    assert admin_auth.is_demo(flag, "127.0.0.1") and admin_auth.is_demo(flag, "localhost")
    assert admin_auth.is_demo(flag, "::1")
    assert not admin_auth.is_demo(flag, None)  # Streamlit's default: every interface
    assert not admin_auth.is_demo(flag, "0.0.0.0") and not admin_auth.is_demo(flag, "10.0.0.5")
    assert not admin_auth.is_demo({}, "127.0.0.1")
    assert not admin_auth.is_demo({admin_auth.DEMO_ENV: "0"}, "127.0.0.1")


def test_client_address_normalisation() -> None:
    assert admin_auth.client_address("203.0.113.7") == "203.0.113.7"
    assert admin_auth.client_address(" 2001:db8::1 ") == "2001:db8::1"
    assert admin_auth.client_address(None) is None and admin_auth.client_address("") is None
    assert admin_auth.client_address(object()) is None  # e.g. AppTest's mock context
    assert len(admin_auth.client_address("f" * 500)) == 64


def test_wait_text_rounds_up() -> None:
    assert [admin_auth.wait_text(s) for s in (0.2, 45, 59.1, 60, 61, 3540, 3599, 3601)] == \
        ["1 s", "45 s", "1 min", "1 min", "2 min", "59 min", "1 h", "2 h"]


# -------------------------------------------------------------------------- against a database
def test_sixth_attempt_is_locked_and_the_right_password_waits(any_url: str) -> None:
    engine, clock = get_engine(any_url), FakeClock()
    results = [guess(engine, "198.51.100.1", clock) for _ in range(MAX_FAILURES)]
    assert [r.outcome for r in results] == ["failure"] * MAX_FAILURES
    assert [r.retry_after_s for r in results] == [0.0] * (MAX_FAILURES - 1) + [FIRST_LOCKOUT_S]

    clock.advance(10)
    sixth = guess(engine, "198.51.100.1", clock, password=RIGHT)  # even the right password
    assert sixth.outcome == "locked" and sixth.retry_after_s == FIRST_LOCKOUT_S - 10
    clock.advance(FIRST_LOCKOUT_S - 10 - 1)
    assert guess(engine, "198.51.100.1", clock, password=RIGHT).outcome == "locked"  # 1 s early
    clock.advance(1)
    assert guess(engine, "198.51.100.1", clock, password=RIGHT).ok  # waited it out

    log = admin_auth.recent_sign_ins(engine)
    assert [r.outcome for r in log] == ["success", "locked", "locked"] + ["failure"] * MAX_FAILURES
    assert {r.client_address for r in log} == {"198.51.100.1"}
    assert log[0].at == clock.now and log[-1].at == T0 and log[0].at.tzinfo is not None
    assert len(admin_auth.recent_sign_ins(engine, limit=3)) == 3


def test_lockout_grows_with_each_further_failure(sqlite_url: str) -> None:
    engine, clock = get_engine(sqlite_url), FakeClock()
    for _ in range(MAX_FAILURES):
        guess(engine, None, clock)
    periods = []
    for _ in range(3):  # wait out each lockout, then guess wrong once more
        clock.advance(admin_auth.lockout_left(engine, None, clock=clock))
        result = guess(engine, None, clock)
        assert result.outcome == "failure"
        periods.append(result.retry_after_s)
    assert periods == [2 * FIRST_LOCKOUT_S, 4 * FIRST_LOCKOUT_S, 8 * FIRST_LOCKOUT_S]
    clock.advance(periods[-1])
    assert guess(engine, None, clock, password=RIGHT).ok
    assert guess(engine, None, clock).retry_after_s == 0.0  # a success starts the count afresh


def test_counts_per_address_and_unknown_addresses_share_one(sqlite_url: str) -> None:
    engine, clock = get_engine(sqlite_url), FakeClock()
    for _ in range(MAX_FAILURES):
        guess(engine, "198.51.100.1", clock)
    assert guess(engine, "198.51.100.1", clock, password=RIGHT).outcome == "locked"
    assert guess(engine, "198.51.100.2", clock, password=RIGHT).ok  # another address is not locked
    # sessions without a known address (localhost, every new tab) count together
    for _ in range(MAX_FAILURES):
        guess(engine, None, clock)
    assert guess(engine, None, clock, password=RIGHT).outcome == "locked"
    assert admin_auth.lockout_left(engine, "198.51.100.2", clock=clock) == 0.0


def test_global_count_stops_guessing_from_many_addresses(sqlite_url: str) -> None:
    engine, clock = get_engine(sqlite_url), FakeClock()
    addresses = [f"203.0.113.{k}" for k in range(GLOBAL_MAX_FAILURES)]
    results = [guess(engine, address, clock) for address in addresses]  # one guess each: none locked alone
    assert [r.outcome for r in results] == ["failure"] * GLOBAL_MAX_FAILURES
    assert results[-1].retry_after_s == FIRST_LOCKOUT_S
    assert guess(engine, "192.0.2.99", clock, password=RIGHT).outcome == "locked"  # a fresh address too
    clock.advance(FIRST_LOCKOUT_S)
    assert guess(engine, "192.0.2.99", clock, password=RIGHT).ok
    assert guess(engine, "203.0.113.0", clock).retry_after_s == 0.0  # the success reset the global count


def test_lockout_survives_a_restart(sqlite_url: str) -> None:
    clock = FakeClock()
    engine = get_engine(sqlite_url)
    for _ in range(MAX_FAILURES):
        guess(engine, "198.51.100.1", clock)
    dispose_engines()  # the app process ends; a new one starts on the same database
    restarted = get_engine(sqlite_url)
    assert restarted is not engine
    assert guess(restarted, "198.51.100.1", clock, password=RIGHT).outcome == "locked"


def test_replicas_share_the_count(any_url: str) -> None:
    """Two engines (two app replicas) on one database: guesses spread over both add up."""
    clock = FakeClock()
    get_engine(any_url)  # migrated
    replicas = [make_engine(any_url), make_engine(any_url)]
    try:
        outcomes = [guess(replicas[k % 2], "198.51.100.1", clock).outcome for k in range(MAX_FAILURES)]
        assert outcomes == ["failure"] * MAX_FAILURES
        assert guess(replicas[1], "198.51.100.1", clock, password=RIGHT).outcome == "locked"
        assert guess(replicas[0], "198.51.100.1", clock, password=RIGHT).outcome == "locked"
    finally:
        for replica in replicas:
            replica.dispose()


def test_simultaneous_guesses_cannot_slip_past_the_limit(any_url: str) -> None:
    """Attempts check, compare and record in one transaction: 12 guesses at the same instant from
    two replicas give exactly 5 checked failures, the rest refused unchecked."""
    clock = FakeClock()
    get_engine(any_url)
    replicas = [make_engine(any_url), make_engine(any_url)]
    results: list[str] = []
    start = threading.Barrier(12)

    def attacker(k: int) -> None:
        start.wait()
        results.append(guess(replicas[k % 2], "198.51.100.1", clock).outcome)

    threads = [threading.Thread(target=attacker, args=(k,)) for k in range(12)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for replica in replicas:
            replica.dispose()
    assert sorted(results) == ["failure"] * MAX_FAILURES + ["locked"] * (12 - MAX_FAILURES)


def test_database_clock_is_aware_utc(any_url: str) -> None:
    engine = get_engine(any_url)
    with engine.connect() as connection:
        now = admin_auth.database_now(connection)
    assert now.tzinfo is not None and abs((now - datetime.now(timezone.utc)).total_seconds()) < 60
    result = attempt_sign_in(engine, "wrong", RIGHT, None)  # the default clock end to end
    assert result.outcome == "failure"
    [record] = admin_auth.recent_sign_ins(engine)
    assert abs((record.at - now).total_seconds()) < 60


def test_sign_in_table_constraints(any_url: str) -> None:
    engine = get_engine(any_url)
    table = AdminSignIn.__table__
    checks = {c["name"] for c in inspect(engine).get_check_constraints("admin_sign_ins")}
    assert {"ck_admin_sign_ins_outcome_known", "ck_admin_sign_ins_client_address_length"} <= checks
    for bad in ({"outcome": "maybe", "client_address": None}, {"outcome": "success", "client_address": ""}):
        with pytest.raises(Exception, match="(?i)check"):
            with engine.begin() as connection:
                connection.execute(table.insert().values(at=T0, **bad))
    with engine.connect() as connection:
        assert connection.execute(select(table)).all() == []


def test_upgrade_from_revision_0001_keeps_the_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    try:
        upgrade(engine, "0001")
        assert "admin_sign_ins" not in inspect(engine).get_table_names()
        with engine.begin() as connection:  # a study imported by the old code
            connection.execute(text(
                "INSERT INTO studies (name, question, instructions, allow_no_preference, is_open,"
                " invite_only,"
                " repeats, completion_code, seed, n_raters, package_root, fingerprint, manifest_json,"
                " imported_at) VALUES ('old', 'q {label}', 'i', 0, 1, 0, 0, 'C', 1, 0, '/x', 'f', '{}',"
                " '2026-11-01 00:00:00')"))
        upgrade(engine)
        assert current_revision(engine) == head_revision()  # 0002 (admin_sign_ins) and every later one
        with engine.connect() as connection:
            assert connection.execute(text("SELECT name FROM studies")).scalar_one() == "old"
        assert attempt_sign_in(engine, "wrong", RIGHT, None, clock=FakeClock()).outcome == "failure"
    finally:
        engine.dispose()


def test_unlock_clears_every_lockout(sqlite_url: str) -> None:
    engine, clock = get_engine(sqlite_url), FakeClock()
    for k in range(GLOBAL_MAX_FAILURES):
        guess(engine, "198.51.100.1" if k < MAX_FAILURES else f"203.0.113.{k}", clock)
    assert guess(engine, "198.51.100.1", clock, password=RIGHT).outcome == "locked"
    assert guess(engine, "192.0.2.1", clock, password=RIGHT).outcome == "locked"  # global
    admin_auth.unlock(engine, clock=clock)
    assert guess(engine, "198.51.100.1", clock, password=RIGHT).ok
    assert guess(engine, "192.0.2.1", clock, password=RIGHT).ok
    assert [r.outcome for r in admin_auth.recent_sign_ins(engine, 3)] == ["success", "success", "reset"]


def test_cli_lists_sign_ins_and_unlocks(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from survey.study import main

    assert main(["sign-ins", "--db", sqlite_url]) == 0
    assert "no admin sign-in attempts yet" in capsys.readouterr().out
    engine = get_engine(sqlite_url)
    for _ in range(MAX_FAILURES):
        attempt_sign_in(engine, "wrong", RIGHT, "198.51.100.1")  # the real (database) clock
    assert main(["sign-ins", "--db", sqlite_url, "--last", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["time", "(UTC)", "client", "address", "outcome"]
    assert [line.split()[-1] for line in out[1:4]] == ["failure"] * 3 and "198.51.100.1" in out[1]
    assert out[4].startswith("locked: 198.51.100.1 for 1 min more")
    assert main(["unlock-admin", "--db", sqlite_url]) == 0
    assert "cleared" in capsys.readouterr().out
    assert main(["sign-ins", "--db", sqlite_url]) == 0
    out = capsys.readouterr().out
    assert "reset" in out and "locked:" not in out
    assert attempt_sign_in(engine, RIGHT, RIGHT, "198.51.100.1").ok
