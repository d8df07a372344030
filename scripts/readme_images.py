"""Make the README's pictures from a real `make demo` run: the CAM figure of the demo study
(`python -m cams.figure`) and screenshots of the rater page (desktop, and a 390 x 844 phone for
docs/rater-app.md) in Debian's Chromium (Playwright).

    make demo            # once, so that studies/demo and data/survey.db exist
    python -m scripts.readme_images
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study-dir", type=Path, default=Path("studies/demo"), help="the demo's study package")
    parser.add_argument("--db", default="sqlite:///data/survey.db", help="survey database holding the study")
    parser.add_argument("--out", type=Path, default=Path("docs/img"), help="folder for the PNGs")
    args = parser.parse_args(argv)
    if not (args.study_dir / "manifest.json").is_file():
        sys.exit(f"readme_images: no study package at {args.study_dir}; run `make demo` first")
    args.out.mkdir(parents=True, exist_ok=True)
    steps = [
        [sys.executable, "-m", "cams.figure", str(args.study_dir), "--items", "4", "--out", str(args.out / "cam-figure.png")],
        [sys.executable, "-m", "testing.browser", "--db", args.db, "--study", "demo",
         "--out", str(args.out / "rater-page.png")],
        [sys.executable, "-m", "testing.browser", "--db", args.db, "--study", "demo", "--phone",
         "--out", str(args.out / "rater-phone.png")],
    ]
    for cmd in steps:
        if subprocess.run(cmd).returncode != 0:
            sys.exit(f"readme_images: failed: {' '.join(cmd)}")


if __name__ == "__main__":
    main()
