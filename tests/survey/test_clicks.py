"""SingleFlight (survey.clicks): one write per click however often it arrives, and the writer gate's
timeout (survey.db): no wait without end on a rater's path."""
from __future__ import annotations

import threading
import time

import pytest

from survey import db
from survey.clicks import SingleFlight, StillRunning


def test_concurrent_copies_run_the_action_once_and_share_its_result():
    flights, started, release = SingleFlight(), threading.Event(), threading.Event()
    calls: list[int] = []

    def action() -> str:
        calls.append(1)
        started.set()
        release.wait(5)
        return "recorded"

    results: list[tuple[str, bool]] = []
    first = threading.Thread(target=lambda: results.append(flights.run("k", action, wait_s=5)))
    first.start()
    started.wait(5)
    copies = [threading.Thread(target=lambda: results.append(flights.run("k", action, wait_s=5)))
              for _ in range(5)]
    for thread in copies:
        thread.start()
    time.sleep(0.2)
    assert len(calls) == 1  # the copies wait; none of them runs the action
    release.set()
    for thread in [first, *copies]:
        thread.join(5)
    assert calls == [1] and flights.executions == 1
    assert sorted(results) == [("recorded", False)] * 5 + [("recorded", True)]
    # a late copy is answered from memory, without running anything
    assert flights.run("k", action, wait_s=0) == ("recorded", False) and calls == [1]


def test_a_waiting_copy_gives_up_in_time_and_can_be_stopped():
    flights, release = SingleFlight(), threading.Event()
    runner = threading.Thread(target=lambda: flights.run("k", lambda: release.wait(5), wait_s=5))
    runner.start()
    time.sleep(0.1)
    start = time.monotonic()
    with pytest.raises(StillRunning):
        flights.run("k", lambda: pytest.fail("must not run"), wait_s=0.3)
    assert 0.25 < time.monotonic() - start < 2

    class Superseded(Exception):
        pass

    def poll() -> None:
        raise Superseded  # what Streamlit's StopException does to a waiter replaced by a newer click

    with pytest.raises(Superseded):
        flights.run("k", lambda: pytest.fail("must not run"), wait_s=5, poll=poll)
    release.set()
    runner.join(5)


def test_a_failed_action_is_not_remembered_and_the_next_copy_retries():
    flights, attempts = SingleFlight(), []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise db.DatabaseBusy("busy")
        return "ok"

    with pytest.raises(db.DatabaseBusy):
        flights.run("k", flaky, wait_s=1)
    assert flights.run("k", flaky, wait_s=1) == ("ok", True) and len(attempts) == 2


def test_memory_is_bounded():
    flights = SingleFlight(remember=3)
    for key in range(10):
        flights.run(key, lambda: key, wait_s=0)
    assert flights.run(0, lambda: "again", wait_s=0) == ("again", True)  # 0 was forgotten
    assert flights.run(9, lambda: "again", wait_s=0) == (9, False)


def test_writer_gate_times_out_instead_of_waiting_forever(tmp_path, monkeypatch):
    gate = db._WriterGate(str(tmp_path / "x.db"))
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with gate.hold():
            holding.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(5)
    start = time.monotonic()
    with pytest.raises(db.DatabaseBusy):
        with gate.hold(timeout=0.3):
            pytest.fail("entered a gate that another thread holds")
    assert 0.25 < time.monotonic() - start < 2
    assert db.is_busy(db.DatabaseBusy("x"))
    release.set()
    holder.join(5)
    with gate.hold(timeout=0.3):  # free again: the timed-out waiter left nothing behind
        assert gate.depth == 1
    assert gate.depth == 0


def test_writer_gate_times_out_on_another_process_lock(tmp_path):
    import fcntl
    import os

    gate = db._WriterGate(str(tmp_path / "x.db"))
    other = os.open(gate.path, os.O_RDWR | os.O_CREAT, 0o600)  # a second open file: like another process
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        with pytest.raises(db.DatabaseBusy):
            with gate.hold(timeout=0.3):
                pytest.fail("entered while another process held the flock")
        assert not gate.lock._is_owned()  # the thread lock was released on the way out
    finally:
        fcntl.flock(other, fcntl.LOCK_UN)
        os.close(other)
    with gate.hold(timeout=0.3):
        pass


@pytest.mark.postgres
def test_postgresql_row_lock_waits_end_in_a_busy_error(pg_url):
    """A rater's transaction that meets a row lock held too long gets an error, not an endless wait."""
    from sqlalchemy import text

    engine = db.get_engine(pg_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE lock_probe (id int primary key)"))
        connection.execute(text("INSERT INTO lock_probe VALUES (1)"))
    with engine.connect() as holder:
        holder.begin()
        holder.execute(text("SELECT id FROM lock_probe WHERE id = 1 FOR UPDATE"))
        start = time.monotonic()
        with pytest.raises(Exception) as caught, engine.connect() as waiter:
            waiter.execute(text("SELECT id FROM lock_probe WHERE id = 1 FOR UPDATE"))
        waited = time.monotonic() - start
        holder.rollback()
    assert db.is_busy(caught.value), caught.value
    assert db.WRITER_WAIT_S - 0.5 < waited < db.WRITER_WAIT_S + 5


def test_vote_spacing_ignores_a_new_pair_voted_within_the_gap(monkeypatch):
    from survey import clicks

    now = [100.0]
    monkeypatch.setattr(clicks.time, "monotonic", lambda: now[0])
    spacing = clicks.VoteSpacing()
    assert not spacing.too_soon("rater", "t1", 0.5)  # nothing voted yet
    spacing.clicked("rater", "t1")
    now[0] += 0.2
    assert spacing.too_soon("rater", "t2", 0.5)  # the double click's second click on the next pair
    assert not spacing.too_soon("rater", "t1", 0.5)  # the same pair: left to SingleFlight (no second write)
    assert not spacing.too_soon("someone else", "t9", 0.5)
    spacing.clicked("rater", "t1")  # an impatient click again on the first pair restarts the window
    now[0] += 0.4
    assert spacing.too_soon("rater", "t2", 0.5)
    now[0] += 0.11
    assert not spacing.too_soon("rater", "t2", 0.5)  # a considered answer
