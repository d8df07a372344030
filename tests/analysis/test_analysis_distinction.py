"""The distinction task's analysis (issue 14): statistics against independent implementations and
planted truths, the study loader's split by task, and the report on distinction and mixed studies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from analysis.distinction import (
    calibration,
    distinction_results,
    method_accuracy,
    method_differences,
    mixed_difference,
    runner_up,
)
from analysis.distinction_answers import CHANCE
from analysis.distinction_power import distinction_logits, marginal_accuracy, plan_design
from analysis.exclusions import ExclusionRules
from analysis.load import VotesError, load_votes
from analysis.render import build_blocks, to_markdown
from analysis.report import main as report_main
from analysis.simulate import logistic
from analysis.summary import STABLE_KEYS, AnalysisOptions, run_analysis
from analysis.tasks import load_study
from survey.votes_format import write_votes_csv
from testing.distinction_votes import simulate_distinction_votes, with_task
from testing.simulated_votes import simulate_votes

FAST = AnalysisOptions(replicates=300, seed=0, mixed=False)


def regular(frame: pd.DataFrame, **kwargs) -> pd.DataFrame:
    """The analysed answers (first showings of real items) of a simulated frame."""
    return load_study(frame, **kwargs).distinction.regular


@pytest.fixture(scope="module")
def study() -> pd.DataFrame:
    return simulate_distinction_votes(
        12,
        20,
        {"vib": 0.55, "gradcam": 0.35},
        calibration_slope=0.4,
        attention_checks=2,
        check_failers=1,
        unfinished_raters=1,
        careless_raters=1,
        seed=1,
    )


# --- statistics against independent implementations ------------------------------------------------


def test_binomial_results_match_scipy_and_statsmodels(study: pd.DataFrame) -> None:
    answers = regular(study)
    vib = answers[answers["method"] == "vib"]
    result = method_accuracy(vib, replicates=200)
    k, n = int(vib["correct"].sum()), len(vib)
    assert (result["k"], result["n_answers"]) == (k, n) and result["accuracy"] == pytest.approx(k / n)
    assert result["p_greater"] == pytest.approx(
        stats.binomtest(k, n, 0.25, alternative="greater").pvalue, rel=1e-12
    )
    assert result["p_two_sided"] == pytest.approx(stats.binomtest(k, n, 0.25).pvalue, rel=1e-12)
    assert result["ci_exact"] == pytest.approx(list(proportion_confint(k, n, 0.05, method="beta")), abs=1e-9)
    assert result["ci_wilson"] == pytest.approx(
        list(proportion_confint(k, n, 0.05, method="wilson")), abs=1e-9
    )
    assert result["n_raters"] == vib["rater"].nunique() and result["n_items"] == 20


def test_mixed_model_difference_agrees_with_the_pooled_estimate() -> None:
    answers = regular(
        simulate_distinction_votes(12, 20, {"vib": 0.55, "gradcam": 0.35}, item_method_sd=0.3, seed=12)
    )
    boot = method_differences(answers, ["vib", "gradcam"], replicates=500)[0]
    mixed = mixed_difference(answers, ["vib", "gradcam"])
    assert mixed["fitted"], mixed
    (diff,) = mixed["differences"]
    # balanced design (every rater answers every item): the GLS estimate is the difference of means
    assert diff["estimate"] == pytest.approx(boot["estimate"], abs=1e-6)
    width = lambda ci: ci[1] - ci[0]
    assert 0.5 < width(diff["ci"]) / width(boot["ci_bootstrap"]) < 2


# --- intervals on simulated studies ------------------------------------------------------------------


def test_difference_interval_covers_near_nominal() -> None:
    """Items crossed with methods, raters nested: the shared-item bootstrap covers the true difference."""
    result = plan_design(12, 20, [0.55, 0.35], 0.6, 0.8, 0.4, sims=300, replicates=300, seed=7)
    assert 0.9 <= result["coverage"] <= 1.0, result


def test_accuracy_interval_covers_near_nominal_and_the_binomial_does_not() -> None:
    truth = marginal_accuracy(0.5, 0.8, 0.8, 0.0)
    hits = {"bootstrap": 0, "exact": 0}
    studies = 120
    rng = np.random.default_rng(3)
    for _ in range(studies):
        correct = rng.random((1, 10, 15)) < logistic(distinction_logits(10, 15, [0.5], 0.8, 0.8, 0.0, rng))
        frame = pd.DataFrame(
            {
                "rater": np.repeat(np.arange(10), 15),
                "item": np.tile(np.arange(15), 10),
                "y": correct[0].ravel().astype(float),
            }
        )
        result = method_accuracy(frame, replicates=300, seed=int(rng.integers(2**31)))
        for key, ci in (("bootstrap", result["ci_bootstrap"]), ("exact", result["ci_exact"])):
            hits[key] += ci[0] <= truth <= ci[1]
    assert hits["bootstrap"] / studies >= 0.88, hits
    assert hits["exact"] / studies <= 0.8, hits  # answers share raters and items: the pooled test is too sure


def test_difference_interval_respects_rater_clustering() -> None:
    """With a large rater effect, ignoring raters (Wald, items-only) gives intervals that are too narrow."""
    frame = simulate_distinction_votes(
        10, 30, {"vib": 0.5, "gradcam": 0.4}, rater_sd=1.5, item_sd=0.3, seed=4
    )
    (diff,) = method_differences(regular(frame), ["vib", "gradcam"], replicates=1000)
    width = lambda ci: ci[1] - ci[0]
    assert width(diff["ci_bootstrap"]) > 1.4 * width(diff["ci_naive"])
    assert width(diff["ci_bootstrap"]) > 1.4 * width(diff["ci_items_only"])
    # and the wide interval is the right one: over simulated studies the naive one misses the truth
    truth = marginal_accuracy(0.5, 1.5, 0.3, 0) - marginal_accuracy(0.4, 1.5, 0.3, 0)
    rng = np.random.default_rng(5)
    naive = 0
    for _ in range(150):
        p = logistic(distinction_logits(10, 30, [0.5, 0.4], 1.5, 0.3, 0.0, rng))
        c = rng.random(p.shape) < p
        a, b, n = c[0].mean(), c[1].mean(), c[0].size
        half = 1.96 * np.sqrt(a * (1 - a) / n + b * (1 - b) / n)
        naive += a - b - half <= truth <= a - b + half
    assert naive / 150 < 0.8
    assert plan_design(10, 30, [0.5, 0.4], 1.5, 0.3, 0.0, sims=150, replicates=300, seed=6)["coverage"] >= 0.9


def test_calibration_recovers_a_planted_slope() -> None:
    frame = simulate_distinction_votes(
        40, 30, {"vib": 0.5, "gradcam": 0.4}, rater_sd=0.0, item_sd=0.0, calibration_slope=0.5, seed=8
    )
    answers = regular(frame)
    result = calibration(answers, ["vib", "gradcam"], replicates=500)
    slope = result["slope"]
    assert slope["ci"][0] <= 0.5 <= slope["ci"][1] and abs(slope["log_odds_per_level"] - 0.5) < 0.15
    accuracy = [row["accuracy"] for row in result["levels"]]
    assert accuracy == sorted(accuracy)
    assert sum(row["n"] for row in result["levels"]) == len(answers)
    assert result["high_minus_low"]["ci_bootstrap"][0] > 0.15
    assert result["mean_confidence"]["correct"] > result["mean_confidence"]["wrong"]
    flat = simulate_distinction_votes(40, 30, {"vib": 0.5, "gradcam": 0.4}, rater_sd=0, item_sd=0, seed=9)
    none = calibration(regular(flat), ["vib", "gradcam"], replicates=500)
    assert none["slope"]["ci"][0] <= 0 <= none["slope"]["ci"][1]
    assert abs(none["high_minus_low"]["estimate"]) < 0.08


def test_runner_up_share_is_recovered() -> None:
    frame = simulate_distinction_votes(20, 30, {"vib": 0.4, "gradcam": 0.3}, runner_up=0.7, seed=10)
    result = runner_up(regular(frame), replicates=500)
    assert result["ci_bootstrap"][0] <= 0.7 <= result["ci_bootstrap"][1]
    assert result["p_greater"] < 1e-6  # far above 1/3
    assert result["by_rank"]["2"] == result["runner_up"] and sum(result["by_rank"].values()) == 1200
    uniform = simulate_distinction_votes(20, 30, {"vib": 0.4, "gradcam": 0.3}, runner_up=1 / 3, seed=11)
    ci = runner_up(regular(uniform), replicates=500)["ci_bootstrap"]
    assert ci[0] <= 1 / 3 <= ci[1]


# --- loading and validation ---------------------------------------------------------------------------


def test_exclusions_follow_the_pairwise_rules(study: pd.DataFrame) -> None:
    answers = load_study(study).distinction
    result, items = distinction_results(answers, ExclusionRules(), replicates=200, mixed=False)
    steps = {s["rule"]: s for s in result["exclusions"]["steps"]}
    assert steps["unfinished"]["raters"] == 2  # one per method
    assert steps["attention"]["raters"] == 4  # careless raters and check failers fail the checks
    assert result["n_raters"] == 24 - 6 and result["n_answers"] == 18 * 20
    kept = result["without_exclusions"]["n_answers"]
    assert kept > result["n_answers"]
    assert set(items.columns) >= {"item", "method", "answers", "correct", "accuracy"} and len(items) == 40
    assert result["design"]["failed_checks"] == 4 * 2 and result["design"]["raters_nested_in_methods"]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("chosen_index", 7, "chosen_index outside 0..3"),
        ("confidence", 9, "confidence outside 1..5"),
        ("correct", "maybe", "'correct' must be true/false"),
        ("task", "ranking", "'task' must be one of pairwise, distinction"),
    ],
)
def test_bad_distinction_rows_are_refused(study: pd.DataFrame, column: str, value, message: str) -> None:
    bad = study.copy()
    bad[column] = bad[column].astype(object)
    bad.loc[3, column] = value
    with pytest.raises(VotesError, match=message):
        load_study(bad)


def test_inconsistent_correct_and_rank_are_refused(study: pd.DataFrame) -> None:
    flipped = study.copy()
    row = flipped.index[~flipped["attention_check"]][0]
    flipped.loc[row, "correct"] = not flipped.loc[row, "correct"]
    with pytest.raises(VotesError, match="record correct"):
        load_study(flipped)
    ranked = study.copy()
    ranked.loc[row, "chosen_rank"] = 1.0 if ranked.loc[row, "chosen_rank"] != 1 else 3.0
    with pytest.raises(VotesError, match="chosen_rank 1"):
        load_study(ranked)
    with pytest.raises(VotesError, match="lacks column"):
        load_study(study.drop(columns="confidence"))


# --- the report ----------------------------------------------------------------------------------------


def _pairwise() -> pd.DataFrame:
    return simulate_votes(12, 10, 0.7, 0.5, 1.0, seed=2, study="distinction", attention_checks=1)


def test_pairwise_only_output_is_unchanged() -> None:
    """A pairwise study (with or without a task column) is analysed exactly as before issue 14."""
    frame = _pairwise()
    before = run_analysis(load_votes(frame), options=FAST)
    for source in (frame, frame.assign(task="pairwise"), frame.assign(task="")):
        after = run_analysis(load_study(source), options=FAST)
        assert json.dumps(after.summary) == json.dumps(before.summary)
        assert to_markdown(build_blocks(after), "t") == to_markdown(build_blocks(before), "t")
    assert "distinction" not in before.summary


def test_mixed_study_adds_a_distinction_section_and_keeps_the_pairwise_results(study: pd.DataFrame) -> None:
    pairwise = _pairwise()
    mixed = run_analysis(load_study(with_task(pairwise, study)), options=FAST)
    alone = run_analysis(load_votes(pairwise), options=FAST)
    for key in STABLE_KEYS:
        assert json.dumps(mixed.summary[key]) == json.dumps(alone.summary[key])
    assert mixed.summary["conclusion"] == alone.summary["conclusion"]
    d = mixed.summary["distinction"]
    assert d["chance"] == CHANCE and set(d["methods"]) == {"vib", "gradcam"}
    assert [(x["a"], x["b"]) for x in d["differences"]] == [("vib", "gradcam")]  # pairwise proposed first
    assert "## Distinction task" in to_markdown(build_blocks(mixed), "t")


def test_report_command_on_a_distinction_only_study(tmp_path: Path, study: pd.DataFrame, capsys) -> None:
    csv = write_votes_csv(study, tmp_path / "votes.csv")
    out = tmp_path / "report"
    rc = report_main(["--votes", str(csv), "--out", str(out), "--bootstrap", "300", "--proposed", "vib"])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert not set(STABLE_KEYS) & set(summary)
    assert "no pairwise" in summary["pairwise"]["skipped"]
    d = summary["distinction"]
    for method in ("vib", "gradcam"):
        entry = d["methods"][method]
        assert set(entry) >= {
            "accuracy",
            "n_answers",
            "n_raters",
            "p_greater",
            "p_two_sided",
            "ci_exact",
            "ci_bootstrap",
        }
        assert entry["ci_bootstrap"][0] <= entry["accuracy"] <= entry["ci_bootstrap"][1]
    assert d["differences"][0]["a"] == "vib" and d["differences"][0]["ci_bootstrap"][0] > 0
    assert [row["confidence"] for row in d["calibration"]["levels"]] == [1, 2, 3, 4, 5]
    assert d["mixed_model"]["fitted"]
    assert summary["conclusion"].startswith("Distinction task: with vib maps")
    report = (out / "report.md").read_text()
    assert "## Distinction task" in report and "skipped" in report and "Item level" not in report
    assert (out / "figures" / "distinction.png").stat().st_size > 1000
    assert not (out / "items.csv").exists()
    assert len(pd.read_csv(out / "distinction_items.csv")) == 40
    assert "Distinction task: with vib maps" in capsys.readouterr().out


def test_simulated_raters_are_named_in_the_distinction_conclusion(study: pd.DataFrame) -> None:
    sim = study.assign(rater="sim-" + study["rater"])
    result = run_analysis(load_study(sim), options=FAST)
    assert result.summary["conclusion"].startswith("Simulated raters, not people")
    assert "simulated raters picked" in result.summary["conclusion"]


def test_one_method_and_edge_cases(study: pd.DataFrame, tmp_path: Path) -> None:
    one = simulate_distinction_votes(6, 10, {"vib": 0.5}, seed=13)
    result = run_analysis(load_study(one), options=FAST)
    d = result.summary["distinction"]
    assert list(d["methods"]) == ["vib"] and d["differences"] == []
    assert "one method" in d["mixed_model"]["reason"]
    assert "Differences between methods" not in to_markdown(build_blocks(result), "t")
    with pytest.raises(VotesError, match="every distinction answer was excluded"):
        run_analysis(load_study(study.assign(rater_finished=False)), options=FAST)
    with pytest.raises(VotesError, match="no pairwise votes"):
        load_study(study, baseline="gradcam")
    with pytest.raises(VotesError, match="not a method"):
        load_study(study, proposed="lime")
    with pytest.raises(VotesError, match="several studies"):
        load_study(with_task(_pairwise(), study.assign(study="other")))
    both = load_study(with_task(_pairwise(), study.assign(study="other")), "other")
    assert both.pairwise is None and both.distinction.study == "other"
    html = tmp_path / "r"
    csv = write_votes_csv(study, tmp_path / "votes.csv")
    assert report_main(["--votes", str(csv), "--out", str(html), "--bootstrap", "200", "--no-mixed"]) == 0
    page = (html / "report.html").read_text()
    assert "<h2>Distinction task</h2>" in page and "data:image/png;base64," in page
    summary = json.loads((html / "summary.json").read_text())
    assert summary["distinction"]["mixed_model"]["reason"] == "turned off (--no-mixed)"
    metrics = run_analysis(load_study(study), options=FAST, metrics=pd.DataFrame({"item": ["i-00000"]}))
    assert any("--metrics ignored" in w for w in metrics.summary["warnings"])
    # the exclusion flags reach the distinction answers too
    kept = tmp_path / "kept"
    assert report_main(["--votes", str(csv), "--out", str(kept), "--bootstrap", "200", "--no-exclusions"]) == 0
    everything = json.loads((kept / "summary.json").read_text())["distinction"]
    assert everything["exclusions"]["votes_excluded"] == 0
    assert everything["n_answers"] == summary["distinction"]["without_exclusions"]["n_answers"]


def test_grouped_bootstrap_draws_raters_within_methods_and_items_once() -> None:
    from analysis.crossed import aligned_tables, bootstrap_rate, grouped_replicates, stratified_weights

    rng = np.random.default_rng(0)
    strata = np.array([0, 0, 0, 1, 1, 2])
    w = stratified_weights(strata, 500, rng)
    assert (w[:, :3].sum(1) == 3).all() and (w[:, 3:5].sum(1) == 2).all() and (w[:, 5] == 1).all()
    frame = simulate_distinction_votes(10, 15, {"vib": 0.5, "gradcam": 0.3}, rater_sd=0.3, item_sd=1.5, seed=14)
    answers = regular(frame)
    tables, raters, items = aligned_tables(answers, "method", ["vib", "gradcam"])
    assert tables["vib"].shape == tables["gradcam"].shape == (20, 15)
    assert tables["vib"].trials.sum() + tables["gradcam"].trials.sum() == len(answers)
    reps = grouped_replicates(tables, np.repeat([0, 1], 10), 2000, np.random.default_rng(1))
    # one method's replicates are the two-way bootstrap of that method alone
    alone = bootstrap_rate(tables["vib"], replicates=2000, seed=2)
    assert reps["vib"].std() == pytest.approx(alone["se"], rel=0.15)
    # items drawn once for both methods: shared item effects make the replicates correlate
    assert np.corrcoef(reps["vib"], reps["gradcam"])[0, 1] > 0.2
