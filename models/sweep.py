"""The beta sweep of Table 1: `python -m models.sweep --out runs/sweep [train options]`.

Trains the baseline and one VIB model per beta (per seed), each as its own `models.train` process in
OUT/<name>. A run whose last.pt already reached its final epoch is skipped, an unfinished one is
resumed, and a failed one is reported at the end without stopping the others. Any option not
listed below goes to `models.train` unchanged (see `python -m models.train --help`).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from models.checkpoint import LAST_NAME, CheckpointError, read_checkpoint

PAPER_BETAS = "1,1e-1,1e-2,1e-3,1e-4,1e-5,1e-6,1e-7"
RESERVED = ("--out", "--head", "--beta", "--resume", "--seed")


@dataclass
class Planned:
    name: str
    head: str
    beta: float | None
    seed: int


@dataclass
class Outcome:
    name: str
    status: str  # trained, resumed, skipped, failed
    detail: str = ""
    minutes: float = 0.0


def parse_floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    if not values:
        raise argparse.ArgumentTypeError("the list is empty")
    return values


def parse_ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m models.sweep",
        description="Train the baseline and a VIB model per beta; other options go to models.train.",
        epilog="Example: python -m models.sweep --out runs/sweep --betas 1e-1,1e-3 --arch resnet18 --epochs 10",
        allow_abbrev=False,  # so --beta/--seed meant for models.train are not read as --betas/--seeds
    )
    parser.add_argument("--out", type=Path, required=True, help="sweep folder; each run gets OUT/<name>")
    parser.add_argument("--betas", type=parse_floats, default=PAPER_BETAS,
                        help=f"comma-separated betas (default: the paper's {PAPER_BETAS})")
    parser.add_argument("--seeds", type=parse_ints, default="0", help="comma-separated seeds, one run each (default: 0)")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the baseline runs")
    return parser


def plan(args: argparse.Namespace) -> list[Planned]:
    runs = []
    for seed in args.seeds:
        if args.baseline:
            runs.append(Planned(f"baseline-seed{seed}", "baseline", None, seed))
        runs += [Planned(f"vib-beta{beta:g}-seed{seed}", "vib", beta, seed) for beta in args.betas]
    return runs


def train_command(run: Planned, out: Path, passthrough: list[str]) -> list[str]:
    command = [sys.executable, "-m", "models.train", "--out", str(out / run.name), "--head", run.head,
               "--seed", str(run.seed), "--resume", *passthrough]
    if run.beta is not None:
        command += ["--beta", repr(run.beta)]
    return command


def progress_of(folder: Path) -> tuple[int, int] | None:
    """(epochs done, epochs planned) from the run's last.pt, or None when it has none."""
    if not (folder / LAST_NAME).is_file():
        return None
    state = read_checkpoint(folder / LAST_NAME)
    return int(state.epoch), int(state.epochs)


def execute(run: Planned, out: Path, passthrough: list[str]) -> Outcome:
    folder = out / run.name
    try:
        done = progress_of(folder)
    except CheckpointError as error:
        return Outcome(run.name, "failed", str(error))
    if done is not None and done[0] >= done[1]:
        return Outcome(run.name, "skipped", f"complete ({done[0]}/{done[1]} epochs)")
    print(f"== {run.name}" + (f" (resuming after epoch {done[0]})" if done else ""), flush=True)
    started = time.perf_counter()
    result = subprocess.run(train_command(run, out, passthrough), check=False)
    minutes = (time.perf_counter() - started) / 60
    if result.returncode != 0:
        return Outcome(run.name, "failed", f"models.train exited with {result.returncode}", minutes)
    return Outcome(run.name, "resumed" if done else "trained", "", minutes)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, passthrough = parser.parse_known_args(argv)
    reserved = [option for option in passthrough if option.split("=", 1)[0] in RESERVED]
    if reserved:
        parser.error(f"{', '.join(reserved)} is set by the sweep itself; use --out/--betas/--seeds")
    from models.train import build_parser as train_parser

    train_parser().parse_args([*passthrough, "--out", str(args.out)])  # fail now on a bad option, not in run 5
    runs = plan(args)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"sweep of {len(runs)} runs in {args.out}", flush=True)
    outcomes = []
    try:
        for run in runs:
            outcomes.append(execute(run, args.out, passthrough))
    except KeyboardInterrupt:
        print("interrupted; run the same command again to continue where it stopped", file=sys.stderr)
        return 130
    print("\nsweep summary:")
    for outcome in outcomes:
        print(f"  {outcome.name:28s} {outcome.status:8s} {outcome.minutes:6.1f} min  {outcome.detail}")
    failed = [o.name for o in outcomes if o.status == "failed"]
    if failed:
        print(f"{len(failed)} run(s) failed: {', '.join(failed)}; fix the cause and run the same command again",
              file=sys.stderr)
        return 1
    print(f"all {len(outcomes)} runs complete; make Table 1 with: python -m models.evaluate {args.out} "
          f"--out {args.out / 'table1'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
