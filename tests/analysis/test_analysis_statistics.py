"""Item level, crossed bootstrap, agreement, position bias, methods and metrics, cross-checked where
an independent implementation exists (statsmodels, krippendorff, brute force)."""

from __future__ import annotations

import itertools

import krippendorff
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss_kappa
from statsmodels.stats.multitest import multipletests

from analysis.agreement import (
    agreement_summary,
    category_counts,
    fleiss_kappa,
    krippendorff_alpha_nominal,
    retest_consistency,
)
from analysis.crossed import bootstrap_rate, cell_table
from analysis.items import item_level_summary, per_item_table
from analysis.load import VotesError, load_votes
from analysis.metric_agreement import metric_correlations
from analysis.multi import bradley_terry, compare_methods
from analysis.position import position_bias
from testing.simulated_votes import simulate_pairwise_votes, simulate_votes


def test_item_level_reproduces_a_table_2_count() -> None:
    # 15 items: 11 with a vib majority, 3 against, 1 tie -> sign test over 14 items
    rows = []
    for i in range(15):
        wins = 3 if i < 11 else (1 if i < 14 else 2)
        for r in range(4):
            rows.append(
                {
                    "item": f"i{i}",
                    "label": "x",
                    "y": float(r < wins),
                    "chosen_method": "vib" if r < wins else "b",
                }
            )
    table = per_item_table(pd.DataFrame(rows))
    summary = item_level_summary(table)
    assert (summary["won"], summary["lost"], summary["ties"], summary["total"]) == (11, 3, 1, 15)
    assert summary["p_two_sided"] == pytest.approx(stats.binomtest(11, 14).pvalue)
    from statsmodels.stats.proportion import proportion_confint

    row = table.set_index("item").loc["i0"]
    assert [row["ci_low"], row["ci_high"]] == pytest.approx(list(proportion_confint(3, 4, method="wilson")))


def test_cell_table_and_bootstrap_agree_with_direct_resampling() -> None:
    rng = np.random.default_rng(0)
    rater, item = rng.integers(0, 6, 200), rng.integers(0, 5, 200)
    y = (rng.random(200) < 0.6).astype(float)
    table = cell_table(rater, item, y)
    assert table.successes.sum() == y.sum() and table.trials.sum() == 200
    # One replicate done by hand: draw raters and items, recompute the pooled rate over the drawn cells.
    boot = bootstrap_rate(table, replicates=400, seed=3)
    direct, items_only = [], []
    rng2 = np.random.default_rng(11)
    for _ in range(400):
        wr = np.bincount(rng2.integers(0, 6, 6), minlength=6)
        wi = np.bincount(rng2.integers(0, 5, 5), minlength=5)
        weight = wr[rater] * wi[item]
        direct.append((weight * y).sum() / weight.sum())
        items_only.append((wi[item] * y).sum() / wi[item].sum())
    assert boot["estimate"] == pytest.approx(y.mean())
    assert boot["se"] == pytest.approx(np.std(direct, ddof=1), rel=0.2)
    one_way = bootstrap_rate(table, replicates=400, seed=3, resample_raters=False)
    assert one_way["se"] == pytest.approx(np.std(items_only, ddof=1), rel=0.2)
    # same seed, so an ignored flag would give the very same replicates
    assert one_way["se"] != boot["se"] and one_way["ci"] != boot["ci"]


def test_fleiss_kappa_matches_statsmodels_on_equal_counts() -> None:
    frame = simulate_votes(9, 25, 0.7, 0.5, 1.5, seed=4, no_preference=0.15)
    _, categories, counts = category_counts(load_votes(frame).comparisons)
    assert categories == ["baseline", "none", "vib"]
    assert fleiss_kappa(counts) == pytest.approx(statsmodels_fleiss_kappa(counts, method="fleiss"), abs=1e-12)


def test_krippendorff_alpha_matches_the_package_with_missing_ratings() -> None:
    frame = simulate_votes(10, 30, 0.7, 0.5, 1.5, seed=5, items_per_rater=20)  # every rater skips 10 items
    comparisons = load_votes(frame).comparisons
    items, categories, counts = category_counts(comparisons)
    code = {c: k for k, c in enumerate(categories)}
    wide = comparisons.assign(code=comparisons["chosen_method"].map(code)).pivot(
        index="rater", columns="item", values="code"
    )
    expected = krippendorff.alpha(reliability_data=wide.to_numpy(float), level_of_measurement="nominal")
    assert krippendorff_alpha_nominal(counts) == pytest.approx(expected, abs=1e-10)


def test_agreement_is_high_when_items_decide_and_undefined_when_unanimous() -> None:
    clear = simulate_votes(12, 30, 0.5, 0.0, 6.0, seed=6)  # items are either obvious wins or obvious losses
    summary = agreement_summary(load_votes(clear).comparisons, replicates=300)
    assert summary["fleiss_kappa"] > 0.6 and summary["krippendorff_alpha"] > 0.6
    low, high = summary["ci"]["fleiss_kappa"]
    assert low <= summary["fleiss_kappa"] <= high
    noise = simulate_votes(12, 30, 0.5, 0.0, 0.0, seed=6)
    assert abs(agreement_summary(load_votes(noise).comparisons, replicates=200)["fleiss_kappa"]) < 0.1
    unanimous = clear.assign(chosen_method="vib")
    unanimous["chosen_side"] = np.where(unanimous["left_method"] == "vib", "left", "right")
    result = agreement_summary(load_votes(unanimous).comparisons, replicates=200)
    assert result["observed"] == 1.0 and result["fleiss_kappa"] is None and "undefined" in result["note"]


