"""`make results`: the experiment of docs/results.md, end to end (design and decision rule are there).

Steps, each one of the user-facing commands run as a subprocess and skipped when its output exists:
1. train 3 seeds x (baseline, VIB at each of RESULT_BETAS) plus the accuracy-vs-beta curve's extra betas
   (seed 0), `--jobs` runs at a time with one thread each;
2. per seed, one study package (cams.generate) with the baseline, each VIB and the control (the baseline
   of a fourth seed, CONTROL_SEED, the same for every package: a control taken from the other seeds'
   baselines would cancel out when pooled over seeds), scored by cams.metrics;
3. the bottleneck diagnostics of every run, the accuracy-vs-beta table, and cams.decision's
   yes / no / inconclusive table, written to OUT/results.md and printed.
"""
from __future__ import annotations

import argparse
import csv
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fileio import write_text_atomic

SEEDS = (0, 1, 2)
CONTROL_SEED = 3  # the baseline-vs-baseline control: one more baseline, compared with each seed's baseline
RESULT_BETAS = ("1e-3", "1e-2")          # KL summed over the 512 dimensions (docs/model.md)
CURVE_BETAS = ("1e-4", "1e-3", "1e-2", "1e-1", "1")
DATA = ["--data", "synthetic", "--image-size", "112", "--num-classes", "5", "--train-size", "400",
        "--val-size", "150", "--data-seed", "0"]
TRAIN = ["--arch", "resnet18", *DATA, "--epochs", "5", "--batch-size", "32", "--lr", "0.05", "--warmup-epochs", "1",
         "--threads", "1", "--workers", "0", "--no-progress"]
ITEMS = 60
DIAGNOSTICS = ("sigma_p10", "sigma_p50", "sigma_p90", "sigma_cv", "sigma_to_mu_spread", "attn_entropy",
               "attn_temperature", "kl_mu", "kl_sigma", "val_acc_mu", "val_acc_sampled")


@dataclass(frozen=True)
class Run:
    head: str
    beta: str | None
    seed: int

    @property
    def name(self) -> str:
        return f"baseline-seed{self.seed}" if self.head == "baseline" else f"vib-beta{self.beta}-seed{self.seed}"

    @property
    def method(self) -> str:
        return "baseline" if self.head == "baseline" else f"vib-beta{self.beta}"


def planned_runs() -> list[Run]:
    runs = [Run("baseline", None, s) for s in (*SEEDS, CONTROL_SEED)]
    runs += [Run("vib", b, s) for s in SEEDS for b in RESULT_BETAS]
    runs += [Run("vib", b, 0) for b in CURVE_BETAS if b not in RESULT_BETAS]
    return runs


def command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", *args]


def run_logged(cmd: list[str], log: Path | None = None) -> None:
    print("$ " + shlex.join(cmd), flush=True)
    if log is None:
        result = subprocess.run(cmd)
    else:
        with open(log, "a", encoding="utf-8") as stream:
            result = subprocess.run(cmd, stdout=stream, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        sys.exit(f"results: step failed (exit {result.returncode}): {shlex.join(cmd)}"
                 + (f"; see {log}" if log else ""))


def metrics_rows(folder: Path) -> list[dict]:
    path = folder / "metrics.csv"
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def complete(folder: Path, epochs: int) -> bool:
    rows = metrics_rows(folder)
    return (folder / "best.pt").is_file() and len(rows) >= epochs


def train(runs_dir: Path, jobs: int) -> None:
    epochs = int(TRAIN[TRAIN.index("--epochs") + 1])
    todo = [r for r in planned_runs() if not complete(runs_dir / r.name, epochs)]
    print(f"{len(planned_runs()) - len(todo)} run(s) already complete, {len(todo)} to train, {jobs} at a time "
          f"(logs: {runs_dir}/NAME.log)", flush=True)

    def one(run: Run) -> None:
        head = ["--head", "vib", "--beta", run.beta] if run.head == "vib" else []
        started = time.monotonic()
        run_logged(command(["models.train", *TRAIN, "--seed", str(run.seed), *head, "--out",
                            str(runs_dir / run.name), "--resume"]), runs_dir / f"{run.name}.log")
        print(f"trained {run.name} in {(time.monotonic() - started) / 60:.1f} min", flush=True)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(one, todo))


def score(runs_dir: Path, studies: Path, items: int = ITEMS, jobs: int = 2) -> list[Path]:
    """One package per seed (baseline, the VIBs, the control), scored by cams.metrics; seeds in parallel."""
    def one(seed: int) -> Path:
        package = studies / f"seed{seed}"
        log = studies / f"seed{seed}.log"
        if not (package / "manifest.json").is_file():
            vibs = [Run("vib", b, seed) for b in RESULT_BETAS]
            control = runs_dir / Run("baseline", None, CONTROL_SEED).name
            run_logged(command(["cams.generate", "--baseline", f"baseline={runs_dir / f'baseline-seed{seed}'}",
                                "--proposed", f"{vibs[0].method}={runs_dir / vibs[0].name}",
                                *[a for v in vibs[1:] for a in ("--method", f"{v.method}={runs_dir / v.name}")],
                                "--method", f"control={control}", *DATA, "--random", str(items), "--seed", "0",
                                "--target", "truth", "--no-progress", "--out", str(package)]), log)
        if not (studies / f"seed{seed}-metrics" / "metrics.csv").is_file():
            run_logged(command(["cams.metrics", str(package), "--steps", "10", "--no-progress"]), log)
        return package

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, SEEDS))


