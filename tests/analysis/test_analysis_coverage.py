"""Coverage over simulated crossed studies: the two-way interval holds its level, the naive one does not.

Observed values are recorded in docs/analysis.md (section "Coverage").
"""

from __future__ import annotations

from analysis.power import interval_coverage


def test_two_way_interval_keeps_nominal_coverage_when_items_vary() -> None:
    result = interval_coverage(30, 15, 0.7, 0.5, 1.0, studies=300, replicates=300, seed=0)
    assert 0.5 < result["truth"] < 0.7
    assert result["two_way_bootstrap"] >= 0.88  # nominal 0.95; Monte Carlo sd ~0.013
    assert result["naive_exact"] <= 0.80  # the pooled binomial interval under-covers
    assert result["naive_wilson"] <= 0.80
    assert result["naive_exact"] < result["item_bootstrap"] < result["two_way_bootstrap"] + 0.02


def test_without_rater_or_item_effects_every_interval_is_fine() -> None:
    result = interval_coverage(20, 10, 0.65, 0.0, 0.0, studies=200, replicates=300, seed=1)
    assert result["naive_exact"] >= 0.9 and result["two_way_bootstrap"] >= 0.9
