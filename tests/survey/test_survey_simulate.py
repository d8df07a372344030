"""Simulated raters vote through the service layer with crossed-design preferences (contract D)."""
from __future__ import annotations

from pathlib import Path

import pytest

from survey.db import get_engine
from survey.export import votes_frame
from survey.importer import import_package
from survey.sample_package import make_sample_package
from survey.service import admin_summary
from survey.simulate_raters import main, simulate


def test_simulated_raters_fill_the_study(sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    package = make_sample_package(tmp_path / "sim", n_items=10, n_checks=2, image_size=16, with_example=False)
    engine = get_engine(sqlite_url)
    import_package(engine, package)
    assert simulate(sqlite_url, "demo", raters=12, seed=3, rate=0.95, rater_sd=0.0, item_sd=0.0,
                    attention_accuracy=1.0, progress=False) == 12 * 12
    frame = votes_frame(engine, "demo")
    assert sorted(frame["rater"].unique()) == [f"sim-{k:03d}" for k in range(1, 13)]
    assert frame["rater_finished"].all()
    checks = frame[frame["attention_check"]]
    assert (checks["chosen_method"] == checks["expected_method"]).all()
    summary = admin_summary(engine, "demo")
    assert summary.n == 120 and summary.proposed_rate > 0.85  # 0.95 expected; P(rate <= 0.85) < 1e-4
    # Choices follow the map, not the side: the proposed map is picked on both sides alike.
    regular = frame[~frame["attention_check"]]
    left_rate = (regular["chosen_side"] == "left").mean()
    assert 0.35 < left_rate < 0.65
    # A second run adds nothing: those raters have finished.
    assert main(["--db", sqlite_url, "--study", "demo", "--raters", "12", "--seed", "3"]) == 0
    assert "recorded 0 new vote(s)" in capsys.readouterr().out


def test_simulate_errors_are_one_line(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    get_engine(sqlite_url)
    assert main(["--db", sqlite_url, "--study", "nope"]) == 1
    assert "no study named 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--study"])
