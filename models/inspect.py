"""Is a run's VIB bottleneck active? `python -m models.inspect RUN [--recompute]`.

Prints the per-epoch bottleneck diagnostics stored in the checkpoint (sigma quantiles, how much sigma
varies across images, attention entropy and temperature, KL per dimension split into its mu and sigma
parts, accuracy of fc(mu) and of a sampled z) and the verdict active / inactive under the thresholds
of models/diagnostics.py (docs/model.md). A checkpoint written before the diagnostics existed, or
`--recompute`, is measured afresh on its validation data. Exit status 0 either way; 1 on bad input.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from models.checkpoint import CheckpointError, CheckpointInfo, load_model
from models.cli import DefaultsHelpFormatter, one_line
from models.data import BadImageError, build_datasets
from models.diagnostics import DIAGNOSTIC_COLUMNS, MAX_IMAGES, Verdict, bottleneck_diagnostics, bottleneck_verdict
from models.precision import PRECISIONS, resolve_precision

SHOWN = ("epoch", "val_acc", *DIAGNOSTIC_COLUMNS[:-1])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m models.inspect", description=__doc__.split("\n")[0],
                                     formatter_class=DefaultsHelpFormatter)
    parser.add_argument("run", type=Path, help="run folder (its best.pt, else last.pt) or a .pt checkpoint")
    parser.add_argument("--recompute", action="store_true",
                        help="measure the diagnostics now on the checkpoint's validation data")
    parser.add_argument("--data-root", type=Path, default=None, help="dataset folder, if it moved since training")
    parser.add_argument("--max-images", type=int, default=MAX_IMAGES, help="validation images for --recompute")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size for --recompute")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="precision for --recompute")
    return parser


def format_table(rows: list[dict]) -> str:
    """Markdown table of the diagnostic columns, one row per epoch (blank cells where absent)."""
    def cell(value) -> str:
        if value in (None, ""):
            return ""
        return f"{value:.4g}" if isinstance(value, float) else str(value)
    lines = ["| " + " | ".join(SHOWN) + " |", "|" + "---|" * len(SHOWN)]
    lines += ["| " + " | ".join(cell(row.get(name)) for name in SHOWN) + " |" for row in rows]
    return "\n".join(lines)


def recompute(model, info: CheckpointInfo, args: argparse.Namespace) -> dict:
    data = dict(info.data)
    if args.data_root is not None:
        data["data_root"] = str(args.data_root)
    datasets = build_datasets(data, progress=False)
    loader = DataLoader(datasets.val, batch_size=args.batch_size, shuffle=False, num_workers=0)
    device = torch.device(args.device)
    return bottleneck_diagnostics(model, loader, device=device, precision=resolve_precision(args.precision, device),
                                  max_images=args.max_images)


def inspect_run(args: argparse.Namespace) -> Verdict | None:
    """Print the report for `args.run`; returns the verdict (None for a baseline)."""
    model, info = load_model(args.run, args.device)
    print(f"{info.path}: {info.head} {info.arch}, beta {info.beta}, epoch {info.epoch}/{info.epochs}, "
          f"options {info.options}")
    if info.head != "vib":
        print("baseline head: no bottleneck to inspect")
        return None
    rows = [row for row in info.metrics if row.get("sigma_p50") not in (None, "")]
    if rows:
        print(format_table(rows))
    current = rows[-1] if rows and not args.recompute else None
    if current is None:
        print("measuring the diagnostics on the validation data" +
              (" (the checkpoint predates them)" if not rows else ""))
        current = {"epoch": info.epoch, **recompute(model, info, args)}
        print(format_table([current]))
    verdict = bottleneck_verdict(current, float(info.options.get("attention_temperature", 5.0)))
    print(verdict.describe())
    return verdict


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        inspect_run(args)
    except (CheckpointError, BadImageError, ValueError, OSError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
