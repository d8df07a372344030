"""Make a study package: CAM pairs of chosen eval samples, blinded, for the survey.

    python -m cams.generate --proposed runs/vib --baseline runs/base \\
        --classes waiting_room,television_studio --per-class 3 --only both-correct --out studies/demo

See docs/cams.md for every option and docs/study-package.md for the manifest. This module only parses
arguments; the package is built by `cams.package_builder.build_study`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch

from cams.base import TARGETS
from cams.loading import StudyInputError
from cams.package_builder import DEFAULT_QUESTION, StudyOptions, build_study
from cams.selection import FILTERS
from models.checkpoint import CheckpointError
from models.data import OPTION_NAMES, add_data_arguments
from survey.package import DEFAULT_DISTINCTION_QUESTION, TASKS, PackageError

UNSET = object()  # marks data options the user did not give (they then come from the checkpoint)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cams.generate",
        description="Precompute CAMs of two (or more) checkpoints for chosen samples and write a blinded "
        "study package (manifest.json + images) for the survey.",
        epilog="Data options you do not give are taken from the proposed checkpoint's recorded data options, "
        "so the eval set is rebuilt exactly as it was in training. See docs/cams.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    models = parser.add_argument_group("methods")
    models.add_argument(
        "--proposed",
        required=True,
        metavar="[NAME=]RUN_OR_CKPT[:gradcam]",
        help="the proposed model (run folder or .pt); named 'vib' for a VIB checkpoint, "
        "else 'proposed', unless NAME= is given",
    )
    models.add_argument(
        "--baseline",
        required=True,
        metavar="[NAME=]RUN_OR_CKPT[:gradcam]",
        help="the baseline model; named 'baseline' unless NAME= is given",
    )
    models.add_argument(
        "--method",
        action="append",
        default=[],
        metavar="NAME=RUN_OR_CKPT[:gradcam]",
        help="one more method to show (repeatable); ':gradcam' uses Grad-CAM instead of CAM",
    )
    add_data_arguments(parser)
    pick = parser.add_argument_group("selection (exactly one of --classes, --ids, --random)")
    how = pick.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--classes", help="comma-separated class keys or labels, e.g. waiting_room,television_studio"
    )
    how.add_argument("--ids", type=Path, metavar="FILE", help="file with one sample id per line")
    how.add_argument("--random", type=int, metavar="N", help="N samples drawn at random from the eval set")
    pick.add_argument("--per-class", type=int, default=3, help="samples per class with --classes")
    pick.add_argument(
        "--only",
        choices=FILTERS,
        default="any",
        help="keep samples both proposed and baseline classify correctly, or where they disagree",
    )
    pick.add_argument(
        "--seed", type=int, default=0, help="seed for sample order, catch trials and item order"
    )
    parser.add_argument(
        "--task",
        choices=TASKS,
        default="pairwise",
        help="pairwise: raters pick the better of two methods' maps; distinction (HIVE): raters see one "
        "method's maps for its model's top-4 classes and pick the one of the predicted class",
    )
    parser.add_argument(
        "--target",
        choices=TARGETS,
        default=None,
        help="pairwise: class each map explains, the ground truth (default) or each model's top-1 prediction; "
        "not for --task distinction (its maps explain the top-4 classes)",
    )
    parser.add_argument(
        "--attention-checks",
        type=int,
        default=0,
        metavar="N",
        help="add N catch trials where all maps but one are deliberately wrong (distinction: the answer's "
        "map is the labelled object's ground-truth mask, the others flat; needs data with masks)",
    )
    parser.add_argument("--name", help="study name [A-Za-z0-9_-] (None: the --out folder's name)")
    parser.add_argument(
        "--question",
        default=None,
        help=f"question shown to raters; pairwise: must contain {{label}} (default {DEFAULT_QUESTION!r}); "
        f"distinction: must not (default {DEFAULT_DISTINCTION_QUESTION!r})",
    )
    parser.add_argument("--out", type=Path, required=True, help="package folder to create")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing package at --out")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device for the models"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse with data options left unset unless given, so the rest come from the checkpoint."""
    parser = build_parser()
    namespace = argparse.Namespace(**{name: UNSET for name in OPTION_NAMES})
    return parser.parse_args(argv, namespace=namespace)


def study_options(args: argparse.Namespace, argv: list[str]) -> StudyOptions:
    """The parsed command line as the builder's typed options."""
    return StudyOptions(
        proposed=args.proposed,
        baseline=args.baseline,
        out=args.out,
        methods=tuple(args.method),
        data={name: getattr(args, name) for name in OPTION_NAMES if getattr(args, name) is not UNSET},
        classes=None if args.classes is None else tuple(args.classes.split(",")),
        ids=args.ids,
        random=args.random,
        per_class=args.per_class,
        only=args.only,
        seed=args.seed,
        target=args.target,
        attention_checks=args.attention_checks,
        name=args.name,
        question=args.question,
        task=args.task,
        overwrite=args.overwrite,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        progress=not args.no_progress,
        command=shlex.join(["python", "-m", "cams.generate", *argv]),
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = study_options(parse_args(argv), argv)
    try:
        out, manifest = build_study(options)
    except (StudyInputError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except PackageError as error:
        print(f"error: the package did not validate, nothing was written: {error}", file=sys.stderr)
        return 2
    checks = sum(item["attention_check"] for item in manifest["items"])
    print(
        f"wrote study package {out}: {len(manifest['items']) - checks} items + {checks} attention checks, "
        f"methods {', '.join(manifest['methods'])}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
