"""Survey load: N concurrent raters (one process each) voting through the service layer.

    .venv/bin/python bench/survey_load.py [--raters 32] [--items 20] [--think-s 1.0]
                                          [--backends sqlite,postgresql]
    .venv/bin/python bench/survey_load.py --smoke     # 2 raters x 4 votes, no pauses: does it still run?

Per backend, three runs on the same study:
  baseline  ONE rater alone, pausing --think-s (mean) before each click: uncontended latency;
  load      N raters together, same pauses: the target case (people take seconds per pair);
  capacity  N raters with no pause at all: the most votes/s the machine sustains (a stress test).
Reported: votes/s and the p50/p95/p99 latency of ``record_vote`` (one read-then-write transaction,
committed), ratios against the baseline, and whether every vote was stored exactly once. Targets
(issue 4): zero lost votes; p99 <= 50 ms at 32 raters on SQLite. PostgreSQL runs in a throwaway
local cluster (``testing.postgres``, fsync on), or is skipped with a note where it is not installed.
Exit status 1 if a vote is lost or any error occurs.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path


from testing.benchmark import add_smoke_flag, database_url, print_header
from survey.db import dispose_engines, get_engine, sqlite_synchronous
from survey.importer import import_package
from testing.concurrent_raters import run_raters
from testing.packages import make_package
from testing.reveal import vote_count

P99_TARGET_MS = 50.0
KINDS = ("baseline", "load", "capacity")
SMOKE = ["--raters", "2", "--items", "2", "--think-s", "0"]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: a p99 is a latency someone really waited)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def measure(url: str, raters: list[str], think_s: float, per_rater: int) -> dict:
    before = vote_count(get_engine(url), "load")
    runs = run_raters(url, "load", raters, think_s=think_s, timeout=900)
    stored = vote_count(get_engine(url), "load") - before
    latencies = [1000 * s for run in runs for s in run.latencies_s]
    errors = [e for run in runs for e in run.errors]
    wall = max(run.ended for run in runs) - min(run.started for run in runs) if not errors else math.nan
    return {"raters": len(raters), "stored": stored, "lost": len(raters) * per_rater - stored,
            "errors": errors, "votes_per_s": stored / wall if wall > 0 else math.nan,
            **{f"p{q}": percentile(latencies, q) for q in (50, 95, 99)}}


def bench_backend(url: str, package: Path, n_raters: int, per_rater: int, think_s: float) -> dict[str, dict]:
    import_package(get_engine(url), package, name="load")
    plan = {"baseline": (["solo"], think_s),
            "load": ([f"r{k:03d}" for k in range(n_raters)], think_s),
            "capacity": ([f"s{k:03d}" for k in range(n_raters)], 0.0)}
    results = {kind: measure(url, raters, think, per_rater) for kind, (raters, think) in plan.items()}
    dispose_engines()
    return results


def report(results: dict[str, dict[str, dict]], args: argparse.Namespace) -> bool:
    """Prints the table and ratios; returns True if every vote was stored and nothing failed."""
    print(f"\n{'backend':<11} {'run':<9} {'raters':>6} {'votes':>6} {'lost':>5} {'votes/s':>8} "
          f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}")
    for backend, rows in results.items():
        for kind in KINDS:
            r = rows[kind]
            print(f"{backend:<11} {kind:<9} {r['raters']:>6} {r['stored']:>6} {r['lost']:>5} "
                  f"{r['votes_per_s']:>8.1f} {r['p50']:>7.1f} {r['p95']:>7.1f} {r['p99']:>7.1f}")
    print()
    for backend, rows in results.items():
        base, load, cap = rows["baseline"], rows["load"], rows["capacity"]
        gain = load["votes_per_s"] / base["votes_per_s"]
        print(f"{backend}: {load['raters']} raters vs 1: throughput x{gain:.1f}, "
              f"p50 x{load['p50'] / base['p50']:.2f}, p99 x{load['p99'] / base['p99']:.2f}; "
              f"capacity {cap['votes_per_s']:.0f} votes/s")
    if {"sqlite", "postgresql"} <= results.keys():
        s, p = results["sqlite"], results["postgresql"]
        capacity = p["capacity"]["votes_per_s"] / s["capacity"]["votes_per_s"]
        p99 = p["load"]["p99"] / s["load"]["p99"]
        print(f"postgresql vs sqlite ({s['load']['raters']} raters): p99 x{p99:.2f}, "
              f"capacity x{capacity:.2f}")
    ok = True
    for backend, rows in results.items():
        for kind in KINDS:
            if rows[kind]["errors"] or rows[kind]["lost"]:
                ok = False
                r = rows[kind]
                print(f"FAIL {backend} {kind}: lost {r['lost']} vote(s); errors: {r['errors'][:3]}")
    if "sqlite" in results:
        p99 = results["sqlite"]["load"]["p99"]
        verdict = "met" if p99 <= P99_TARGET_MS else "NOT met"
        print(f"target p99 <= {P99_TARGET_MS:.0f} ms at {args.raters} raters on SQLite "
              f"(synchronous={sqlite_synchronous()}): {verdict} ({p99:.1f} ms)")
    print("zero lost votes:", "yes" if ok else "NO")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raters", type=int, default=32, help="concurrent raters (processes), default 32")
    parser.add_argument("--items", type=int, default=20,
                        help="regular items per rater (+2 checks), default 20")
    parser.add_argument("--think-s", type=float, default=1.0,
                        help="mean pause before each click, uniform 0.5x-1.5x "
                             "(default 1.0 s; people take longer)")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma list of sqlite, postgresql")
    add_smoke_flag(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args = parser.parse_args([*SMOKE, *(argv if argv is not None else sys.argv[1:])])
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if set(backends) - {"sqlite", "postgresql"} or args.raters < 1 or args.items < 2 or args.think_s < 0:
        print("error: --backends takes sqlite and/or postgresql; --raters >= 1, --items >= 2, --think-s >= 0",
              file=sys.stderr)
        return 2
    print_header("survey load (bench/survey_load.py)")
    per_rater = args.items + 2
    results: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="survey-load-") as tmp, ExitStack() as stack:
        package = make_package(Path(tmp) / "package", name="load", n_items=args.items, n_checks=2,
                               image_size=16, with_example=False)
        for backend in backends:
            url = database_url(backend, Path(tmp), stack)
            if url is None:
                continue
            print(f"== {backend}: baseline, load and capacity runs "
                  f"({args.raters} raters x {per_rater} votes)", flush=True)
            results[backend] = bench_backend(url, package, args.raters, per_rater, args.think_s)
    return 0 if report(results, args) else 1


if __name__ == "__main__":
    started = time.perf_counter()
    status = main()
    print(f"(ran {time.perf_counter() - started:.0f} s)")
    sys.exit(status)
