"""The decision rule of docs/results.md as a command: does VIB move the CAM onto the object?

    python -m cams.decision studies/results/seed0 studies/results/seed1 studies/results/seed2 \\
        --control control --runs runs/results --out studies/results/decision.md

The rule itself (yes / no / inconclusive) is `cams.decision_rule`, the table `cams.reports`; this
module only parses arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cams.decision_rule import evaluate
from cams.loading import StudyInputError
from cams.reports import decision_markdown
from fileio import write_text_atomic


def parse_activity(texts: list[str]) -> dict[str, bool]:
    """`--active METHOD=0|1` flags -> {method: active}."""
    activity = {}
    for text in texts:
        name, _, flag = text.partition("=")
        if flag not in ("0", "1"):
            raise StudyInputError(f"--active {text!r}: expected METHOD=0 or METHOD=1")
        activity[name] = flag == "1"
    return activity


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cams.decision",
                                     description="The decision rule of docs/results.md: does VIB move the "
                                     "CAM onto the object? yes / no / inconclusive.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("packages", type=Path, nargs="+", help="one study package per seed, scored by cams.metrics")
    parser.add_argument("--control", default="control", help="method name of the other seed's baseline")
    parser.add_argument("--active", action="append", default=[], metavar="METHOD=0|1",
                        help="bottleneck verdict of METHOD over all its runs (1: active in every seed)")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table here (default: print)")
    args = parser.parse_args(argv)
    try:
        text = decision_markdown(evaluate(args.packages, args.control, parse_activity(args.active)),
                                 len(args.packages))
    except (StudyInputError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.out:
        write_text_atomic(args.out, text)
        print(f"wrote {args.out}")
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
