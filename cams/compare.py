"""Pool the metrics of several study packages (one per training seed) into one comparison table.

    python -m cams.compare studies/seed0 studies/seed1 studies/seed2 --out results.md

Each package's metrics are read from `PACKAGE-metrics/metrics.csv` (what `python -m cams.metrics
PACKAGE` writes by default; `--metrics-suffix` changes it). Every method is compared with the
baseline, per package (paired over items, bootstrap CI) and pooled over packages with a two-level
bootstrap (resample packages, then items within each), because seeds, not only items, vary: a
difference that one seed shows and the others do not is not a property of the method. The table is
`cams.reports.pooled_markdown`; this module only parses arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cams.loading import StudyInputError
from cams.metrics_files import DEFAULT_SUFFIX, load_scored_packages
from cams.reports import pooled_markdown
from fileio import write_text_atomic


def compare(packages: list[Path], suffix: str = DEFAULT_SUFFIX, both_correct: bool = False) -> str:
    """The pooled comparison of `packages` as Markdown."""
    return pooled_markdown(load_scored_packages(packages, suffix), both_correct)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cams.compare",
        description="Pool cams.metrics results of several packages (e.g. one per seed): every method vs the "
        "baseline, per package and pooled with a two-level bootstrap.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "packages", type=Path, nargs="+", help="study packages, each already scored by cams.metrics"
    )
    parser.add_argument(
        "--metrics-suffix",
        default=DEFAULT_SUFFIX,
        help="metrics folder of PACKAGE is PACKAGE<suffix> (cams.metrics' default)",
    )
    parser.add_argument(
        "--both-correct",
        action="store_true",
        help="only items that every model in the package classifies correctly",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown here (default: print it)")
    args = parser.parse_args(argv)
    try:
        text = compare(args.packages, args.metrics_suffix, args.both_correct)
    except StudyInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.out:
        write_text_atomic(args.out, text)
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
