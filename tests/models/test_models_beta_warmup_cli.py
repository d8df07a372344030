"""`--beta-warmup-epochs` end to end: the train CLI ramps beta per step and logs it per epoch.

Apart from tests/models/test_models_vib_semantics.py because it trains (slow): mutation testing of
the VIB head (make mutate MODULES=vib) uses the fast semantic tests only.
"""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from models.train import main as train_main


def test_beta_warmup_epochs_flag_ramps_beta_in_the_metrics(tmp_path: Path) -> None:
    tiny = ["--arch", "resnet18", "--image-size", "32", "--num-classes", "3", "--train-size", "16",
            "--val-size", "6", "--batch-size", "8", "--lr", "0.01", "--workers", "0", "--no-progress"]
    assert train_main([*tiny, "--head", "vib", "--beta", "0.6", "--beta-warmup-epochs", "4", "--epochs", "2",
                       "--out", str(tmp_path / "run")]) == 0
    with open(tmp_path / "run" / "metrics.csv") as stream:
        betas = [float(row["beta"]) for row in csv.DictReader(stream)]
    assert betas == pytest.approx([0.6 * 1 / 4, 0.6 * 2 / 4])  # 2 steps per epoch, 4 warm-up epochs
