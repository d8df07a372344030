"""`make demo`: the whole idea in one command, on a 2-core CPU.

Each step is one of the user-facing commands (the same a researcher would type), run as a subprocess,
and skipped when its output already exists, so a second `make demo` has the survey up within seconds.
Steps: train a baseline and a VIB ResNet on synthetic scenes -> accuracy table and the VIB bottleneck's
verdict -> study package of CAM pairs (with attention checks) -> automatic metrics and how different
the two models' maps are -> import into the survey DB -> serve the survey.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from survey.package import resolve_inside

STUDY = "demo"


@dataclass(frozen=True)
class DemoSize:
    """Everything that decides how long the demo trains; `tiny` is for the end-to-end test."""

    image_size: int
    num_classes: int
    train_size: int
    val_size: int
    epochs: int
    batch_size: int
    lr: float
    beta: float
    study_items: int
    attention_checks: int


# 112 px gives 4x4 layer-4 maps: at 64 px (2x2) the CAMs cannot localise anything (docs/training.md).
# beta 1e-2 with the KL summed over 512 dimensions, constant from the first step: the bottleneck ends
# active in 5 epochs (docs/results.md has the accuracy-vs-beta curve and each beta's verdict).
FULL = DemoSize(image_size=112, num_classes=10, train_size=1000, val_size=300, epochs=5, batch_size=32,
                lr=0.02, beta=0.01, study_items=15, attention_checks=2)
TINY = DemoSize(image_size=32, num_classes=3, train_size=64, val_size=48, epochs=1, batch_size=32,
                lr=0.02, beta=0.01, study_items=4, attention_checks=1)


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    """Run one user-facing command, echoing it so the demo doubles as a tutorial."""
    print("$ " + shlex.join(cmd), flush=True)
    result = subprocess.run(cmd, env=env)
    if result.returncode != 0:
        sys.exit(f"demo: step failed (exit {result.returncode}): {shlex.join(cmd)}")


def data_args(size: DemoSize) -> list[str]:
    return ["--data", "synthetic", "--image-size", str(size.image_size), "--num-classes", str(size.num_classes),
            "--train-size", str(size.train_size), "--val-size", str(size.val_size), "--data-seed", "0"]


def train(run_dir: Path, size: DemoSize, head: str) -> None:
    if (run_dir / "best.pt").exists():
        print(f"reusing {run_dir} (delete it to retrain)")
        return
    cmd = [sys.executable, "-m", "models.train", "--arch", "resnet18", "--head", head, "--epochs", str(size.epochs),
           "--batch-size", str(size.batch_size), "--lr", str(size.lr), "--warmup-epochs", "1", "--seed", "0",
           "--out", str(run_dir), *data_args(size)]
    if head == "vib":
        cmd += ["--beta", str(size.beta)]
    run(cmd)


def pointing_game_summary(metrics_csv: Path) -> str:
    """Mean pointing-game hit rate per method, read from `cams.metrics`' CSV."""
    hits: dict[str, list[float]] = {}
    with metrics_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("pointing_game") not in (None, ""):
                hits.setdefault(row["method"], []).append(float(row["pointing_game"]))
    return ", ".join(f"{method} {sum(v) / len(v):.2f}" for method, v in sorted(hits.items()))


def map_difference(study_dir: Path, metrics_csv: Path, first: str = "vib", second: str = "baseline") -> str:
    """Mean |map_first - map_second| over the study's items (heatmaps in [0, 1]), and each one's pointing
    game: whether the two models' maps differ at all, next to how often each peaks on the object."""
    manifest = json.loads((study_dir / "manifest.json").read_text(encoding="utf-8"))
    differences = []
    for item in manifest["items"]:
        heatmaps = item.get("heatmaps", {})
        if item.get("attention_check") or first not in heatmaps or second not in heatmaps:
            continue
        a, b = (np.load(resolve_inside(study_dir, heatmaps[m]), allow_pickle=False).astype(np.float32)
                for m in (first, second))
        differences.append(float(np.abs(a - b).mean()))
    if not differences:
        return "no items with heatmaps of both models"
    return (f"mean |map_{first} - map_{second}| = {np.mean(differences):.3f} over {len(differences)} items "
            f"(0: identical maps, maps scaled to [0, 1]); pointing game: {pointing_game_summary(metrics_csv)}")


