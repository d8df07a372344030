"""`python -m analysis.power distinction`: planning raters per method and items for the accuracy difference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.distinction_power import distinction_logits, marginal_accuracy, plan
from analysis.power import main
from analysis.simulate import logistic


def test_simulated_answers_have_the_planned_accuracy() -> None:
    rng = np.random.default_rng(0)
    p = logistic(distinction_logits(400, 400, [0.5, 0.3], 0.5, 0.8, 0.4, rng))
    for k, typical in enumerate((0.5, 0.3)):
        assert p[k].mean() == pytest.approx(marginal_accuracy(typical, 0.5, 0.8, 0.4), abs=0.03)
    # items are crossed: the shared item effect makes the methods' per-item accuracies correlate
    assert np.corrcoef(p[0].mean(0), p[1].mean(0))[0, 1] > 0.5


def test_precision_improves_with_raters_and_items_and_items_set_a_floor() -> None:
    result = plan(
        [10, 40], [10, 40], [0.5, 0.35], 0.5, 1.0, 0.8, target_half_width=0.12, sims=60, replicates=200
    )
    grid = {(g["raters_per_method"], g["items"]): g for g in result["grid"]}
    assert grid[(40, 40)]["half_width_mean"] < grid[(10, 40)]["half_width_mean"]
    assert grid[(40, 40)]["half_width_mean"] < grid[(40, 10)]["half_width_mean"]
    # item x method effects do not shrink with more raters: for the same number of answers, items win
    assert grid[(10, 40)]["half_width_mean"] < grid[(40, 10)]["half_width_mean"]
    best = result["smallest"]
    assert best is not None and best["half_width_mean"] <= 0.12
    assert all(g["answers"] >= best["answers"] for g in result["grid"] if g["half_width_mean"] <= 0.12)


def test_cli_plans_a_distinction_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plan.json"
    rc = main(
        [
            "distinction",
            "--raters",
            "5,10",
            "--items",
            "10",
            "--accuracy",
            "0.5,0.3",
            "--sims",
            "20",
            "--bootstrap",
            "100",
            "--half-width",
            "0.3",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "Mean half-width" in text and "Smallest design" in text
    result = json.loads(out.read_text())
    assert [(g["raters_per_method"], g["items"]) for g in result["grid"]] == [(5, 10), (10, 10)]
    assert result["design"]["accuracies"] == [0.5, 0.3]


@pytest.mark.parametrize(
    "args", [["--accuracy", "0.5"], ["--accuracy", "0.5,1.2"], ["--raters", "0"], ["--sims", "3"]]
)
def test_cli_refuses_unusable_values(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["distinction", *args]) == 2
    assert "error:" in capsys.readouterr().err


def test_the_existing_command_still_runs_without_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--raters", "6", "--items", "6", "--sims", "10", "--bootstrap", "100", "--no-grid"]) == 0
    assert "Crossed design: 6 raters x 6 items" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "python -m analysis.power distinction --help" in " ".join(capsys.readouterr().out.split())
