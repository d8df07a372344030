"""The metric registry (`cams.metrics.METRICS`) and the one verdict (`cams.verdict.verdict`) that every
report uses: the direction a metric declares is the direction the verdict and the tables apply."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cams.decision_rule import decide
from cams.metrics import (
    COLUMNS,
    MAP_METRICS,
    METRICS,
    PERTURBATION_METRICS,
    MapMetric,
    PerturbationMetric,
    get_metric,
)
from cams.metrics.maps import energy_in_mask, entropy, gini, pointing_game
from cams.reports import difference_table, metric_table
from cams.stats import Estimate, paired_difference, two_level_bootstrap
from cams.verdict import NO_CLEAR_DIFFERENCE, NOT_COMPUTABLE, TOO_FEW_ITEMS, verdict

# What docs/cams.md promises for each metrics.csv column: its direction.
DOCUMENTED_DIRECTION = {"pointing_game": True, "energy_in_mask": True, "deletion_auc": False,
                        "insertion_auc": True, "gini": True, "entropy": False}


def test_every_metric_has_a_name_title_and_direction_and_the_csv_columns_follow_the_registry() -> None:
    assert COLUMNS == ("item", "method", "pointing_game", "energy_in_mask", "deletion_auc", "insertion_auc",
                       "gini", "entropy")
    assert list(METRICS) == list(COLUMNS[2:])
    for name, metric in METRICS.items():
        assert metric.name == name and get_metric(name) is metric
        assert isinstance(metric.title, str) and metric.title
        assert metric.higher_is_better is DOCUMENTED_DIRECTION[name]
        assert metric.arrow == ("↑" if metric.higher_is_better else "↓")
    assert len({m.title for m in METRICS.values()}) == len(METRICS)
    assert set(MAP_METRICS) | set(PERTURBATION_METRICS) == set(METRICS.values())
    assert all(isinstance(m, MapMetric) for m in MAP_METRICS)
    assert all(isinstance(m, PerturbationMetric) for m in PERTURBATION_METRICS)
    with pytest.raises(ValueError, match="unknown metric 'iou'; choose one of pointing_game"):
        get_metric("iou")


def test_map_metrics_are_the_functions_and_mask_metrics_are_nan_without_a_mask() -> None:
    rng = np.random.default_rng(0)
    heat = rng.random((16, 16))
    mask = np.zeros((16, 16), np.uint8)
    mask[4:10, 2:12] = 255
    expected = {"pointing_game": pointing_game(heat, mask), "energy_in_mask": energy_in_mask(heat, mask),
                "gini": gini(heat), "entropy": entropy(heat)}
    for metric in MAP_METRICS:
        assert metric(heat, mask) == expected[metric.name]
        without = metric(heat, None)
        if metric.needs_mask:
            assert math.isnan(without)
        else:
            assert without == expected[metric.name]


def test_perturbation_metrics_batch_and_area_compose_to_the_call() -> None:
    image = torch.rand(3, 12, 12, generator=torch.Generator().manual_seed(0))
    heat = torch.rand(12, 12, generator=torch.Generator().manual_seed(1))

    def score(batch: torch.Tensor) -> torch.Tensor:
        return batch.mean((1, 2, 3)).clamp(0, 1)

    for metric in PERTURBATION_METRICS:
        batch, fractions = metric.batch(image, heat, steps=6)
        assert batch.shape == (7, 3, 12, 12) and fractions[0] == 0 and fractions[-1] == 1
        by_hand = float(np.trapezoid(score(batch).numpy(), fractions))
        assert metric(score, image, heat, steps=6) == pytest.approx(by_hand)
        assert metric.area(score(batch).numpy(), fractions) == pytest.approx(by_hand)
    deletion, insertion = (METRICS[n] for n in ("deletion_auc", "insertion_auc"))
    assert torch.equal(deletion.batch(image, heat, 6)[0][-1], torch.zeros_like(image))  # all deleted
    assert torch.equal(insertion.batch(image, heat, 6)[0][-1], image)  # all inserted


@pytest.mark.parametrize("name", list(METRICS))
def test_the_verdict_follows_each_metrics_direction(name: str) -> None:
    up = Estimate(0.1, 0.05, 0.15, 30)  # first − second > 0, CI off zero
    down = Estimate(-0.1, -0.15, -0.05, 30)
    higher = METRICS[name].higher_is_better
    assert verdict(up, name, "first", "second") == ("first" if higher else "second")
    assert verdict(down, METRICS[name], "first", "second") == ("second" if higher else "first")


def test_the_verdict_for_nothing_one_item_and_an_undecided_ci() -> None:
    assert verdict(paired_difference([], []), "gini", "a", "b") == NOT_COMPUTABLE == "n/a"
    assert verdict(paired_difference([0.3], [0.1]), "gini", "a", "b") == TOO_FEW_ITEMS == "too few items"
    assert verdict(Estimate(0.01, -0.02, 0.04, 30), "gini", "a", "b") == NO_CLEAR_DIFFERENCE
    assert verdict(paired_difference([math.nan, 0.2], [0.1, math.nan]), "gini", "a", "b") == "n/a"  # no pair


def rows_for(values: dict[str, list[float]]) -> list[dict]:
    """metrics rows: every metric equal to the method's value on item k."""
    return [{"item": f"i{k}", "method": method, **{m: v for m in METRICS}}
            for method, column in values.items() for k, v in enumerate(column)]


def test_metrics_md_and_the_pooled_comparison_say_the_same_for_the_same_case() -> None:
    """The two tables that used to disagree ("too few items" vs "n/a") now call the one verdict."""
    one_item = rows_for({"vib": [0.6], "baseline": [0.4]})
    table = difference_table(one_item, "vib", "baseline")
    assert all(line.endswith("| too few items |") for line in table[2:])
    pooled = two_level_bootstrap([np.array([0.2])])  # what cams.compare pools from one package, one item
    assert verdict(pooled, "gini", "vib", "baseline") == "too few items"
    many = rows_for({"vib": list(np.linspace(0.6, 0.7, 20)), "baseline": list(np.linspace(0.2, 0.3, 20))})
    lines = {line.split(" | ")[0].lstrip("| "): line for line in difference_table(many, "vib", "baseline")[2:]}
    for metric in METRICS.values():
        assert lines[metric.title].endswith(f"| {'vib' if metric.higher_is_better else 'baseline'} |")
    header = metric_table(many, ["vib", "baseline"])[0]
    assert "deletion AUC ↓" in header and "insertion AUC ↑" in header and "entropy ↓" in header


def test_the_decision_rule_is_inconclusive_where_the_verdict_has_no_ci() -> None:
    seeds = [Estimate(0.05, math.nan, math.nan, 1)] * 3
    assert decide(seeds, Estimate(0.05, math.nan, math.nan, 1), Estimate(0.0, -0.01, 0.01, 30),
                  "energy_in_mask", True) == "inconclusive"
    up = [Estimate(0.05, 0.02, 0.08, 30)] * 3
    # deletion AUC: lower is better, so a negative pooled difference is the method winning
    down = [Estimate(-0.05, -0.08, -0.02, 30)] * 3
    pooled_down = Estimate(-0.05, -0.08, -0.02, 90)
    control = Estimate(0.0, -0.01, 0.01, 30)
    assert decide(up, Estimate(0.05, 0.02, 0.08, 90), control, "pointing_game", True) == "yes"
    assert decide(down, pooled_down, control, "deletion_auc", True) == "yes"  # the registry's direction
    assert decide(down, pooled_down, control, "pointing_game", True) == "yes, the other way (worse)"
