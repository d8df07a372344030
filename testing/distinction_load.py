"""Many distinction raters answering at once, each in its own process, through the service layer
(tests, benchmarks): the distinction twin of ``testing.concurrent_raters.run_raters``, on the same
forkserver, barrier and report (``RaterRun``). Not for app code."""
from __future__ import annotations

import time

from testing.concurrent_raters import PRELOAD, RaterRun, run_in_processes


def _rater_process(url: str, study: str, rater: str, barrier, results, double_submit: bool,
                   barrier_timeout: float) -> None:
    run = RaterRun(rater)
    try:
        from survey.db import get_engine
        from survey.distinction_service import next_trial, record_answer
        from survey.service import start_rater

        engine = get_engine(url)
        barrier.wait(barrier_timeout)
        run.started = time.monotonic()
        start_rater(engine, study, rater)
        while (screen := next_trial(engine, study, rater)) is not None:
            began = time.perf_counter()
            result = record_answer(engine, study, rater, screen.token, screen.position % len(screen.candidates),
                                   1 + screen.position % 5)
            if result.recorded:
                run.recorded += 1
                run.latencies_s.append(time.perf_counter() - began)
            run.duplicates += int(result.duplicate)
            if double_submit:  # the impatient second click, on another map
                again = record_answer(engine, study, rater, screen.token, 0, 5)
                run.recorded += int(again.recorded)
                run.duplicates += int(again.duplicate)
        run.ended = time.monotonic()
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails loudly
        run.errors.append(f"{type(exc).__name__}: {exc}")
    results.put(run)


def run_distinction_raters(url: str, study: str, raters: list[str], *, double_submit: bool = False,
                           timeout: float = 300.0) -> list[RaterRun]:
    """One process per entry of ``raters`` (repeat an id to race one rater against itself), released
    together; returns their reports. The database must be migrated and the study imported."""
    return run_in_processes(_rater_process, url, study, raters, (double_submit, timeout), timeout=timeout,
                            preload=[*PRELOAD, "survey.distinction_service"])