def build(root: Path, size: DemoSize, db_url: str) -> None:
    runs, study_dir = root / "runs" / "demo", root / "studies" / STUDY
    metrics_dir = root / "studies" / f"{STUDY}-metrics"

    banner("1/5 Train a baseline and a VIB ResNet-18 on synthetic scenes")
    train(runs / "baseline", size, "baseline")
    train(runs / "vib", size, "vib")

    banner("2/5 Accuracy table (the paper's Table 1, demo-sized)")
    table = runs / "table" / "table1.md"
    checkpoints = [runs / name / "best.pt" for name in ("baseline", "vib")]
    if table.exists() and all(table.stat().st_mtime > ckpt.stat().st_mtime for ckpt in checkpoints):
        print(table.read_text().rstrip())
    else:
        run([sys.executable, "-m", "models.evaluate", str(runs / "baseline"), str(runs / "vib"),
             "--out", str(runs / "table")])
    print("Is the VIB's bottleneck doing anything? (thresholds: docs/model.md)")
    run([sys.executable, "-m", "models.inspect", str(runs / "vib")])

    banner("3/5 Study package of CAM pairs, with attention checks")
    if (study_dir / "manifest.json").exists():
        print(f"reusing {study_dir}")
    else:
        run([sys.executable, "-m", "cams.generate", "--proposed", f"vib={runs / 'vib'}",
             "--baseline", f"baseline={runs / 'baseline'}", *data_args(size), "--random", str(size.study_items),
             "--only", "both-correct", "--attention-checks", str(size.attention_checks), "--seed", "0",
             "--name", STUDY, "--out", str(study_dir)])

    banner("4/5 Automatic explanation metrics")
    if not (metrics_dir / "metrics.csv").exists():
        run([sys.executable, "-m", "cams.metrics", str(study_dir), "--out", str(metrics_dir)])
    print(f"pointing game (share of maps peaking on the class object): "
          f"{pointing_game_summary(metrics_dir / 'metrics.csv')}")
    print("how different are the two models' maps: " + map_difference(study_dir, metrics_dir / "metrics.csv"))

    banner("5/5 Import the study into the survey database")
    run([sys.executable, "-m", "survey.study", "import", str(study_dir), "--db", db_url])


def serve_command(db_url: str, port: int, environ: dict[str, str]) -> tuple[list[str], dict[str, str], str]:
    """The command, environment and admin password of the demo's survey server.

    The demo is the one place where the published password ``demo-admin`` works: ``SURVEY_DEMO=1``
    plus a server bound to 127.0.0.1 (survey.admin_auth.is_demo). A password of your own in
    ``SURVEY_ADMIN_PASSWORD`` is used instead and must pass the usual rules (12+ characters).
    """
    from survey.admin_auth import DEMO_ENV, DEMO_PASSWORD

    password = environ.get("SURVEY_ADMIN_PASSWORD") or DEMO_PASSWORD
    env = {**environ, "SURVEY_DB_URL": db_url, "SURVEY_STUDY": STUDY, "SURVEY_ADMIN_PASSWORD": password,
           DEMO_ENV: "1"}
    cmd = [sys.executable, "-m", "streamlit", "run", "survey/app.py", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true"]
    return cmd, env, password


def serve(db_url: str, port: int) -> None:
    """Start the rater app in the foreground on localhost; Ctrl+C stops it."""
    cmd, env, password = serve_command(db_url, port, dict(os.environ))
    banner("The survey is starting")
    print(f"  Rater link:  http://localhost:{port}/?study={STUDY}&rater=alice")
    print(f"  Admin page:  http://localhost:{port}/admin   (password: {password})")
    print("  Simulated votes:  make demo-votes      Analysis report:  make report")
    print("  Stop:        Ctrl+C\n", flush=True)
    try:
        subprocess.run(cmd, env=env)
    except KeyboardInterrupt:
        print("\nsurvey stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("."), help="where runs/, studies/ and data/ go (default: .)")
    parser.add_argument("--db", default=None, help="survey database URL (default: sqlite:///ROOT/data/survey.db)")
    parser.add_argument("--port", type=int, default=8501, help="port of the survey (default: 8501)")
    parser.add_argument("--tiny", action="store_true", help="a seconds-long run for the end-to-end test")
    parser.add_argument("--no-serve", action="store_true", help="build everything but do not start the survey")
    args = parser.parse_args(argv)
    db_url = args.db or f"sqlite:///{(args.root / 'data' / 'survey.db').resolve()}"
    (args.root / "data").mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    build(args.root, TINY if args.tiny else FULL, db_url)
    print(f"\ndemo built in {time.monotonic() - started:.0f} s")
    if not args.no_serve:
        serve(db_url, args.port)


if __name__ == "__main__":
    main()