def diagnostics_table(runs_dir: Path) -> tuple[str, dict[str, bool]]:
    """One row per run: final accuracy and the bottleneck diagnostics; and per VIB method whether every
    seed ended active."""
    lines = ["| run | epochs | val acc | " + " | ".join(DIAGNOSTICS) + " | verdict |",
             "|---|---|---|" + "---|" * (len(DIAGNOSTICS) + 1)]
    active: dict[str, bool] = {}
    for run in planned_runs():
        rows = metrics_rows(runs_dir / run.name)
        if not rows:
            lines.append(f"| {run.name} | 0 | not trained |" + " |" * (len(DIAGNOSTICS) + 1))
            continue
        last = rows[-1]
        cells = [f"{float(last[c]):.3g}" if last.get(c) not in (None, "") else "" for c in DIAGNOSTICS]
        verdict = "" if run.head == "baseline" else ("active" if last.get("active") == "1" else "INACTIVE")
        if run.head == "vib" and run.beta in RESULT_BETAS:
            active[run.method] = active.get(run.method, True) and verdict == "active"
        lines.append(f"| {run.name} | {len(rows)} | {float(last['val_acc']):.3f} | " + " | ".join(cells)
                     + f" | {verdict} |")
    return "\n".join(lines) + "\n", active


def curve_table(runs_dir: Path) -> str:
    """Accuracy vs beta at seed 0 (our Table 1), relative to the baseline, with the verdict."""
    base = metrics_rows(runs_dir / "baseline-seed0")
    lines = ["| model | beta (sum) | beta (mean, x512) | epochs | val acc fc(mu) | relative | val acc sampled z | "
             "sigma p50 | sigma / spread of mu | bottleneck |", "|---|---|---|---|---|---|---|---|---|---|"]
    reference = float(base[-1]["val_acc"]) if base else float("nan")
    lines.append(f"| ResNet-18 | - | - | {len(base)} | {reference:.3f} | 100.0 | - | - | - | - |")
    for beta in CURVE_BETAS:
        rows = metrics_rows(runs_dir / Run("vib", beta, 0).name)
        if not rows:
            lines.append(f"| VIB-ResNet-18 | {beta} | | 0 | not trained | | | | | |")
            continue
        last = rows[-1]
        acc = float(last["val_acc"])
        lines.append(f"| VIB-ResNet-18 | {beta} | {float(beta) * 512:g} | {len(rows)} | {acc:.3f} | "
                     f"{100 * acc / reference:.1f} | "
                     f"{float(last['val_acc_sampled']):.3f} | {float(last['sigma_p50']):.3g} | "
                     f"{float(last['sigma_to_mu_spread']):.3g} | "
                     f"{'active' if last['active'] == '1' else 'INACTIVE'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.results", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("runs/results"), help="run folders")
    parser.add_argument("--studies", type=Path, default=Path("studies/results"), help="packages and the report")
    parser.add_argument("--jobs", type=int, default=2, help="training runs at a time (one thread each)")
    parser.add_argument("--items", type=int, default=ITEMS, help="random validation images per seed's package")
    parser.add_argument("--no-train", action="store_true",
                        help="score the checkpoints as they are (best.pt of unfinished runs too); the report "
                             "says how many epochs each run had")
    args = parser.parse_args(argv)
    started = time.monotonic()
    args.runs.mkdir(parents=True, exist_ok=True)
    args.studies.mkdir(parents=True, exist_ok=True)
    print("== 1/3 train", flush=True)
    if args.no_train:
        print("--no-train: using the checkpoints as they are", flush=True)
    else:
        train(args.runs, args.jobs)
    print("== 2/3 CAM packages and metrics, one per seed", flush=True)
    packages = score(args.runs, args.studies, args.items, args.jobs)
    print("== 3/3 diagnostics, accuracy vs beta, decision", flush=True)
    diagnostics, active = diagnostics_table(args.runs)
    decision = args.studies / "decision.md"
    run_logged(command(["cams.decision", *map(str, packages), "--control", "control", "--out", str(decision),
                        *[a for m, ok in active.items() for a in ("--active", f"{m}={int(ok)}")]]))
    for both, name in ((False, "all"), (True, "both-correct")):
        run_logged(command(["cams.compare", *map(str, packages), *(["--both-correct"] if both else []),
                            "--out", str(args.studies / f"compare-{name}.md")]))
    report = (f"# make results ({(time.monotonic() - started) / 60:.1f} min)\n\n## Bottleneck diagnostics, every run "
              f"(last epoch)\n\n{diagnostics}\n## Accuracy vs beta (seed 0)\n\n{curve_table(args.runs)}\n"
              f"## Decision\n\n{decision.read_text()}")
    write_text_atomic(args.studies / "results.md", report)
    print(report)
    print(f"wrote {args.studies / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
