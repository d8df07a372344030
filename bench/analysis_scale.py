"""Analysis scale: time `analysis.report` (mixed models aside) on 10k, 100k and 1M simulated votes.

    .venv/bin/python bench/analysis_scale.py [--sizes 10000 100000 1000000] [--bootstrap 2000]
    .venv/bin/python bench/analysis_scale.py --smoke    # 10k votes, 100 replicates: does it still run?

Each size is a crossed study (contract D) written as a votes CSV, then loaded, analysed and
rendered exactly as `python -m analysis.report --no-mixed` does. Prints seconds per phase and the
ratios against the 100k baseline measured in the same run; cost must grow close to linearly
(1M / 100k <= 12x).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


from analysis.exclusions import ExclusionRules
from testing.benchmark import add_smoke_flag, print_header
from analysis.load import load_votes
from analysis.report import write_report
from analysis.summary import AnalysisOptions, run_analysis
from survey.votes_format import write_votes_csv
from testing.simulated_votes import simulate_votes

#: votes -> (raters, items): both grow, as when a study gets more images and more people.
DESIGNS = {10_000: (100, 100), 100_000: (400, 250), 1_000_000: (1000, 1000)}
SMOKE = ["--sizes", "10000", "--bootstrap", "100", "--repeat", "1"]


def time_report(csv: Path, out: Path, options: AnalysisOptions) -> dict[str, float]:
    times = {}
    start = time.perf_counter()
    votes = load_votes(csv)
    times["load"] = time.perf_counter() - start
    start = time.perf_counter()
    analysis = run_analysis(votes, ExclusionRules(), options)
    times["analyse"] = time.perf_counter() - start
    start = time.perf_counter()
    write_report(analysis, out)
    times["write"] = time.perf_counter() - start
    times["total"] = sum(times.values())
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(DESIGNS), choices=sorted(DESIGNS))
    parser.add_argument(
        "--bootstrap", type=int, default=2000, help="bootstrap replicates (as the report's default)"
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs per size below 1M (best is kept)")
    add_smoke_flag(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args = parser.parse_args([*SMOKE, *(argv if argv is not None else sys.argv[1:])])
    print_header("analysis scale (bench/analysis_scale.py)")
    options = AnalysisOptions(replicates=args.bootstrap, mixed=False)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            raters, items = DESIGNS[size]
            csv = write_votes_csv(
                simulate_votes(raters, items, 0.65, 0.5, 1.0, seed=size, no_preference=0.02),
                Path(tmp) / f"votes_{size}.csv",
            )
            runs = [
                time_report(csv, Path(tmp) / f"report_{size}_{k}", options)
                for k in range(1 if size >= 1_000_000 else args.repeat)
            ]
            results[size] = min(runs, key=lambda t: t["total"])
            t = results[size]
            print(
                f"{size:>9,} votes ({raters} raters x {items} items): load {t['load']:.2f}s, "
                f"analyse {t['analyse']:.2f}s, write {t['write']:.2f}s, total {t['total']:.2f}s",
                flush=True,
            )
    if 100_000 in results:
        base = results[100_000]["total"]
        for size, t in results.items():
            print(f"ratio {size:,} / 100,000: {t['total'] / base:.2f}x (votes x{size / 100_000:g})")
        if 1_000_000 in results:
            ratio = results[1_000_000]["total"] / base
            print(f"1M / 100k = {ratio:.2f}x -> {'OK' if ratio <= 12 else 'TOO SLOW'} (limit 12x)")
            return 0 if ratio <= 12 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
