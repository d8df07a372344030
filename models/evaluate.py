"""Table 1: `python -m models.evaluate RUN... --out DIR`.

Evaluates every run (a run folder, a .pt file, or a sweep folder holding run folders) on the eval
set it was trained with and writes DIR/table1.md, DIR/table1.csv (columns: model, beta, top1,
relative_to_baseline, top5, mean_kl, run) and DIR/accuracy_vs_beta.png (log beta axis).
Accuracies are percentages; relative_to_baseline is top-1 as a percentage of the baseline's top-1
(the mean over baseline runs of the same architecture, as the paper's "ResNet-50 = 100").
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import tempfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from models.cli import DefaultsHelpFormatter, one_line
from models.checkpoint import BEST_NAME, LAST_NAME, CheckpointError, load_model
from models.data import BadImageError, build_datasets
from models.distributed import resolve_device
from models.engine import evaluate

COLUMNS = ("model", "beta", "top1", "relative_to_baseline", "top5", "mean_kl", "run")
ARCH_NAMES = {"resnet18": "ResNet-18", "resnet34": "ResNet-34", "resnet50": "ResNet-50"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m models.evaluate",
        description="Evaluate runs and write Table 1 (Markdown, CSV) and accuracy against beta (PNG).",
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", type=Path, help="run folders, .pt files or sweep folders")
    parser.add_argument("--out", type=Path, required=True, help="folder for table1.md, table1.csv, accuracy_vs_beta.png")
    parser.add_argument("--checkpoint", choices=("last", "best"), default="last",
                        help="which checkpoint of a run folder (best.pt was chosen on the eval set, so it flatters)")
    parser.add_argument("--data-root", type=Path, default=None, help="override the dataset folder stored in the runs")
    parser.add_argument("--batch-size", type=int, default=128, help="images per forward pass")
    parser.add_argument("--workers", type=int, default=2, help="data-loading worker processes")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")
    return parser


def find_checkpoints(paths: list[Path], which: str) -> list[Path]:
    """Checkpoint files for the given paths; a folder without checkpoints is searched one level down."""
    names = (LAST_NAME, BEST_NAME) if which == "last" else (BEST_NAME, LAST_NAME)
    found = []
    for path in paths:
        if path.is_file():
            found.append(path)
            continue
        if not path.is_dir():
            raise CheckpointError(f"run {path} not found; pass run folders, .pt files or a sweep folder")
        folders = [path] if any((path / n).is_file() for n in names) else sorted(
            p for p in path.iterdir() if p.is_dir() and any((p / n).is_file() for n in names))
        if not folders:
            raise CheckpointError(f"{path} holds no {LAST_NAME}/{BEST_NAME}, nor run folders that do")
        found += [next(f / n for n in names if (f / n).is_file()) for f in folders]
    return found


def evaluate_checkpoint(path: Path, args: argparse.Namespace, device: torch.device) -> dict:
    model, info = load_model(path, device)
    data = dict(info.data)
    if args.data_root is not None:
        data["data_root"] = str(args.data_root)
    datasets = build_datasets(data, progress=args.progress)
    if datasets.class_names != info.class_names:
        raise CheckpointError(f"the classes found in {data.get('data_root')} differ from those {path} was trained "
                              "on; pass the right --data-root")
    loader = DataLoader(datasets.val, batch_size=args.batch_size, num_workers=args.workers)
    metrics = evaluate(model, loader, device=device, progress=args.progress, desc=path.parent.name)
    return {"model": ("VIB-" if info.head == "vib" else "") + ARCH_NAMES.get(info.arch, info.arch),
            "arch": info.arch, "head": info.head, "beta": info.beta, "top1": 100 * metrics["top1"],
            "top5": 100 * metrics["top5"], "mean_kl": metrics["kl"] if info.head == "vib" else None,
            "run": str(path.parent if path.name in (LAST_NAME, BEST_NAME) else path), "data": info.data}


def add_relative(rows: list[dict]) -> None:
    """Top-1 as a percentage of the mean baseline top-1 of the same architecture (None without one)."""
    for row in rows:
        baselines = [r["top1"] for r in rows if r["head"] == "baseline" and r["arch"] == row["arch"]]
        reference = sum(baselines) / len(baselines) if baselines else None
        row["relative_to_baseline"] = 100 * row["top1"] / reference if reference else None


def sort_rows(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: (r["arch"], r["head"] != "baseline", -(r["beta"] or 0.0), r["run"]))


def fmt(value, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def markdown_table(rows: list[dict]) -> str:
    lines = ["| model | beta | top-1 % | % of baseline | top-5 % | mean KL | run |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        beta = "-" if row["beta"] is None else f"{row['beta']:.0e}"
        lines.append(f"| {row['model']} | {beta} | {fmt(row['top1'])} | {fmt(row['relative_to_baseline'])} | "
                     f"{fmt(row['top5'])} | {fmt(row['mean_kl'], 1) or '-'} | {row['run']} |")
    return "\n".join(lines) + "\n"


def csv_table(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(["" if row[c] is None else (f"{row[c]:.6g}" if isinstance(row[c], float) else row[c])
                         for c in COLUMNS])
    return buffer.getvalue()


def plot(rows: list[dict], path: Path) -> None:
    """Top-1 against beta on a log axis; baselines as dashed horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4), dpi=120)
    for arch in sorted({r["arch"] for r in rows}):
        vib = sorted((r for r in rows if r["arch"] == arch and r["head"] == "vib"), key=lambda r: r["beta"])
        if vib:
            line, = axis.plot([r["beta"] for r in vib], [r["top1"] for r in vib], "o", label=f"VIB-{ARCH_NAMES[arch]}")
            betas = sorted({r["beta"] for r in vib})
            means = [sum(r["top1"] for r in vib if r["beta"] == b) / sum(r["beta"] == b for r in vib) for b in betas]
            axis.plot(betas, means, "-", color=line.get_color())
        baselines = [r["top1"] for r in rows if r["arch"] == arch and r["head"] == "baseline"]
        if baselines:
            axis.axhline(sum(baselines) / len(baselines), linestyle="--", color="grey",
                         label=f"{ARCH_NAMES[arch]} (baseline)")
    if any(r["head"] == "vib" for r in rows):
        axis.set_xscale("log")
    axis.set_xlabel("beta")
    axis.set_ylabel("top-1 accuracy (%)")
    axis.set_title("Accuracy against beta")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write_outputs(rows: list[dict], out: Path) -> None:
    """All three files land together: written in a temporary folder, then moved into place."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".table1-") as staging:
        staging = Path(staging)
        (staging / "table1.md").write_text(markdown_table(rows), encoding="utf-8")
        (staging / "table1.csv").write_text(csv_table(rows), encoding="utf-8")
        plot(rows, staging / "accuracy_vs_beta.png")
        for name in ("table1.md", "table1.csv", "accuracy_vs_beta.png"):
            os.replace(staging / name, out / name)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        device = resolve_device(args.device)
        checkpoints = find_checkpoints(args.runs, args.checkpoint)
        rows = [evaluate_checkpoint(path, args, device) for path in checkpoints]
        if len({repr(sorted(r["data"].items())) for r in rows}) > 1:
            print("warning: the runs were trained on different data options; their accuracies are not comparable",
                  file=sys.stderr)
        add_relative(rows)
        rows = sort_rows(rows)
        write_outputs(rows, args.out)
    except (CheckpointError, BadImageError, ValueError, OSError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 1
    print(markdown_table(rows), end="")
    print(f"wrote {args.out / 'table1.md'}, {args.out / 'table1.csv'}, {args.out / 'accuracy_vs_beta.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
