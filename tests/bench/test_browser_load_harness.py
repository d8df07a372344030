"""The browser load harness' own parts that need no browser: launch shapes and the server-error scan.

They decide what bench/survey_browser_load.py reports (issue 9), so a wrong arrival schedule or a
missed exception in the server's log would silently change the figures."""
from __future__ import annotations

import math
import random
import statistics
import subprocess
from pathlib import Path

import pytest

from testing import browser as ub
from testing import browser_load as bl


def test_at_once_is_the_default_and_everyone_arrives_together() -> None:
    assert bl.AT_ONCE == bl.Launch()
    assert [bl.AT_ONCE.arrival_s(k, 16) for k in range(16)] == [0.0] * 16
    assert bl.AT_ONCE.think_s(random.Random(0)) == ub.THINK_MS / 1000


def test_same_minute_spreads_arrivals_evenly_over_the_window() -> None:
    arrivals = [bl.SAME_MINUTE.arrival_s(k, 16) for k in range(16)]
    assert arrivals[0] == 0.0 and arrivals[-1] == pytest.approx(60 * 15 / 16)
    gaps = {round(b - a, 9) for a, b in zip(arrivals, arrivals[1:])}
    assert gaps == {3.75}


def test_same_minute_looks_are_log_normal_around_the_simulated_raters_median() -> None:
    rng = random.Random(1)
    looks = [bl.SAME_MINUTE.think_s(rng) for _ in range(4000)]
    assert statistics.median(looks) == pytest.approx(3.5, rel=0.05)
    assert min(looks) > 0 and max(looks) > 2 * 3.5  # spread, not a constant
    assert statistics.stdev([math.log(x) for x in looks]) == pytest.approx(0.5, rel=0.05)


def test_a_launch_refuses_negative_times() -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        bl.Launch(arrive_within_s=-1)
    with pytest.raises(ValueError, match="must be >= 0"):
        bl.Launch(think_sigma=-0.1)


def test_server_errors_are_read_from_the_coloured_log(tmp_path: Path) -> None:
    log = tmp_path / "streamlit.log"
    log.write_text("  You can now view your Streamlit app in your browser.\n"
                   "\x1b[1;91mRuntimeError: \x1b[0mdictionary keys changed during iteration\n"
                   "  a line mentioning Error: in the middle is not an exception line\n"
                   "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked\n")
    server = ub.AppServer(process=subprocess.Popen(["true"]), port=1, log_path=log)
    server.process.wait()
    locked = "sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked"
    assert server.errors() == ["RuntimeError: dictionary keys changed during iteration", locked]
    log.write_text("  Stopping...\n")
    assert server.errors() == []
    log.unlink()
    assert server.errors() == []  # no log yet: nothing to report


def test_a_click_that_hit_a_pair_nobody_aimed_at_is_a_stray_with_its_timing() -> None:
    """The page's click log (epoch ms) against the harness' calls (epoch s): a click on the next
    pair's button is reported with how long that pair had been drawn and which call sent it."""
    run = bl.RaterRun("r1")
    run.calls = [("st-key-consent", 99.0, 99.1), ("st-key-A-tok1", 100.0, 100.2),
                 ("st-key-A-tok1", 100.5, 101.5)]
    run.page_log = {
        "drawn": {"tok1": 99_500.0, "tok-2": 101_000.0},
        "clicks": [{"key": "st-key-consent", "at": 99_050.0},
                   {"key": "st-key-A-tok1", "at": 100_100.0},
                   {"key": "st-key-A-tok-2", "at": 101_400.0,  # the stray
                    "pressed": "st-key-A-tok1", "pressed_at": 100_700.0},
                   {"key": "st-key-B-tok-3", "at": 200_000.0}]}  # never drawn, no call
    first, second = run.stray_clicks()
    assert first == bl.StrayClick(key="st-key-A-tok-2", drawn_ms=400.0, aimed_at="st-key-A-tok1",
                                  call_ms=pytest.approx(1000.0), sent_after_ms=pytest.approx(900.0),
                                  pressed_on="st-key-A-tok1", held_ms=700.0)
    assert str(first) == ("st-key-A-tok-2 hit 400 ms after its pair was drawn, by a click aimed at "
                          "st-key-A-tok1 sent 900 ms into a 1000 ms call, "
                          "pressed on st-key-A-tok1 700 ms before")
    assert second.key == "st-key-B-tok-3" and math.isnan(second.drawn_ms) and second.aimed_at == ""
    assert second.pressed_on == "" and math.isnan(second.held_ms)
    assert bl.RaterRun("r2").stray_clicks() == []  # a page that logged nothing


def test_export_mismatch_names_what_differs_and_counts_a_vote_exported_twice() -> None:
    run = bl.RaterRun("r1", acknowledged={1: "A", 2: "B"})
    assert bl.export_mismatch(run, {"r1": [(1, "A"), (2, "B")]}) == ""
    assert bl.export_mismatch(run, {"r1": [(1, "A"), (2, "B"), (2, "B")]}) == (
        "r1 (position, side) acknowledged only [], exported only [(2, 'B')]")
    assert bl.export_mismatch(run, {"r1": [(1, "A"), (2, "A")]}) == (
        "r1 (position, side) acknowledged only [(2, 'B')], exported only [(2, 'A')]")
    assert bl.export_mismatch(run, {}) == (
        "r1 (position, side) acknowledged only [(1, 'A'), (2, 'B')], exported only []")
