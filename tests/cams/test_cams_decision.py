"""The yes / no / inconclusive rule of docs/results.md (cams.decision_rule.decide) and its table."""
from __future__ import annotations

import math

from cams.decision_rule import decide
from cams.stats import Estimate


def est(mean: float, low: float, high: float, n: int = 60) -> Estimate:
    return Estimate(mean, low, high, n)


SEEDS_UP = [est(0.05, 0.02, 0.08), est(0.03, 0.01, 0.05), est(0.04, 0.0, 0.08)]
SMALL_CONTROL = est(0.005, -0.01, 0.02)


def test_yes_needs_activity_same_sign_a_ci_off_zero_and_more_than_the_control() -> None:
    pooled = est(0.04, 0.01, 0.07)
    assert decide(SEEDS_UP, pooled, SMALL_CONTROL, "energy_in_mask", active=True) == "yes"
    assert decide(SEEDS_UP, pooled, SMALL_CONTROL, "energy_in_mask", active=False) == "inconclusive"
    mixed = [*SEEDS_UP[:2], est(-0.01, -0.03, 0.01)]
    assert decide(mixed, pooled, SMALL_CONTROL, "energy_in_mask", active=True) == "inconclusive"
    assert decide(SEEDS_UP, est(0.04, -0.01, 0.09), SMALL_CONTROL, "energy_in_mask", True) == "inconclusive"
    big_control = est(-0.06, -0.09, -0.03)
    assert decide(SEEDS_UP, pooled, big_control, "energy_in_mask", active=True) == "inconclusive"


def test_the_other_way_is_reported_as_worse() -> None:
    down = [est(-e.mean, -e.high, -e.low) for e in SEEDS_UP]
    assert decide(down, est(-0.04, -0.07, -0.01), SMALL_CONTROL, "energy_in_mask", True) == \
        "yes, the other way (worse)"


def test_no_means_a_ci_inside_the_band_with_an_active_bottleneck() -> None:
    flat = [est(0.001, -0.01, 0.01)] * 3
    assert decide(flat, est(0.002, -0.015, 0.018), SMALL_CONTROL, "energy_in_mask", True) == "no"
    assert decide(flat, est(0.002, -0.025, 0.018), SMALL_CONTROL, "energy_in_mask", True) == "inconclusive"
    assert decide(flat, est(0.01, -0.04, 0.045), SMALL_CONTROL, "pointing_game", True) == "no"  # band 0.05
    assert decide(flat, est(0.002, -0.015, 0.018), SMALL_CONTROL, "energy_in_mask", False) == "inconclusive"
    assert decide(flat, Estimate(math.nan, math.nan, math.nan, 0), SMALL_CONTROL, "energy_in_mask", True) == \
        "inconclusive"
