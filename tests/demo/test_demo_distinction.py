"""`make demo-distinction` end to end at the tiny size: trained runs -> distinction package -> import ->
30 simulated raters -> answers CSV -> analysis report; a second run reuses the package and the raters."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_demo(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scripts.demo_distinction", "--tiny", "--root", str(root)],
                          cwd=REPO, capture_output=True, text=True, timeout=900, check=False)


@pytest.mark.slow
def test_demo_distinction_runs_the_whole_loop_and_is_reusable(tmp_path: Path) -> None:
    first = run_demo(tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    manifest = json.loads((tmp_path / "studies" / "demo-distinction" / "manifest.json").read_text())
    assert manifest["task"] == "distinction" and manifest["name"] == "demo-distinction"
    regular = [i for i in manifest["items"] if not i["attention_check"]]
    assert len(regular) == 4 and len(manifest["items"]) == 5
    assert all(len(listed) == 4 for i in manifest["items"] for listed in i["candidates"].values())  # top-4

    with (tmp_path / "data" / "demo-distinction-answers.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 30 * 5  # one answer per trial: 30 raters x (4 items + 1 check)
    assert {r["rater"] for r in rows} == {f"sim-{k:03d}" for k in range(1, 31)}
    assert {r["task"] for r in rows} == {"distinction"} and {r["method"] for r in rows} == {"vib", "baseline"}

    summary = json.loads((tmp_path / "reports" / "demo-distinction" / "summary.json").read_text())
    assert set(summary["distinction"]["methods"]) == {"vib", "baseline"} and summary["distinction"]["chance"] == 0.25
    assert summary["simulated_raters"]
    assert (tmp_path / "reports" / "demo-distinction" / "report.html").is_file()
    assert "Report:" in first.stdout and "energy in mask" in first.stdout

    second = run_demo(tmp_path)  # reuses runs and package; the finished raters add nothing
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "reusing" in second.stdout and "-m models.train" not in second.stdout
    assert "-m cams.generate" not in second.stdout
    assert "recorded 0 new" in second.stdout
