"""`make report`: the Makefile's own command line, on a survey database and a `cams.metrics`-format CSV.

The recipe is read from the Makefile (so the test follows it) and run with the test's database in a
temporary folder. The metrics CSV is made so that its answer is known: `energy_in_mask` of the
proposed map minus the baseline's equals each item's human preference rate (Spearman rho = 1) and
`entropy` its negative (rho = -1), so the report must have joined votes and metrics item by item.
"""
from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.simulate_raters import main as simulate_raters
from survey.db import dispose_engines, get_engine
from survey.export import votes_frame
from survey.importer import import_package
from testing.packages import make_package

REPO = Path(__file__).resolve().parents[2]


def report_recipe() -> str:
    text = (REPO / "Makefile").read_text()
    match = re.search(r"^report:[^\n]*\n((?:\t[^\n]*\n)+)", text, re.MULTILINE)
    assert match, "Makefile has no report target"
    return match.group(1).strip()


def test_make_report_joins_the_survey_database_and_the_metrics(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'survey.db'}"
    package = make_package(tmp_path / "studies" / "demo", n_items=6, n_checks=1)
    try:
        import_package(get_engine(url), package)
        assert simulate_raters(["--db", url, "--study", "demo", "--raters", "16", "--seed", "3",
                                "--attention-accuracy", "1", "--item-sd", "1.5"]) == 0
        votes = votes_frame(url, "demo")
    finally:
        dispose_engines()
    regular = votes[~votes["attention_check"] & (votes["repeat"] == 0) & votes["chosen_method"].notna()]
    rates = (regular["chosen_method"] == regular["proposed_method"]).groupby(regular["item"]).mean()
    assert rates.nunique() > 2  # items differ, so a correlation means something
    metrics = tmp_path / "studies" / "demo-metrics" / "metrics.csv"
    metrics.parent.mkdir(parents=True)
    with metrics.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item", "method", "energy_in_mask", "entropy", "pointing_game"])
        for item, rate in rates.items():
            writer.writerow([item, "vib", 0.2 + rate, 1.0 - rate, 1])
            writer.writerow([item, "baseline", 0.2, 1.0, 1])

    command = report_recipe().replace("$(PY)", sys.executable).replace("$(DB)", url)
    assert "--metrics studies/demo-metrics/metrics.csv" in command and "--db" in command
    run = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "reports/demo/report.html" in run.stdout
    summary = json.loads((tmp_path / "reports" / "demo" / "summary.json").read_text())
    joined = summary["metrics"]
    assert joined["items_matched"] == joined["items_in_votes"] == 6
    rho = {c["metric"]: c["rho"] for c in joined["correlations"]}
    assert rho["energy_in_mask"] == pytest.approx(1.0) and rho["entropy"] == pytest.approx(-1.0)
    assert rho["pointing_game"] is None  # no variation: no correlation, and a note says why
    assert joined["mean_difference"]["energy_in_mask"] == pytest.approx(rates.mean())
    assert summary["n_raters"] == 16 and summary["binomial"]["n"] == len(regular)
    assert "energy_in_mask" in (tmp_path / "reports" / "demo" / "report.md").read_text()
