"""Automatic explanation metrics of a study package, without any person:

    python -m cams.metrics studies/demo [--out DIR] [--sanity]

Per regular item (attention checks are skipped) and method: every metric of the registry
(`cams.metrics.METRICS`): pointing game and energy inside the mask (items with a mask), deletion and
insertion AUC (the checkpoints named in the manifest's provenance, checked by sha256), Gini sparseness
and entropy. Writes `metrics.csv` (one row per item and method) and `metrics.md` (per-method means with
bootstrap CIs, and the paired difference proposed - baseline). `--sanity` adds the model-randomisation
test of Adebayo et al. (`sanity.csv` and a table in metrics.md). The work is `cams.scoring`, the
Markdown `cams.reports`, the files `cams.metrics_files`; this module only parses arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from cams.loading import StudyInputError
from cams.metrics import COLUMNS, DEFAULT_STEPS
from cams.metrics_files import METRICS_CSV, METRICS_MD, SANITY_COLUMNS, SANITY_CSV, metrics_dir, write_csv
from cams.reports import metrics_markdown
from cams.scoring import load_checkpoints, read_items, sanity_rows, score
from fileio import write_text_atomic
from models.checkpoint import CheckpointError
from survey.package import CamsSection, PackageError, load_package


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cams.metrics",
        description="Automatic explanation metrics of a study package: pointing game, energy in mask, "
        "deletion/insertion AUC, Gini, entropy (metrics.csv + metrics.md); --sanity adds "
        "the model-randomisation test.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("package", type=Path, help="study package folder (from python -m cams.generate)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for metrics.csv/metrics.md (default: PACKAGE-metrics beside the package)",
    )
    parser.add_argument("--sanity", action="store_true", help="also run the model-randomisation sanity check")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="deletion/insertion steps per curve")
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="use this checkpoint for method NAME instead of the one in the manifest's provenance",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the randomised weights (--sanity)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def run(args: argparse.Namespace) -> tuple[Path, list[dict]]:
    """Score the package and write the files; returns the output folder and the metrics rows."""
    if args.steps < 1 or args.batch_size < 1:
        raise StudyInputError("--steps and --batch-size must be >= 1")
    try:
        manifest = load_package(args.package)
        section = CamsSection.from_manifest(manifest, args.package)
    except PackageError as error:
        raise StudyInputError(str(error).splitlines()[0] + " " + str(error.problems[0])) from None
    models = load_checkpoints(manifest, args.checkpoint, args.device)
    infos = {m: info for m, (_, info) in models.items()}
    items = read_items(args.package, manifest, section, infos)
    methods = list(manifest["methods"])
    missing = [m for m in methods if m not in models]
    if missing:
        print(
            f"warning: no checkpoint for {', '.join(missing)}: deletion/insertion left empty"
            + ("" if not args.sanity else " and no sanity check")
            + "; pass --checkpoint NAME=PATH",
            file=sys.stderr,
        )
    progress = not args.no_progress
    rows = score(items, methods, models, args.steps, args.device, args.batch_size, progress)
    sanity = None
    if args.sanity:
        sanity = sanity_rows(items, methods, models, section, args.device, args.batch_size, args.seed, progress)
    out = args.out or metrics_dir(args.package)
    write_csv(out / METRICS_CSV, rows, COLUMNS)
    if sanity is not None:
        write_csv(out / SANITY_CSV, sanity, SANITY_COLUMNS)
    scored_with = {m: str(info.path) for m, info in infos.items()}
    write_text_atomic(out / METRICS_MD, metrics_markdown(manifest, section, rows, items, args.steps, sanity, scored_with))
    return out, rows


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        out, rows = run(args)
    except (StudyInputError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: cannot write metrics: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out / METRICS_CSV} ({len(rows)} rows) and {out / METRICS_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
