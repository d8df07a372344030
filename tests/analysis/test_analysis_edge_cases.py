"""Edge cases end to end (run_analysis + report rendering): a clear message or a sensible answer, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.exclusions import ExclusionRules
from analysis.load import VotesError, load_votes
from analysis.report import main, write_report
from testing.simulated_votes import simulate_votes
from analysis.summary import AnalysisOptions, run_analysis


def _analyse(frame: pd.DataFrame, tmp_path: Path, **options) -> dict:
    options = {"replicates": 200, "mixed": False} | options
    analysis = run_analysis(load_votes(frame), ExclusionRules.none(), AnalysisOptions(**options))
    write_report(analysis, tmp_path / "report")  # rendering must cope too
    return json.loads((tmp_path / "report" / "summary.json").read_text())


def test_no_votes_is_a_message(tmp_path: Path) -> None:
    csv = tmp_path / "votes.csv"
    simulate_votes(2, 2, 0.7, 0.5, 1.0, seed=0).iloc[:0].to_csv(csv, index=False)
    assert main(["--votes", str(csv), "--out", str(tmp_path / "out")]) == 1
    with pytest.raises(VotesError, match="no votes"):
        load_votes(csv)


def test_one_rater(tmp_path: Path) -> None:
    summary = _analyse(simulate_votes(1, 12, 0.7, 0.5, 1.0, seed=1), tmp_path, mixed=True)
    assert summary["n_raters"] == 1 and summary["agreement"]["fleiss_kappa"] is None
    assert summary["mixed_model"]["linear"]["fitted"] is False
    assert any("Only one rater" in w for w in summary["warnings"])
    assert summary["two_way_bootstrap"]["ci"] is not None


def test_everyone_chooses_the_left_side(tmp_path: Path) -> None:
    frame = simulate_votes(10, 10, 0.7, 0.5, 1.0, seed=2, side_pickers=10)
    summary = _analyse(frame, tmp_path)
    assert summary["position"]["left_rate"] == 1.0 and summary["position"]["p_two_sided"] < 1e-10
    assert len(summary["position"]["flagged_raters"]) == 10
    assert summary["proposed_rate"] == pytest.approx(frame["proposed_method"].eq(frame["left_method"]).mean())
    assert any("Position bias" in w for w in summary["warnings"])


def test_unanimous_items_and_unanimous_study(tmp_path: Path) -> None:
    frame = simulate_votes(6, 8, 0.7, 0.0, 0.0, seed=3).assign(chosen_method="vib")
    frame["chosen_side"] = np.where(frame["left_method"] == "vib", "left", "right")
    summary = _analyse(frame, tmp_path, mixed=True)
    assert summary["proposed_rate"] == 1.0 and summary["items"]["won"] == 8
    assert summary["two_way_bootstrap"]["ci"] == [1.0, 1.0]
    assert summary["agreement"]["observed"] == 1.0 and summary["agreement"]["fleiss_kappa"] is None
    assert (
        summary["mixed_model"]["linear"]["fitted"] is False
        and "same way" in summary["mixed_model"]["linear"]["reason"]
    )


def test_ties_are_counted_apart(tmp_path: Path) -> None:
    frame = simulate_votes(2, 10, 0.5, 0.0, 0.0, seed=4)
    # rater 0 always picks vib, rater 1 always baseline: every item ties
    frame["chosen_method"] = np.where(frame["rater"] == "r-0000", "vib", "baseline")
    frame["chosen_side"] = np.where(frame["chosen_method"] == frame["left_method"], "left", "right")
    summary = _analyse(frame, tmp_path)
    assert (
        summary["items"]["ties"] == 10
        and summary["items"]["won"] == 0
        and summary["items"]["p_two_sided"] is None
    )
    assert any("tied" in w for w in summary["warnings"])


def test_only_no_preference_votes(tmp_path: Path) -> None:
    frame = simulate_votes(3, 4, 0.7, 0.5, 1.0, seed=5).assign(chosen_method="", chosen_side="none")
    summary = _analyse(frame, tmp_path)
    assert summary["binomial"]["n"] == 0 and summary["proposed_rate"] is None
    assert summary["conclusion"].startswith("No decided")


def test_method_names_that_do_not_match_the_study(tmp_path: Path) -> None:
    frame = simulate_votes(3, 4, 0.7, 0.5, 1.0, seed=6)
    csv = tmp_path / "votes.csv"
    frame.assign(proposed_method="VIB").to_csv(csv, index=False)
    assert main(["--votes", str(csv), "--out", str(tmp_path / "out")]) == 1
    frame.to_csv(csv, index=False)
    assert main(["--votes", str(csv), "--out", str(tmp_path / "out"), "--baseline", "resnet50"]) == 1
    assert not (tmp_path / "out").exists()


def test_naive_and_crossed_disagreement_is_warned(tmp_path: Path) -> None:
    # Many raters, few items with large item effects: the pooled test is confident, the crossed interval is not.
    frame = simulate_votes(60, 6, 0.6, 0.2, 2.0, seed=12)
    summary = _analyse(frame, tmp_path)
    crossed = summary["two_way_bootstrap"]["ci"]
    assert summary["binomial"]["p_two_sided"] < 0.05 and crossed[0] <= 0.5 <= crossed[1]
    assert any("Naive and crossed conclusions differ" in w for w in summary["warnings"])
