"""Launch-day load in real browsers: 1, 8, 16 and 32 raters in Chromium (a context each) against
``streamlit run survey/app.py``, patient and impatient, two launch shapes, SQLite and PostgreSQL.

    .venv/bin/python bench/survey_browser_load.py                       # everything (~60 min, 2 cores)
    .venv/bin/python bench/survey_browser_load.py --raters 16 --modes impatient --backends sqlite

Raters (testing/browser_load.py): *impatient* ones double-click A/B and click again every
300 ms while the page has not moved on; *patient* ones click once and again only after 5 s.
Launches (``--launch``): *same-minute* is a launch as it happens (the link goes out, people open
it within a minute: arrivals evenly spread over 60 s, and each looks at a pair for a log-normal
time, median 3.5 s, as the simulated attentive raters do); *at-once* is the stress case (every
rater opens the link at the same instant and votes 600 ms after each pair appears).
Every run gets a fresh server and a fresh study of ``--items`` pairs (default 15, the paper's
study) plus one attention check, so threads, RSS and CPU time are its own, and reports:

  completion   share of raters who reached the thank-you page before --timeout-s
  p50/p95/p99  click to next pair: from the first click on A/B until the page shows the next pair
  votes/s      acknowledged votes per second of wall time
  threads      the most threads the server process had (sampled every 100 ms; must stay under
               testing.browser_load.thread_bound: 60 + 2 per rater)
  RSS          the server's peak resident memory
  CPU/vote     the server's CPU time (user + system) over the run, per acknowledged vote
  errors       exceptions in the server's log (a rater whose script run raised saw an error)
  client CPU   the same for the clients on this machine: Chromium, Playwright's driver and the
               Python process driving them (on a real launch this is the raters' own devices)

each also as a ratio against the 1-rater run of the same backend, mode and launch in the same
invocation (the 1-rater run is added when --raters leaves it out). Targets (issue 9): 100 %
completion everywhere; CPU/vote at 32 impatient raters <= 2x the 1-rater figure; p95 at 16
impatient raters <= 4x the 1-rater p95 in the same-minute launch (at once, 16 pages starting
together take ~40 s of CPU on 2 cores before anyone votes, so the ratio there measures the
machine's browsers, not the app: it is reported, not targeted). A run also fails if an
acknowledged vote is missing from the export, or exported twice, if the server logged an
exception, or if its threads passed the bound. A click that hit a pair its rater never aimed at (a
"stray click": a click meant for one pair that landed on the next) is printed with its timing from
the page's own log; it fails the run only if it became a vote. Exit status 1 on any failure.
PostgreSQL runs in a throwaway local cluster (``testing.postgres``); where it is not installed it
is skipped with a note.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path


from testing.benchmark import MISSING_SYSTEM_DEPENDENCY, add_smoke_flag, database_url, print_header
from testing.browser_load import LAUNCHES, thread_bound

SIZES = (1, 8, 16, 32)
MODES = ("impatient", "patient")
BACKENDS = ("sqlite", "postgresql")
CPU_RATIO_TARGET = 2.0  # at 32 impatient raters
P95_RATIO_TARGET = 4.0  # at 16 impatient raters
P95_TARGET_LAUNCH = "same-minute"  # the p95 target's launch shape (docstring)


def _csv(kind, allowed=None):  # noqa: ANN001, ANN202
    def parse(text: str) -> list:
        values = [kind(v.strip()) for v in text.split(",") if v.strip()]
        bad = [v for v in values if allowed is not None and v not in allowed]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(map(str, allowed or []))}")
        return values
    return parse


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def one_run(url: str, workdir: Path, n_raters: int, mode: str, launch: str, items: int,
            timeout_s: float) -> dict:
    """A fresh study and server; ``n_raters`` raters arriving as ``launch`` says; the figures and the
    exactly-once check."""
    from survey.db import dispose_engines
    from testing import browser as ub
    from testing import browser_load as bl
    from testing.packages import make_study

    name = f"b{launch[0]}{mode[0]}{n_raters}"
    study = make_study(workdir, url, name=name, n_items=items, n_checks=1, image_size=224, photographic=True)
    dispose_engines()
    with ub.serve_app(url, log_dir=workdir) as server:
        shape = bl.LAUNCHES[launch]
        run = bl.run_load([server], name, study.n_trials, n_raters, mode=mode, launch=shape,
                          timeout_s=timeout_s + shape.arrive_within_s)
        sigterm_s = bl.sigterm_seconds(server)
        errors = server.errors()
    exported = bl.exported_votes(url, name)
    dispose_engines()
    mismatched = [m for r in run.raters if r.finished and (m := bl.export_mismatch(r, exported))]
    sample = run.servers[0]
    votes = max(1, run.votes)
    return {
        "raters": n_raters, "mode": mode, "launch": launch, "completion": run.completion, "votes": run.votes,
        "p50_ms": run.percentile(50), "p95_ms": run.percentile(95), "p99_ms": run.percentile(99),
        "votes_per_s": run.votes / run.wall_s, "threads": sample.max_threads, "rss_mb": sample.max_rss_mb,
        "cpu_ms_per_vote": 1000 * sample.cpu_s / votes,
        "client_cpu_ms_per_vote": 1000 * run.client_cpu_s / votes,
        "clicks": sum(r.clicks for r in run.raters),
        "wall_s": run.wall_s, "sigterm_s": sigterm_s, "mismatched": mismatched,
        "stuck": [f"{r.rater}: {r.error[:120]}" for r in run.raters if not r.finished],
        "server_errors": errors,
        "stray_clicks": [f"{r.rater}: {stray}" for r in run.raters for stray in r.stray_clicks()],
    }


COLUMNS = [("completion", "{:.0%}"), ("p50_ms", "{:.0f}"), ("p95_ms", "{:.0f}"), ("p99_ms", "{:.0f}"),
           ("votes_per_s", "{:.2f}"), ("threads", "{:d}"), ("rss_mb", "{:.0f}"),
           ("cpu_ms_per_vote", "{:.0f}"), ("client_cpu_ms_per_vote", "{:.0f}")]
HEADERS = ["completion", "p50 ms", "p95 ms", "p99 ms", "votes/s", "threads", "RSS MB", "CPU ms/vote",
           "client CPU ms/vote"]


def _fmt(value, pattern: str) -> str:  # noqa: ANN001
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return pattern.format(value)


def table(backend: str, launch: str, mode: str, rows: list[dict]) -> list[str]:
    """Markdown rows: value (ratio vs the 1-rater run)."""
    base = next(r for r in rows if r["raters"] == 1)
    lines = [f"| {backend} {launch} {mode} raters | " + " | ".join(HEADERS) + " | SIGTERM s |",
             "|---" * (len(HEADERS) + 2) + "|"]
    for row in rows:
        cells = []
        for (key, pattern) in COLUMNS:
            value = row[key]
            cell = _fmt(value, pattern)
            if row["raters"] != 1 and key != "completion" and base[key] and not math.isnan(base[key]):
                cell += f" ({value / base[key]:.1f}x)"
            cells.append(cell)
        lines.append(f"| {row['raters']} | " + " | ".join(cells) + f" | {row['sigterm_s']:.1f} |")
    return lines


def check(results: dict) -> list[str]:
    """The issue-9 targets that were missed (empty: all met)."""
    failures = []
    for backend, launches in results.items():
        for launch, mode, rows in ((launch, mode, rows) for launch, modes in launches.items()
                                   for mode, rows in modes.items()):
            base = next(r for r in rows if r["raters"] == 1)
            for row in rows:
                where = f"{backend} {launch} {mode} {row['raters']} raters"
                if row["completion"] < 1:
                    failures.append(f"{where}: {row['completion']:.0%} finished; {row['stuck'][:3]}")
                if row["mismatched"]:
                    failures.append(f"{where}: export differs from acknowledged votes for "
                                    f"{row['mismatched']}")
                if row["server_errors"]:
                    failures.append(f"{where}: the server logged {len(row['server_errors'])} exception(s), "
                                    f"first: {row['server_errors'][0][:160]}")
                if row["threads"] > thread_bound(row["raters"]):
                    failures.append(f"{where}: {row['threads']} server threads, over the documented bound "
                                    f"{thread_bound(row['raters'])}")
                if row["sigterm_s"] > 10:
                    failures.append(f"{where}: SIGTERM took {row['sigterm_s']:.1f} s")
                if mode == "impatient" and row["raters"] == 32:
                    ratio = row["cpu_ms_per_vote"] / base["cpu_ms_per_vote"]
                    if ratio > CPU_RATIO_TARGET:
                        failures.append(f"{where}: CPU/vote {ratio:.1f}x the 1-rater run (target <= 2x)")
                if mode == "impatient" and row["raters"] == 16 and launch == P95_TARGET_LAUNCH:
                    ratio = row["p95_ms"] / base["p95_ms"]
                    if ratio > P95_RATIO_TARGET:
                        failures.append(f"{where}: p95 {ratio:.1f}x the 1-rater run (target <= 4x)")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raters", type=_csv(int), default=list(SIZES), metavar="N,N",
                        help="rater counts (default 1,8,16,32; 1 is always run as the baseline)")
    parser.add_argument("--modes", type=_csv(str, MODES), default=list(MODES), metavar="MODE,MODE",
                        help="impatient and/or patient (default both)")
    parser.add_argument("--backends", type=_csv(str, BACKENDS), default=list(BACKENDS), metavar="DB,DB",
                        help="sqlite and/or postgresql (default both)")
    parser.add_argument("--launch", type=_csv(str, tuple(LAUNCHES)), default=list(LAUNCHES), metavar="L,L",
                        help="same-minute and/or at-once (default both; see above)")
    parser.add_argument("--items", type=int, default=15,
                        help="pairs per rater (+1 attention check; default 15, the paper's study)")
    parser.add_argument("--timeout-s", type=float, default=300.0,
                        help="a run's time limit after the last arrival; raters still going then did not "
                             "finish (default 300)")
    parser.add_argument("--json", type=Path, help="also write the raw figures to this JSON file")
    add_smoke_flag(parser)
    args = parser.parse_args(argv)
    if args.smoke:  # one rater, one mode, SQLite, 2 items: does the harness still run?
        args.raters, args.modes, args.backends, args.items = [1], ["impatient"], ["sqlite"], 2
        args.launch = ["at-once"]
    if any(n < 1 for n in args.raters):
        parser.error("--raters: counts must be >= 1")
    from testing.browser import chromium_available

    if not chromium_available():
        print("error: chromium not found; install it with `make system-deps` (apt-get install chromium)",
              file=sys.stderr)
        return MISSING_SYSTEM_DEPENDENCY
    sizes = sorted(set(args.raters) | {1})
    print_header("real browsers against the rater app (bench/survey_browser_load.py)")
    results: dict[str, dict[str, dict[str, list[dict]]]] = {}  # backend -> launch -> mode -> rows
    with tempfile.TemporaryDirectory(prefix="survey-browser-load-") as tmp, ExitStack() as stack:
        for backend in args.backends:
            url = database_url(backend, Path(tmp), stack)
            if url is None:
                continue
            for launch in args.launch:
                for mode in args.modes:
                    rows = []
                    for n in sizes:
                        folder = Path(tmp) / f"{backend}-{launch}-{mode}-{n}"
                        row = one_run(url, folder, n, mode, launch, args.items, args.timeout_s)
                        rows.append(row)
                        print(f"  {backend} {launch} {mode} {n:>2} raters: {row['completion']:.0%} finished, "
                              f"p95 {row['p95_ms']:.0f} ms, {row['threads']} threads, "
                              f"{row['cpu_ms_per_vote']:.0f} ms CPU/vote (clients "
                              f"{row['client_cpu_ms_per_vote']:.0f}), "
                              f"{len(row['server_errors'])} server errors, "
                              f"{len(row['stray_clicks'])} stray clicks, SIGTERM {row['sigterm_s']:.1f} s "
                              f"(load {os.getloadavg()[0]:.1f})", flush=True)
                        for stray in row["stray_clicks"]:
                            print(f"    stray click: {stray}", flush=True)
                    results.setdefault(backend, {}).setdefault(launch, {})[mode] = rows
    print(f"\nCPU: {cpu_name()}; load average after: {os.getloadavg()[0]:.1f}\n")
    for backend, launches in results.items():
        for launch, modes in launches.items():
            for mode, rows in modes.items():
                print("\n".join(table(backend, launch, mode, rows)) + "\n")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_name(), "results": results}, indent=1))
    failures = check(results)
    for failure in failures:
        print(f"MISSED: {failure}")
    print("all targets met" if not failures else f"{len(failures)} target(s) missed")
    return 1 if failures else 0


if __name__ == "__main__":
    started = time.perf_counter()
    status = main()
    print(f"(ran {time.perf_counter() - started:.0f} s)")
    sys.exit(status)
