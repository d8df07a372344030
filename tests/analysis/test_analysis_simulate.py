"""Contract D: crossed-design probabilities (`analysis.simulate`) and the simulated votes tables built on
them for tests and benchmarks (`testing.simulated_votes`), in the contract C format."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.simulate import crossed_preference_probabilities, logistic, logit, marginal_rate
from survey.votes_format import COLUMNS, normalise
from testing.simulated_votes import simulate_pairwise_votes, simulate_votes


def test_probabilities_follow_the_crossed_logistic_model() -> None:
    rng = np.random.default_rng(0)
    p = crossed_preference_probabilities(400, 300, 0.7, 0.5, 1.0, rng)
    assert p.shape == (400, 300) and ((p > 0) & (p < 1)).all()
    effects = logit(p) - logit(0.7)  # = u_r + v_i: additive, so double centring removes it
    residual = effects - effects.mean(1, keepdims=True) - effects.mean(0, keepdims=True) + effects.mean()
    assert np.abs(residual).max() < 1e-8
    assert effects.mean(1).std() == pytest.approx(0.5, rel=0.15)  # rater sd
    assert effects.mean(0).std() == pytest.approx(1.0, rel=0.15)  # item sd


def test_zero_variance_gives_the_rate_everywhere() -> None:
    p = crossed_preference_probabilities(3, 4, 0.6, 0.0, 0.0, np.random.default_rng(0))
    np.testing.assert_allclose(p, 0.6)


def test_marginal_rate_matches_monte_carlo() -> None:
    rng = np.random.default_rng(1)
    draws = logistic(logit(0.7) + rng.normal(0, 0.5, 400_000) + rng.normal(0, 1.0, 400_000))
    assert marginal_rate(0.7, 0.5, 1.0) == pytest.approx(draws.mean(), abs=2e-3)
    assert 0.5 < marginal_rate(0.7, 0.5, 1.0) < 0.7  # attenuated towards one half


def test_votes_have_contract_c_columns_in_order() -> None:
    frame = simulate_votes(5, 4, 0.7, 0.5, 1.0, seed=0)
    assert tuple(frame.columns) == COLUMNS
    pd.testing.assert_frame_equal(frame, normalise(frame))  # already in the contract's dtypes
    assert len(frame) == 20 and frame.groupby("rater")["item"].nunique().eq(4).all()
    assert set(frame["chosen_method"]) <= {"vib", "baseline"}
    shown = frame[["left_method", "right_method"]].apply(set, axis=1)
    assert shown.map(lambda s: s == {"vib", "baseline"}).all()
    assert ((frame["chosen_side"] == "left") == (frame["chosen_method"] == frame["left_method"])).all()
    assert frame["created_at"].str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$").all()
    assert frame.groupby("rater")["position"].apply(lambda p: sorted(p) == list(range(1, 5))).all()


def test_same_seed_same_votes_and_options_add_their_trials() -> None:
    a = simulate_votes(
        10,
        6,
        0.7,
        0.5,
        1.0,
        seed=3,
        repeats=2,
        attention_checks=1,
        unfinished_raters=2,
        careless_raters=1,
        side_pickers=1,
        no_preference=0.1,
    )
    b = simulate_votes(
        10,
        6,
        0.7,
        0.5,
        1.0,
        seed=3,
        repeats=2,
        attention_checks=1,
        unfinished_raters=2,
        careless_raters=1,
        side_pickers=1,
        no_preference=0.1,
    )
    assert a.equals(b)
    finished = a[a["rater_finished"]]
    assert finished.groupby("rater").size().eq(6 + 2 + 1).all()
    assert (
        a.groupby("rater").size().max() == 9 and a[~a["rater_finished"]].groupby("rater").size().lt(9).all()
    )
    repeats = finished[finished["repeat"] == 1]
    first = finished[(finished["repeat"] == 0) & ~finished["attention_check"]].set_index(["rater", "item"])
    swapped = repeats.set_index(["rater", "item"]).merge(
        first, left_index=True, right_index=True, suffixes=("", "_first")
    )
    assert (swapped["left_method"] == swapped["right_method_first"]).all()  # sides swapped on repeat
    assert (swapped["position"] > swapped["position_first"]).all()
    picker = a.attrs["truth"]["side_pickers"][0]
    assert (a.loc[a["rater"] == picker, "chosen_side"] == "left").all()
    checks = a[a["attention_check"]]
    assert (checks["expected_method"] == "vib").all()


def test_rate_is_recovered_in_a_large_study() -> None:
    frame = simulate_votes(200, 200, 0.7, 0.3, 0.3, seed=5)
    observed = (frame["chosen_method"] == "vib").mean()
    assert observed == pytest.approx(marginal_rate(0.7, 0.3, 0.3), abs=0.02)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="items_per_rater"):
        simulate_votes(3, 3, 0.7, 0.5, 1.0, items_per_rater=5)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        simulate_votes(3, 3, 1.0, 0.5, 1.0)
    with pytest.raises(ValueError, match="exceeds n_raters"):
        simulate_votes(3, 3, 0.7, 0.5, 1.0, careless_raters=2, unfinished_raters=2)


def test_pairwise_votes_compare_every_pair() -> None:
    frame = simulate_pairwise_votes(4, 3, {"a": 0.0, "b": 0.5, "c": 1.0}, seed=0)
    pairs = frame[["left_method", "right_method"]].apply(lambda r: tuple(sorted(r)), axis=1)
    assert set(pairs) == {("a", "b"), ("a", "c"), ("b", "c")}
    assert len(frame) == 4 * 3 * 3


def test_metric_driven_probabilities_follow_the_documented_mapping() -> None:
    from analysis.simulate import logistic, metric_driven_probabilities

    rng = np.random.default_rng(0)
    d = np.array([-0.2, 0.0, 0.05, 0.3])
    p = metric_driven_probabilities(3, d, 15.0, 0.0, 0.0, rng)
    assert p.shape == (3, 4)
    np.testing.assert_allclose(p, np.tile(logistic(15.0 * d), (3, 1)))
    assert p[0, 1] == pytest.approx(0.5)  # identical maps: no preference
    noisy = metric_driven_probabilities(2000, np.zeros(50), 15.0, 0.5, 0.5, np.random.default_rng(1))
    assert abs(noisy.mean() - 0.5) < 0.02 and noisy.std() > 0.05  # noise spreads raters and items around 0.5
    with pytest.raises(ValueError, match="sensitivity"):
        metric_driven_probabilities(3, d, -1.0, 0.0, 0.0, rng)
    with pytest.raises(ValueError, match="finite"):
        metric_driven_probabilities(3, np.array([np.nan]), 1.0, 0.0, 0.0, rng)


def test_metric_differences_pair_the_two_methods_per_item() -> None:
    from analysis.simulate import metric_differences

    rows = [{"item": "a", "method": "vib", "energy_in_mask": "0.5"},
            {"item": "a", "method": "baseline", "energy_in_mask": "0.2"},
            {"item": "b", "method": "vib", "energy_in_mask": "0.1"},
            {"item": "c", "method": "baseline", "energy_in_mask": "0.1"},
            {"item": "d", "method": "vib", "energy_in_mask": ""},
            {"item": "d", "method": "baseline", "energy_in_mask": "0.3"}]
    assert metric_differences(rows, "vib", "baseline") == pytest.approx({"a": 0.3})
    with pytest.raises(ValueError, match="no column"):
        metric_differences([{"item": "a", "method": "vib"}], "vib", "baseline")


def test_conclusion_says_when_the_raters_were_simulated() -> None:
    import pandas as pd

    from analysis.summary import AnalysisOptions, conclusion, simulated_raters

    assert simulated_raters(pd.Series(["sim-001", "sim-002", "sim-001"])) == (2, 2)
    assert simulated_raters(pd.Series(["alice", "sim-001", "simon"])) == (1, 3)
    summary = {"proposed_rate": 0.8, "two_way_bootstrap": {"ci": [0.7, 0.9]}, "binomial": {"n": 100},
               "n_raters": 10, "n_items": 10, "study": {"proposed": "vib", "baseline": "baseline"}}
    people = conclusion(summary, AnalysisOptions())
    assert "people prefer vib" in people and "imulated" not in people
    simulated = conclusion({**summary, "simulated_raters": (10, 10)}, AnalysisOptions())
    assert simulated.startswith("Simulated raters") and "simulated raters prefer vib" in simulated
    assert "people" not in simulated.replace("not people", "")
    mixed = conclusion({**summary, "simulated_raters": (3, 10)}, AnalysisOptions())
    assert mixed.startswith("3 of 10 raters are simulated")
