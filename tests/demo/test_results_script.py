"""`make results` (scripts/results.py): the plan it trains and the tables it writes from run folders."""
from __future__ import annotations

import csv
from pathlib import Path

from models.train import METRIC_COLUMNS
from scripts.results import CONTROL_SEED, CURVE_BETAS, RESULT_BETAS, SEEDS, Run, complete, curve_table, diagnostics_table, planned_runs


def write_run(folder: Path, val_acc: float, active: int | None, epochs: int = 5) -> None:
    folder.mkdir(parents=True)
    rows = []
    for epoch in range(1, epochs + 1):
        row = {c: "" for c in METRIC_COLUMNS} | {"epoch": epoch, "val_acc": val_acc}
        if active is not None:
            row |= {"sigma_p10": 0.2, "sigma_p50": 0.5, "sigma_p90": 0.9, "sigma_cv": 0.1, "sigma_to_mu_spread": 0.4,
                    "attn_entropy": 0.8, "attn_temperature": 4.9, "kl_mu": 0.1, "kl_sigma": 0.2, "val_acc_mu": val_acc,
                    "val_acc_sampled": val_acc - 0.1, "active": active}
        rows.append(row)
    with open(folder / "metrics.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    (folder / "best.pt").write_bytes(b"")


def test_plan_has_three_seeds_of_every_model_and_the_curve() -> None:
    names = [r.name for r in planned_runs()]
    assert len(names) == len(set(names)) == (len(SEEDS) * (1 + len(RESULT_BETAS)) + 1
                                             + len(set(CURVE_BETAS) - set(RESULT_BETAS)))
    assert CONTROL_SEED not in SEEDS and f"baseline-seed{CONTROL_SEED}" in names  # a control that cannot cancel
    assert "baseline-seed2" in names and f"vib-beta{RESULT_BETAS[0]}-seed1" in names
    assert Run("vib", "1e-2", 0).method == "vib-beta1e-2"


def test_tables_report_every_run_and_the_activity_of_each_beta(tmp_path: Path) -> None:
    for run in planned_runs():
        inactive = run.head == "vib" and run.beta == RESULT_BETAS[0] and run.seed == 2
        write_run(tmp_path / run.name, 0.8 if run.head == "baseline" else 0.6,
                  None if run.head == "baseline" else int(not inactive))
    assert complete(tmp_path / "baseline-seed0", 5) and not complete(tmp_path / "baseline-seed0", 6)
    table, active = diagnostics_table(tmp_path)
    assert active == {f"vib-beta{RESULT_BETAS[0]}": False, f"vib-beta{RESULT_BETAS[1]}": True}
    assert table.count("| INACTIVE |") == 1 and "| baseline-seed1 | 5 | 0.800 |" in table
    curve = curve_table(tmp_path)
    assert "| ResNet-18 | - | - | 5 | 0.800 | 100.0 |" in curve and "| 75.0 |" in curve
    assert curve.count("| VIB-ResNet-18 |") == len(CURVE_BETAS)
