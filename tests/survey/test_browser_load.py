"""The rater app under a launch-day load, in real browsers (issue 9): 8 impatient raters at once in
one Chromium, a context each, against ``streamlit run survey/app.py``; then SIGTERM while more raters
are clicking. On PostgreSQL: two app replicas on one database, raters split between them.

Impatient means: "I agree, start" and A/B are clicked again every 300 ms while the page has not moved
on, and A/B are double-clicked. Whatever the timing, every rater must finish, every vote the page
acknowledged must be exported exactly once, and the server's threads must stay under
:func:`testing.browser_load.thread_bound` (the code before issue 9 parked one thread per click: hundreds).
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from survey.db import dispose_engines
from testing import browser as ub
from testing import browser_load as bl
from testing.packages import make_study
from tests.support import require

pytestmark = pytest.mark.browser
N_RATERS = 8
SIGTERM_LIMIT_S = 10.0


def _check_exactly_once(url: str, study: str, runs: list[bl.RaterRun]) -> None:
    exported = bl.exported_votes(url, study)
    for run in runs:
        votes = exported.get(run.rater, [])
        assert len({position for position, _ in votes}) == len(votes), f"{run.rater}: a position twice"
        assert bl.export_mismatch(run, exported) == ""


def _finish_and_check(url: str, study: str, servers: list[ub.AppServer], n_trials: int) -> bl.LoadRun:
    run = bl.run_load(servers, study, n_trials, N_RATERS, mode="impatient", timeout_s=90)
    stuck = [f"{r.rater}: {len(r.acknowledged)}/{n_trials} {r.error}" for r in run.raters if not r.finished]
    assert not stuck, "raters did not finish:\n" + "\n".join(stuck)
    # the load was impatient: more clicks than one per step, whatever the machine's speed (the
    # double clicks always; the clicks again on a slow page, ``reclicks``, only on a busy machine)
    assert sum(r.clicks for r in run.raters) >= 2 * run.votes + N_RATERS
    _check_exactly_once(url, study, run.raters)
    for sample in run.servers:
        assert 0 < sample.max_threads <= bl.thread_bound(N_RATERS), sample
    for server in servers:  # a script run that raised showed a rater an error instead of the page
        assert server.errors() == [], f"the server logged exceptions:\n{server.log_tail()}"
    return run


@pytest.fixture()
def playwright_ready():
    require(ub.chromium_available(), "browser tests need Debian's chromium (apt-get install chromium)")


def test_eight_impatient_raters_finish_and_sigterm_loses_nothing(tmp_path: Path, sqlite_url: str,
                                                                  playwright_ready):
    study = make_study(tmp_path, sqlite_url, n_items=3, n_checks=1)
    n = study.n_trials
    dispose_engines()
    with ub.serve_app(sqlite_url, log_dir=tmp_path) as server:
        _finish_and_check(sqlite_url, study.name, [server], n)

        # SIGTERM under load: four more raters are clicking away when the server is told to stop
        late: list[bl.LoadRun] = []
        stop = threading.Event()
        clicking = threading.Thread(target=lambda: late.append(bl.run_load(
            [server], study.name, n, 4, mode="impatient", timeout_s=60, prefix="late", stop=stop)))
        clicking.start()
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and _late_votes(sqlite_url, study.name) < 3:
            time.sleep(0.3)
        took = bl.sigterm_seconds(server, limit_s=30)
        time.sleep(1)  # let the pages notice, then stop clicking
        stop.set()
        clicking.join(60)
        assert took <= SIGTERM_LIMIT_S, f"SIGTERM took {took:.1f} s:\n{server.log_tail()}"
    dispose_engines()
    assert late and sum(len(r.acknowledged) for r in late[0].raters) > 0  # the load was real
    exported = bl.exported_votes(sqlite_url, study.name)
    for run in late[0].raters:  # every acknowledged vote is stored, once, and nothing was skipped
        votes = dict(exported.get(run.rater, []))
        assert all(votes.get(position) == side for position, side in run.acknowledged.items()), run
        assert sorted(votes) == list(range(1, len(votes) + 1))
    assert all(len(exported[f"r{k}"]) == n for k in range(N_RATERS))


def _late_votes(url: str, study: str) -> int:
    try:
        return sum(len(v) for rater, v in bl.exported_votes(url, study).items() if rater.startswith("late"))
    finally:
        dispose_engines()


@pytest.mark.postgres
def test_two_replicas_on_one_postgresql_lose_and_duplicate_nothing(tmp_path: Path, pg_url: str,
                                                                   playwright_ready):
    study = make_study(tmp_path, pg_url, n_items=3, n_checks=1)
    dispose_engines()
    with ub.serve_app(pg_url, log_dir=tmp_path) as first, ub.serve_app(pg_url, log_dir=tmp_path) as second:
        run = _finish_and_check(pg_url, study.name, [first, second], study.n_trials)
    dispose_engines()
    assert len(bl.exported_votes(pg_url, study.name)) == N_RATERS
    assert run.votes == N_RATERS * study.n_trials
