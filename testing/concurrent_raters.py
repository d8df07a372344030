"""Many raters voting at once, each in its own process, through the service layer (tests, benchmarks).

Each process is one rater doing exactly what the app does (start_rater, then next_trial and
record_vote until done), released together by a barrier so the votes really collide. Processes come
from a *forkserver* (a clean helper process that has only imported our modules), never forked from
the caller, so each opens its own database connections like separate app servers would, without
paying a second of imports per process as plain "spawn" does. Not for app code.
"""
from __future__ import annotations

import multiprocessing as mp
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

PRELOAD = ["sqlalchemy", "sqlalchemy.orm", "alembic.command", "alembic.script", "alembic.runtime.migration",
           "psycopg", "survey.db", "survey.service"]


@dataclass
class RaterRun:
    rater: str
    recorded: int = 0
    duplicates: int = 0
    latencies_s: list[float] = field(default_factory=list)  # record_vote calls that stored a vote
    started: float = 0.0  # time.monotonic(), comparable across processes on one machine
    ended: float = 0.0
    errors: list[str] = field(default_factory=list)


def _rater_process(url: str, study: str, rater: str, barrier, results, double_submit: bool,  # noqa: ANN001
                   barrier_timeout: float, think_s: float) -> None:
    run = RaterRun(rater)
    pause = random.Random(rater).uniform  # reproducible "thinking" before each click
    try:
        from survey.db import get_engine
        from survey.service import next_trial, record_vote, start_rater

        engine = get_engine(url)
        barrier.wait(barrier_timeout)
        run.started = time.monotonic()
        start_rater(engine, study, rater)
        while (trial := next_trial(engine, study, rater)) is not None:
            if think_s:
                time.sleep(pause(0.5 * think_s, 1.5 * think_s))
            began = time.perf_counter()
            result = record_vote(engine, study, rater, trial.token, "A" if trial.position % 2 else "B")
            elapsed = time.perf_counter() - began
            if result.recorded:
                run.recorded += 1
                run.latencies_s.append(elapsed)
            run.duplicates += int(result.duplicate)
            if double_submit:  # the impatient double click
                again = record_vote(engine, study, rater, trial.token, "B")
                run.recorded += int(again.recorded)
                run.duplicates += int(again.duplicate)
        run.ended = time.monotonic()
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails loudly
        run.errors.append(f"{type(exc).__name__}: {exc}")
    results.put(run)


def run_raters(url: str, study: str, raters: list[str], *, double_submit: bool = False, think_s: float = 0.0,
               timeout: float = 300.0) -> list[RaterRun]:
    """Runs one process per entry of ``raters`` (repeat an id to race one rater against itself);
    returns their reports. ``think_s``: mean pause before each vote (uniform 0.5x..1.5x; 0 = none).
    The database must already be migrated and the study imported."""
    return run_in_processes(_rater_process, url, study, raters, (double_submit, timeout, think_s), timeout=timeout)


def run_in_processes(target: Callable[..., None], url: str, study: str, raters: list[str], extra: tuple, *,
                     timeout: float, preload: Sequence[str] = PRELOAD) -> list[RaterRun]:
    """One forkserver process per rater running ``target(url, study, rater, barrier, results, *extra)``,
    all released together by the barrier; the reports they put on ``results`` (pairwise votes here,
    distinction answers in :mod:`testing.distinction_load`)."""
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(list(preload))  # no effect once that forkserver runs: it has them already
    barrier = context.Barrier(len(raters))
    results = context.Queue()
    processes = [context.Process(target=target, args=(url, study, rater, barrier, results, *extra), daemon=True)
                 for rater in raters]
    for process in processes:
        process.start()
    runs: list[RaterRun] = []
    deadline = time.monotonic() + timeout
    try:
        for _ in processes:
            runs.append(results.get(timeout=max(1.0, deadline - time.monotonic())))
    finally:
        for process in processes:
            process.join(timeout=max(1.0, deadline - time.monotonic()))
            if process.is_alive():
                process.terminate()
                process.join(5)
    return runs


def _migrate_process(url: str, barrier, results) -> None:  # noqa: ANN001
    try:
        from survey.db import current_revision, get_engine

        barrier.wait(120)
        results.put(current_revision(get_engine(url)))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        results.put(f"{type(exc).__name__}: {exc}")


def migrate_at_once(url: str, n: int, timeout: float = 120.0) -> list[str | None]:
    """``n`` processes call ``get_engine(url)`` on the same database at the same moment (app replicas
    starting together); returns the revision each one then sees, or its error."""
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    barrier, results = context.Barrier(n), context.Queue()
    processes = [context.Process(target=_migrate_process, args=(url, barrier, results), daemon=True)
                 for _ in range(n)]
    for process in processes:
        process.start()
    try:
        return [results.get(timeout=timeout) for _ in processes]
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.terminate()
