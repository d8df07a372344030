"""Binomial, item-level and crossed-design statistics against independent references.

scipy.stats.binom / binomtest and statsmodels' proportion_confint are the references; the crossed
bootstrap is checked on designs whose answer is known exactly (a margin with no variation gives a
bootstrap interval of zero width) and against brute-force resampling.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tests.hypothesis_home  # noqa: F401  (before Hypothesis writes anything)
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from analysis.binomial import binomial_summary
from analysis.crossed import (
    bilinear_replicates,
    bootstrap_rate,
    cell_table,
    crossed_intervals,
    multinomial_weights,
    percentile_interval,
)
from analysis.items import item_level_summary, per_item_table, wilson_interval

LEVELS = [0.90, 0.99]


# ---------------------------------------------------------------------------------------- binomial
@pytest.mark.parametrize("confidence", LEVELS)
@pytest.mark.parametrize(("k", "n"), [(11, 15), (0, 9), (9, 9), (37, 80)])
def test_intervals_at_90_and_99_percent_match_scipy_and_statsmodels(k: int, n: int,
                                                                    confidence: float) -> None:
    result = binomial_summary(k, n, confidence=confidence)
    exact = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    assert result["ci_exact"] == pytest.approx([exact.low, exact.high], abs=1e-12)
    assert result["ci_wilson"] == pytest.approx(
        list(proportion_confint(k, n, alpha=1 - confidence, method="wilson")), abs=1e-12
    )
    at_95 = binomial_summary(k, n)
    assert result["ci_exact"] != at_95["ci_exact"] and result["ci_wilson"] != at_95["ci_wilson"]


@pytest.mark.parametrize(("k", "n", "p0"), [(11, 15, 0.5), (3, 20, 0.3), (20, 20, 0.5), (0, 12, 0.2)])
def test_p_values_match_the_binomial_distribution(k: int, n: int, p0: float) -> None:
    """One-sided p-values are binomial tails; the two-sided one sums outcomes no likelier than k."""
    result = binomial_summary(k, n, p0=p0)
    assert result["p_greater"] == pytest.approx(stats.binom.sf(k - 1, n, p0), rel=1e-9)
    assert result["p_less"] == pytest.approx(stats.binom.cdf(k, n, p0), rel=1e-9)
    pmf = stats.binom.pmf(np.arange(n + 1), n, p0)
    two_sided = min(1.0, pmf[pmf <= pmf[k] * (1 + 1e-7)].sum())
    assert result["p_two_sided"] == pytest.approx(two_sided, rel=1e-7)
    assert (result["k"], result["n"], result["rate"]) == (k, n, k / n)


def test_no_votes_is_none_for_every_statistic() -> None:
    assert binomial_summary(0, 0) == {
        "k": 0, "n": 0, "rate": None, "p_two_sided": None, "p_greater": None, "p_less": None,
        "ci_exact": None, "ci_wilson": None,
    }
    with pytest.raises(ValueError, match="k=-1, n=4"):
        binomial_summary(-1, 4)


@settings(database=None, max_examples=150, deadline=None)
@given(n=st.integers(1, 400), data=st.data(),
       levels=st.lists(st.floats(0.5, 0.999), min_size=2, max_size=2, unique=True))
def test_binomial_intervals_are_monotone_in_the_confidence_level(n: int, data: st.DataObject,
                                                                levels: list[float]) -> None:
    """A higher confidence level never gives a narrower interval, for both methods (and items' Wilson)."""
    k = data.draw(st.integers(0, n))
    low_c, high_c = sorted(levels)
    narrow, wide = binomial_summary(k, n, confidence=low_c), binomial_summary(k, n, confidence=high_c)
    for method in ("ci_exact", "ci_wilson"):
        assert wide[method][0] <= narrow[method][0] + 1e-12 and narrow[method][1] <= wide[method][1] + 1e-12
        assert 0.0 <= wide[method][0] <= k / n <= wide[method][1] <= 1.0
    (lo_n, hi_n), (lo_w, hi_w) = wilson_interval(k, n, low_c), wilson_interval(k, n, high_c)
    assert lo_w <= lo_n + 1e-12 and hi_n <= hi_w + 1e-12
    # exactly, not up to rounding: the report's error bars (rate - low, high - rate) must not be negative
    assert 0.0 <= lo_w <= k / n <= hi_w <= 1.0 and 0.0 <= lo_n <= k / n <= hi_n <= 1.0


# ------------------------------------------------------------------------------------------- items
def _votes(per_item: dict[str, list[str]]) -> pd.DataFrame:
    """Comparisons frame: per item the chosen methods ("vib", "baseline" or "" for no preference)."""
    rows = []
    for item, choices in per_item.items():
        for choice in choices:
            y = {"vib": 1.0, "baseline": 0.0}.get(choice, np.nan)
            rows.append({"item": item, "label": f"label of {item}", "y": y, "chosen_method": choice})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("confidence", LEVELS)
def test_wilson_interval_matches_statsmodels(confidence: float) -> None:
    k, n = np.array([0, 3, 7, 10, 0]), np.array([10, 10, 10, 10, 0])
    low, high = wilson_interval(k, n, confidence)
    for i in range(4):
        ref = proportion_confint(k[i], n[i], alpha=1 - confidence, method="wilson")
        assert [low[i], high[i]] == pytest.approx(list(ref), abs=1e-12)
    assert np.isnan(low[4]) and np.isnan(high[4])


def test_per_item_table_counts_outcomes_by_hand() -> None:
    table = per_item_table(_votes({
        "a": ["vib", "vib", "baseline", ""],   # won 2:1, one no-preference
        "b": ["baseline", "baseline", "vib"],  # lost
        "c": ["vib", "baseline"],              # tie
        "d": ["", ""],                         # no decided vote
    }), confidence=0.9).set_index("item")
    assert list(table.index) == ["a", "b", "c", "d"]
    assert table["k"].tolist() == [2, 1, 1, 0] and table["n"].tolist() == [3, 3, 2, 0]
    assert table["no_preference"].tolist() == [1, 0, 0, 2]
    assert table["k"].dtype == np.int64 and table["n"].dtype == np.int64  # also with an undecided item
    assert table["outcome"].tolist() == ["won", "lost", "tie", "no votes"]
    assert table["label"].tolist() == [f"label of {i}" for i in "abcd"]
    assert table["rate"].iloc[:3].tolist() == pytest.approx([2 / 3, 1 / 3, 0.5])
    assert np.isnan(table["rate"]["d"])
    ref = proportion_confint(2, 3, alpha=0.1, method="wilson")
    assert [table["ci_low"]["a"], table["ci_high"]["a"]] == pytest.approx(list(ref), abs=1e-12)


@pytest.mark.parametrize("confidence", LEVELS)
def test_item_level_summary_is_a_sign_test_over_decided_items(confidence: float) -> None:
    choices = {f"w{i}": ["vib", "vib", "baseline"] for i in range(7)}
    choices |= {f"l{i}": ["baseline", "baseline"] for i in range(2)}
    choices |= {"t0": ["vib", "baseline"], "n0": [""]}
    summary = item_level_summary(per_item_table(_votes(choices), confidence), confidence)
    assert {k: summary[k] for k in ("won", "lost", "ties", "total", "without_votes")} == {
        "won": 7, "lost": 2, "ties": 1, "total": 10, "without_votes": 1,
    }
    test = stats.binomtest(7, 9)
    assert summary["rate"] == pytest.approx(7 / 9)
    assert summary["p_two_sided"] == pytest.approx(test.pvalue)
    assert summary["p_greater"] == pytest.approx(stats.binomtest(7, 9, alternative="greater").pvalue)
    ci = test.proportion_ci(confidence_level=confidence, method="exact")
    assert summary["ci_exact"] == pytest.approx([ci.low, ci.high])


# ----------------------------------------------------------------------------------------- crossed
def _design(rater_rates: list[float], item_rates: list[float], votes_per_cell: int = 4) -> pd.DataFrame:
    """Every rater votes on every item; the share of proposed choices in cell (r, i) is r_rate * i_rate
    rounded to whole votes, so a margin with equal rates has no variation at all."""
    rows = []
    for r, r_rate in enumerate(rater_rates):
        for i, i_rate in enumerate(item_rates):
            wins = round(votes_per_cell * r_rate * i_rate)
            rows += [{"rater": f"r{r}", "item": f"i{i}", "y": float(v < wins)} for v in range(votes_per_cell)]
    return pd.DataFrame(rows)


def test_each_one_way_bootstrap_resamples_only_its_own_margin() -> None:
    """Raters differ (all or nothing), items do not: resampling items alone cannot move the rate."""
    votes = _design([1.0, 0.0, 1.0, 0.0, 1.0, 1.0], [1.0] * 8)
    result = crossed_intervals(votes["rater"], votes["item"], votes["y"], replicates=400, seed=5,
                               confidence=0.9)
    items_only, raters_only, two_way = result["items_only"], result["raters_only"], result["two_way"]
    estimate = 4 / 6
    for r in (items_only, raters_only, two_way):
        assert r["estimate"] == pytest.approx(estimate) and r["replicates"] == 400 and r["failed"] == 0
    assert items_only["se"] == pytest.approx(0.0, abs=1e-12)
    assert items_only["ci"] == pytest.approx([estimate, estimate])
    # rater resampling: the rate of 6 Bernoulli(2/3) raters -> se ~ sqrt(p(1-p)/6) = 0.19
    assert raters_only["se"] == pytest.approx(np.sqrt(estimate * (1 - estimate) / 6), rel=0.15)
    assert two_way["se"] == pytest.approx(raters_only["se"], rel=0.15)
    # transposed: items differ, raters do not
    swapped = crossed_intervals(votes["item"], votes["rater"], votes["y"], replicates=400, seed=5)
    assert swapped["raters_only"]["se"] == pytest.approx(0.0, abs=1e-12)
    assert swapped["items_only"]["se"] == pytest.approx(raters_only["se"], rel=0.2)


def test_two_way_bootstrap_matches_brute_force_resampling() -> None:
    rng = np.random.default_rng(1)
    rater, item = rng.integers(0, 7, 300), rng.integers(0, 9, 300)
    y = (rng.random(300) < 0.3 + 0.08 * rater).astype(float)  # strong rater effect
    table = cell_table(rater, item, y)
    reference: dict[str, list[float]] = {"two": [], "items": [], "raters": []}
    for _ in range(1500):
        wr = np.bincount(rng.integers(0, 7, 7), minlength=7)
        wi = np.bincount(rng.integers(0, 9, 9), minlength=9)
        for name, weight in (("two", wr[rater] * wi[item]), ("items", wi[item]), ("raters", wr[rater])):
            if weight.sum():
                reference[name].append((weight * y).sum() / weight.sum())
    flags = {"two": {}, "items": {"resample_raters": False}, "raters": {"resample_items": False}}
    for name, kwargs in flags.items():
        boot = bootstrap_rate(table, replicates=1500, seed=2, **kwargs)
        assert boot["se"] == pytest.approx(np.std(reference[name], ddof=1), rel=0.12), name
        assert boot["estimate"] == pytest.approx(y.mean())
    ci = bootstrap_rate(table, replicates=1500, seed=2, confidence=0.9)["ci"]
    assert ci == pytest.approx(list(np.quantile(reference["two"], [0.05, 0.95])), abs=0.02)


def test_cell_table_sums_duplicates_and_ignores_missing_outcomes() -> None:
    table = cell_table(pd.Series(["b", "a", "b", "a", "b"]), pd.Series(["x", "y", "x", "x", "y"]),
                       pd.Series([1.0, 0.0, 1.0, np.nan, np.nan]))
    assert list(table.raters) == ["a", "b"] and list(table.items) == ["x", "y"]
    assert table.shape == (2, 2)
    assert table.successes.toarray().tolist() == [[0, 0], [2, 0]]
    assert table.trials.toarray().tolist() == [[0, 1], [2, 0]]
    empty = cell_table(np.array([]), np.array([]), np.array([]))
    assert empty.shape == (0, 0)
    assert bootstrap_rate(empty) == {"estimate": None, "ci": None, "se": None, "replicates": 0, "failed": 0}


def test_multinomial_weights_draw_n_units_with_replacement() -> None:
    rng = np.random.default_rng(0)
    w = multinomial_weights(5, 4000, rng)
    assert w.shape == (4000, 5) and (w.sum(1) == 5).all() and (w >= 0).all()
    assert w.mean(0) == pytest.approx(np.ones(5), abs=0.06)            # each unit drawn once on average
    assert w.var(0) == pytest.approx(np.full(5, 5 * 0.2 * 0.8), rel=0.1)  # Multinomial(5, 1/5) variance
    assert np.corrcoef(w[:, 0], w[:, 1])[0, 1] == pytest.approx(-0.25, abs=0.05)
    assert multinomial_weights(0, 3, rng).shape == (3, 0)


def test_replicates_beyond_one_block_and_sparse_designs_count_failures() -> None:
    # two raters who rated disjoint items: a replicate drawing only rater a and only rater b's items is empty
    table = cell_table(np.array(["a", "b"]), np.array(["x", "y"]), np.array([1.0, 0.0]))
    reps = bilinear_replicates(table, 700, np.random.default_rng(0), block=256)
    assert reps.shape == (700,)
    finite = reps[np.isfinite(reps)]
    assert 0 < finite.size < 700 and set(np.unique(finite)) <= {0.0, 0.5, 1.0}
    # P(replicate empty) = P(raters {a,a}) P(items {y,y}) + P({b,b}) P({x,x}) = 2 * 1/16
    assert (700 - finite.size) / 700 == pytest.approx(1 / 8, abs=0.04)
    boot = bootstrap_rate(table, replicates=700, seed=0)
    same_draws = bilinear_replicates(table, 700, np.random.default_rng(0))
    assert boot["failed"] == 700 - int(np.isfinite(same_draws).sum())
    assert boot["failed"] > 0 and boot["replicates"] == 700


@pytest.mark.parametrize("confidence", LEVELS)
def test_percentile_interval_is_the_numpy_quantile_of_finite_replicates(confidence: float) -> None:
    reps = np.concatenate([np.linspace(0, 1, 101), [np.nan, np.inf]])
    tail = (1 - confidence) / 2
    assert percentile_interval(reps, confidence) == pytest.approx(
        list(np.quantile(np.linspace(0, 1, 101), [tail, 1 - tail]))
    )
    assert percentile_interval(np.array([np.nan, np.nan]), confidence) is None
    assert percentile_interval(np.array([0.25]), confidence) == [0.25, 0.25]


# --------------------------------------------------------- items: details found by mutation testing
def test_unanimous_items_have_intervals_that_touch_0_and_1_exactly() -> None:
    n = np.arange(1, 400)
    for confidence in (0.9, 0.95, 0.99):
        low, _ = wilson_interval(np.zeros_like(n), n, confidence)
        _, high = wilson_interval(n, n, confidence)
        assert (low == 0.0).all() and (high == 1.0).all()  # rounding alone would leave +-1e-16


def test_wilson_defaults_to_95_percent_and_is_silent_without_votes() -> None:
    import warnings

    low, high = wilson_interval(np.array([3]), np.array([10]))
    assert [low[0], high[0]] == pytest.approx(list(proportion_confint(3, 10, alpha=0.05, method="wilson")))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 0/0 or x/0 RuntimeWarning for items without votes
        low, high = wilson_interval(np.array([0, 2]), np.array([0, 4]))
    assert np.isnan(low[0]) and np.isnan(high[0]) and 0 < low[1] < 0.5 < high[1] < 1


def test_per_item_table_sorts_items_keeps_integer_counts_and_rates_single_votes() -> None:
    table = per_item_table(_votes({"z": ["vib", "baseline", "vib"], "a": ["baseline"], "m": ["vib"]}))
    assert table["item"].tolist() == ["a", "m", "z"]  # sorted, whatever the order of the votes
    assert table["label"].tolist() == ["label of a", "label of m", "label of z"]
    assert table["k"].dtype == np.int64 and table["n"].dtype == np.int64
    assert table["rate"].tolist() == pytest.approx([0.0, 1.0, 2 / 3])  # one vote is a rate too
    assert table["outcome"].tolist() == ["lost", "won", "won"]


@pytest.mark.parametrize(("choices", "expected"), [
    ({"a": ["vib"], "b": ["vib", "vib"]}, {"won": 2, "lost": 0, "ties": 0, "total": 2, "without_votes": 0}),
    ({"a": ["baseline"]}, {"won": 0, "lost": 1, "ties": 0, "total": 1, "without_votes": 0}),
    ({"a": ["vib", "baseline"]}, {"won": 0, "lost": 0, "ties": 1, "total": 1, "without_votes": 0}),
])
def test_item_level_summary_when_outcomes_are_missing(choices: dict, expected: dict) -> None:
    summary = item_level_summary(per_item_table(_votes(choices)))
    assert {k: summary[k] for k in expected} == expected
    decided = expected["won"] + expected["lost"]
    assert summary["rate"] == (expected["won"] / decided if decided else None)


# ------------------------------------------------------- crossed: details found by mutation testing
def _small_table():  # noqa: ANN202
    rng = np.random.default_rng(8)
    rater, item = rng.integers(0, 5, 120), rng.integers(0, 6, 120)
    return cell_table(rater, item, (rng.random(120) < 0.4 + 0.1 * rater).astype(float))


def test_crossed_intervals_are_the_three_bootstraps_with_their_seeds_and_level() -> None:
    rng = np.random.default_rng(8)
    rater, item = rng.integers(0, 5, 120), rng.integers(0, 6, 120)
    y = (rng.random(120) < 0.4 + 0.1 * rater).astype(float)
    table = cell_table(rater, item, y)
    result = crossed_intervals(rater, item, y, replicates=50, seed=11, confidence=0.8)
    assert result == {
        "two_way": bootstrap_rate(table, replicates=50, seed=11, confidence=0.8),
        "items_only": bootstrap_rate(table, replicates=50, seed=12, confidence=0.8, resample_raters=False),
        "raters_only": bootstrap_rate(table, replicates=50, seed=13, confidence=0.8, resample_items=False),
    }
    assert crossed_intervals(rater, item, y) == crossed_intervals(rater, item, y, replicates=2000, seed=0,
                                                                  confidence=0.95)


def test_bootstrap_rate_reports_the_replicates_it_drew() -> None:
    table = _small_table()
    for confidence in (0.8, 0.95):
        result = bootstrap_rate(table, replicates=10, seed=3, confidence=confidence)
        same = bilinear_replicates(table, 10, np.random.default_rng(3))
        assert result["se"] == pytest.approx(np.std(same, ddof=1), rel=1e-12)
        assert result["ci"] == percentile_interval(same, confidence)
    default = bootstrap_rate(table)
    assert default == bootstrap_rate(table, replicates=2000, seed=0, confidence=0.95)
    assert default["replicates"] == 2000
    assert bootstrap_rate(table, replicates=1)["se"] is None  # one replicate has no spread
    assert isinstance(bootstrap_rate(table, replicates=2)["se"], float)
    assert percentile_interval(np.linspace(0, 1, 41)) == pytest.approx([0.025, 0.975])  # 95 % by default


def test_block_size_only_bounds_memory() -> None:
    """One block of any size gives the same draws; several blocks give finite replicates too."""
    table = _small_table()
    by_block = [bilinear_replicates(table, 300, np.random.default_rng(4), block=b) for b in (256, 300, 1000)]
    assert np.array_equal(by_block[1], by_block[2])
    assert by_block[0].shape == (300,) and np.isfinite(by_block[0]).all()


def test_a_single_vote_and_boolean_or_missing_outcomes() -> None:
    one = cell_table(np.array(["r"]), np.array(["i"]), np.array([1.0]))
    result = bootstrap_rate(one, replicates=20)
    assert (result["estimate"], result["ci"], result["failed"], result["se"]) == (1.0, [1.0, 1.0], 0, 0.0)
    table = cell_table(["r1", "r1", "r2"], ["b", "b", "a"], np.array([True, True, False]))
    assert table.successes.toarray().tolist() == [[0, 2], [0, 0]]  # two successes, not logical OR
    assert list(table.items) == ["a", "b"]  # sorted, not in order of appearance
    with_none = cell_table(["r1", "r2", "r2"], ["z", "y", "z"], [1, None, 0])
    assert with_none.trials.sum() == 2 and list(with_none.items) == ["z"]
    assert list(with_none.raters) == ["r1", "r2"]
    assert multinomial_weights(1, 4, np.random.default_rng(0)).tolist() == [[1.0]] * 4
