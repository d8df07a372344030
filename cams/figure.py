"""The paper's figure from a study package (drawn by `cams.paper_figure`):

    python -m cams.figure studies/demo --out figure.png --items 6

It names the methods: for the paper, never for raters.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cams.paper_figure import default_figure_path, draw_figure
from survey.package import PackageError, load_package


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cams.figure",
        description="Draw the paper's figure (input | baseline | proposed, with labels and predictions) "
        "from a study package. It names the methods: for the paper, not for raters.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("package", type=Path, help="study package folder")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="PNG to write (default: PACKAGE-figure.png beside the package, never inside it)",
    )
    parser.add_argument("--items", type=int, default=6, help="rows (regular items, in manifest order)")
    args = parser.parse_args(argv)
    if args.items < 1:
        print("error: --items must be >= 1", file=sys.stderr)
        return 2
    try:
        manifest = load_package(args.package)
    except PackageError as error:
        print(f"error: {str(error).splitlines()[0]} {error.problems[0]}", file=sys.stderr)
        return 2
    out = draw_figure(args.package, manifest, args.items, args.out or default_figure_path(args.package))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
