"""Vote-level binomial statistics against R's binom.test reference values and statsmodels' Wilson."""

from __future__ import annotations

import pytest
from statsmodels.stats.proportion import proportion_confint

from analysis.binomial import binomial_summary


def test_paper_numbers_match_r_binom_test() -> None:
    # R: binom.test(11, 15) -> p-value = 0.1185, 95 percent CI 0.4489968 0.9221285
    result = binomial_summary(11, 15)
    assert result["rate"] == pytest.approx(11 / 15)
    assert result["p_two_sided"] == pytest.approx(0.1184692383, abs=1e-9)
    assert result["ci_exact"][0] == pytest.approx(0.4489967590, abs=1e-9)
    assert result["ci_exact"][1] == pytest.approx(0.9221284537, abs=1e-9)
    assert result["p_greater"] == pytest.approx(0.1184692383 / 2, abs=1e-9)  # symmetric null


def test_large_study_reference_p_value() -> None:
    assert binomial_summary(300, 450)["p_two_sided"] == pytest.approx(1.346630041e-12, rel=1e-8, abs=1e-21)


@pytest.mark.parametrize(("k", "n"), [(11, 15), (0, 7), (7, 7), (300, 450), (1, 2)])
def test_wilson_interval_matches_statsmodels(k: int, n: int) -> None:
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    ours = binomial_summary(k, n)["ci_wilson"]
    assert ours == pytest.approx([low, high], abs=1e-9)


def test_one_sided_p_values_are_complementary_tails() -> None:
    result = binomial_summary(4, 15)
    assert result["p_less"] == pytest.approx(binomial_summary(11, 15)["p_greater"], abs=1e-12)
    assert result["p_greater"] > 0.9


def test_no_votes_gives_none_not_an_error() -> None:
    result = binomial_summary(0, 0)
    assert result["n"] == 0 and result["p_two_sided"] is None and result["ci_exact"] is None


def test_impossible_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="0 <= k <= n"):
        binomial_summary(5, 3)
