"""Power analysis: exact binomial power against brute force, simulated power that behaves, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from analysis.power import (
    exact_binomial_power,
    exact_binomial_sample_size,
    main,
    precision_floors,
    simulated_power,
)


@pytest.mark.parametrize("n", [5, 15, 30, 51])
@pytest.mark.parametrize("p", [0.6, 0.73])
def test_exact_power_equals_summing_rejected_outcomes(n: int, p: float) -> None:
    brute = sum(stats.binom.pmf(k, n, p) for k in range(n + 1) if stats.binomtest(k, n, 0.5).pvalue <= 0.05)
    assert exact_binomial_power(n, p)[0] == pytest.approx(brute, abs=1e-12)
    brute_one = sum(
        stats.binom.pmf(k, n, p)
        for k in range(n + 1)
        if stats.binomtest(k, n, 0.5, alternative="greater").pvalue <= 0.05
    )
    assert exact_binomial_power(n, p, alternative="greater")[0] == pytest.approx(brute_one, abs=1e-12)


def test_sample_size_is_the_first_n_with_enough_power() -> None:
    result = exact_binomial_sample_size(0.7, power=0.8)
    n = result["n"]
    assert exact_binomial_power(n, 0.7)[0] >= 0.8 > exact_binomial_power(np.arange(1, n), 0.7).max()
    assert result["n_stable"] >= n
    assert exact_binomial_power(np.arange(result["n_stable"], result["n_stable"] + 200), 0.7).min() >= 0.8
    assert exact_binomial_sample_size(0.5)["n"] is None


def test_items_limit_precision_more_than_raters() -> None:
    floors = precision_floors(30, 15, 0.7, 0.5, 1.0)
    assert floors["infinite_raters"] > 2 * floors["infinite_items"]
    few_items = simulated_power(60, 6, 0.7, 0.5, 1.0, sims=60, replicates=200, seed=0)
    many_items = simulated_power(6, 60, 0.7, 0.5, 1.0, sims=60, replicates=200, seed=0)
    assert many_items["power_two_way"] > few_items["power_two_way"]
    assert many_items["two_way_width"] < few_items["two_way_width"]


def test_null_studies_rarely_reject_with_the_crossed_interval() -> None:
    null = simulated_power(30, 15, 0.5, 0.5, 1.0, sims=80, replicates=200, seed=1)
    assert null["power_two_way"] <= 0.15 and null["power_naive"] > null["power_two_way"]


def test_cli_prints_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "power.json"
    assert (
        main(
            [
                "--raters",
                "10",
                "--items",
                "8",
                "--sims",
                "20",
                "--bootstrap",
                "100",
                "--no-grid",
                "--coverage",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "Items, not raters, limit precision" in text and "Exact binomial sample sizes" in text
    result = json.loads(out.read_text())
    assert 0 <= result["power"]["power_two_way"] <= 1 and result["coverage"]["studies"] == 20
    assert main(["--rate", "1.5"]) == 2