def test_answers_are_coded_by_method_not_side() -> None:
    frame = simulate_votes(8, 10, 0.5, 0.0, 6.0, seed=7)
    swapped = frame.copy()  # swap every map's side but keep the chosen method: agreement must not move
    swapped[["left_method", "right_method"]] = frame[["right_method", "left_method"]].to_numpy()
    a = agreement_summary(load_votes(frame).comparisons, replicates=100)
    b = agreement_summary(load_votes(swapped).comparisons, replicates=100)
    assert a["fleiss_kappa"] == pytest.approx(b["fleiss_kappa"])


def test_test_retest_counts_same_method_across_swapped_sides() -> None:
    consistent = simulate_votes(10, 8, 0.5, 0.0, 8.0, seed=8, repeats=3)
    result = retest_consistency(load_votes(consistent).frame)
    assert result["pairs"] == 30 and result["same_method"] > 0.9 and result["same_side"] < 0.2
    assert retest_consistency(load_votes(simulate_votes(4, 4, 0.7, 0.5, 1.0, seed=1)).frame)["pairs"] == 0


def test_position_bias_is_found_and_side_pickers_flagged() -> None:
    frame = simulate_votes(20, 20, 0.7, 0.5, 1.0, seed=9, left_bias=1.0, side_pickers=2)
    result = position_bias(load_votes(frame).comparisons)
    assert result["left_rate"] > 0.6 and result["p_two_sided"] < 1e-6
    assert [r["rater"] for r in result["flagged_raters"]] == frame.attrs["truth"]["side_pickers"]
    side = result["by_side"]
    assert side["proposed_left"]["rate"] > side["proposed_right"]["rate"] and side["fisher_p"] < 0.01
    fair = position_bias(load_votes(simulate_votes(20, 20, 0.7, 0.5, 1.0, seed=9)).comparisons)
    assert fair["flagged_raters"] == [] and fair["p_two_sided"] > 0.01


def test_bradley_terry_matches_a_logistic_regression() -> None:
    frame = simulate_pairwise_votes(30, 10, {"baseline": 0.0, "gradcam": 0.4, "vib": 1.0}, seed=10)
    votes = load_votes(frame)
    result = compare_methods(votes.frame, votes.methods, replicates=200)
    strengths = {s["method"]: s["log_strength"] for s in result["bradley_terry"]}
    # Independent fit: logit P(a beats b) = s_a - s_b, one row per vote, baseline as reference.
    methods = ["gradcam", "vib"]
    loser = np.where(
        frame["chosen_method"] == frame["left_method"], frame["right_method"], frame["left_method"]
    )
    x = np.array(
        [
            [float(w == m) - float(lost == m) for m in methods]
            for w, lost in zip(frame["chosen_method"], loser)
        ]
    )
    fit = sm.GLM(np.ones(len(x)), x, family=sm.families.Binomial()).fit()
    for k, m in enumerate(methods):
        assert strengths[m] - strengths["baseline"] == pytest.approx(fit.params[k], abs=1e-6)
    for s in result["bradley_terry"]:
        assert s["ci"][0] < s["log_strength"] < s["ci"][1]
    p = [t["p_two_sided"] for t in result["pairwise"]]
    assert [t["p_holm"] for t in result["pairwise"]] == pytest.approx(
        list(multipletests(p, method="holm")[1])
    )
    wins = result["wins"]
    assert sum(wins[a][b] for a, b in itertools.permutations(votes.methods, 2)) == len(frame)


def test_bradley_terry_without_an_mle_warns_and_stays_finite() -> None:
    frame = simulate_pairwise_votes(5, 4, {"a": 0.0, "b": 0.0, "c": 0.0}, seed=0)
    frame.loc[frame["left_method"].eq("c") | frame["right_method"].eq("c"), "chosen_method"] = (
        "c"  # c never loses
    )
    result = compare_methods(
        load_votes(frame.assign(proposed_method="c", baseline_method="a")).frame,
        ["a", "b", "c"],
        replicates=100,
    )
    assert result["warnings"] and "does not exist" in result["warnings"][0]
    assert all(np.isfinite(s["log_strength"]) for s in result["bradley_terry"])
    assert max(result["bradley_terry"], key=lambda s: s["log_strength"])["method"] == "c"
    assert np.allclose(bradley_terry(np.array([[0, 3], [1, 0]])), [np.log(3) / 2, -np.log(3) / 2])


def test_metric_correlation_is_spearman_of_item_preference_and_difference() -> None:
    items = pd.DataFrame({"item": [f"i{k}" for k in range(8)], "rate": np.linspace(0.2, 0.9, 8)})
    rng = np.random.default_rng(0)
    rows = []
    for k in range(8):
        rows += [
            {"item": f"i{k}", "method": "vib", "pointing_game": 0.5 + 0.1 * k, "entropy": rng.random()},
            {"item": f"i{k}", "method": "baseline", "pointing_game": 0.5, "entropy": rng.random()},
        ]
    metrics = pd.DataFrame(rows)
    result = metric_correlations(items, metrics, "vib", "baseline")
    by = {c["metric"]: c for c in result["correlations"]}
    assert by["pointing_game"]["rho"] == pytest.approx(1.0)
    diff = metrics.pivot(index="item", columns="method", values="entropy")
    expected = stats.spearmanr(items["rate"], (diff["vib"] - diff["baseline"]).loc[items["item"]])
    assert by["entropy"]["rho"] == pytest.approx(expected.statistic) and by["entropy"]["lower_is_better"]
    with pytest.raises(VotesError, match="no rows for method"):
        metric_correlations(items, metrics.replace("vib", "VIB"), "vib", "baseline")
    with pytest.raises(VotesError, match="shares no item"):
        metric_correlations(items, metrics.assign(item="other"), "vib", "baseline")
