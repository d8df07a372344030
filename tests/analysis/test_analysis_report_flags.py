"""The report's exclusion and confidence flags change the numbers they should, counted by hand.

A hand-edited study with one rater per rule (unfinished, one failed check, two failed checks, a
speeder, one lone fast vote, exactly half fast votes, a vote at exactly the threshold), so every
flag's effect on the counts in summary.json is known in advance.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.exclusions import ExclusionRules, apply_exclusions
from analysis.load import load_votes
from analysis.report import main
from survey.votes_format import write_votes_csv
from testing.simulated_votes import simulate_votes

UNFINISHED, ONE_FAIL, TWO_FAILS, SPEEDER, LONE_FAST, HALF_FAST, AT_THRESHOLD = (
    f"r-{i:04d}" for i in range(7)
)


def _fail_check(frame: pd.DataFrame, row: int) -> None:
    """Answer attention check `row` with the other method (and its side)."""
    expected = frame.at[row, "expected_method"]
    left, right = frame.at[row, "left_method"], frame.at[row, "right_method"]
    wrong = right if left == expected else left
    frame.at[row, "chosen_method"] = wrong
    frame.at[row, "chosen_side"] = "left" if wrong == left else "right"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    f = simulate_votes(12, 8, 0.7, 0.5, 1.0, seed=3, attention_checks=2).copy()
    assert not f["rater_finished"].eq(False).any()
    f["response_ms"] = 2000
    f.loc[f["rater"] == UNFINISHED, "rater_finished"] = False
    checks = f.index[f["attention_check"]]
    _fail_check(f, checks[f.loc[checks, "rater"].eq(ONE_FAIL)][0])
    for row in checks[f.loc[checks, "rater"].eq(TWO_FAILS)]:
        _fail_check(f, row)
    f.loc[f["rater"] == SPEEDER, "response_ms"] = 100
    f.loc[f.index[f["rater"] == LONE_FAST][0], "response_ms"] = 100
    half = f.index[f["rater"] == HALF_FAST]
    f.loc[half[: len(half) // 2], "response_ms"] = 499.0
    f.loc[f.index[f["rater"] == AT_THRESHOLD][:3], "response_ms"] = 500.0  # not faster than 500: kept
    assert len(half) % 2 == 0
    return f


def votes_of(frame: pd.DataFrame, rater: str) -> int:
    return int((frame["rater"] == rater).sum())


def report(tmp_path: Path, frame: pd.DataFrame, *flags: str) -> dict:
    csv = tmp_path / "votes.csv"
    if not csv.exists():
        write_votes_csv(frame, csv)
    out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
    assert main(["--votes", str(csv), "--out", str(out), "--bootstrap", "200", "--no-mixed", *flags]) == 0
    return json.loads((out / "summary.json").read_text())


def steps(summary: dict) -> dict[str, tuple[int, int, list[str]]]:
    return {s["rule"]: (s["raters"], s["votes"], s["rater_ids"]) for s in summary["exclusions"]["steps"]}


def test_default_flags_remove_one_rater_per_rule(tmp_path: Path, frame: pd.DataFrame) -> None:
    summary = report(tmp_path, frame)
    half_fast = votes_of(frame, HALF_FAST) // 2
    assert steps(summary) == {
        "unfinished": (1, votes_of(frame, UNFINISHED), [UNFINISHED]),
        "attention": (2, votes_of(frame, ONE_FAIL) + votes_of(frame, TWO_FAILS), [ONE_FAIL, TWO_FAILS]),
        "speeders": (1, votes_of(frame, SPEEDER), [SPEEDER]),
        "fast_votes": (0, 1 + half_fast, []),
    }
    ex = summary["exclusions"]
    assert ex["votes_before"] == len(frame) and ex["raters_before"] == 12
    assert ex["raters_after"] == 12 - 4 == summary["n_raters"] and ex["raters_excluded"] == 4
    removed = sum(v for _, v, _ in steps(summary).values())
    assert ex["votes_excluded"] == ex["votes_before"] - ex["votes_after"] == removed
    assert ex["rules"] == {"exclude_unfinished": True, "max_failed_checks": 0, "min_response_ms": 500.0,
                           "max_fast_fraction": 0.5}
    assert summary["without_exclusions"]["n_raters"] == 12


def test_keep_unfinished_keeps_the_unfinished_rater(tmp_path: Path, frame: pd.DataFrame) -> None:
    summary = report(tmp_path, frame, "--keep-unfinished")
    assert "unfinished" not in steps(summary) and summary["n_raters"] == 9
    assert summary["exclusions"]["rules"]["exclude_unfinished"] is False


def test_keep_failed_checks_turns_the_attention_rule_off(tmp_path: Path, frame: pd.DataFrame) -> None:
    summary = report(tmp_path, frame, "--keep-failed-checks")
    assert "attention" not in steps(summary) and summary["n_raters"] == 10
    assert summary["exclusions"]["rules"]["max_failed_checks"] is None


def test_max_failed_checks_allows_that_many_failures(tmp_path: Path, frame: pd.DataFrame) -> None:
    summary = report(tmp_path, frame, "--max-failed-checks", "1")
    assert steps(summary)["attention"] == (1, votes_of(frame, TWO_FAILS), [TWO_FAILS])
    assert summary["n_raters"] == 9
    assert "more than 1 failed attention check" in summary["exclusions"]["steps"][1]["detail"]
    assert main(["--votes", str(tmp_path / "votes.csv"), "--out", str(tmp_path / "x"),
                 "--max-failed-checks", "-1"]) == 1


def test_response_time_flags(tmp_path: Path, frame: pd.DataFrame) -> None:
    off = report(tmp_path, frame, "--min-response-ms", "0")
    assert set(steps(off)) == {"unfinished", "attention"} and off["n_raters"] == 9
    no_speeders = report(tmp_path, frame, "--max-fast-fraction", "1")
    assert "speeders" not in steps(no_speeders)
    fast = votes_of(frame, SPEEDER) + 1 + votes_of(frame, HALF_FAST) // 2
    assert steps(no_speeders)["fast_votes"][1] == fast
    everything = report(tmp_path, frame, "--no-exclusions")
    assert steps(everything) == {} and everything["exclusions"]["votes_after"] == len(frame)


@pytest.mark.parametrize("confidence", [0.90, 0.99])
def test_confidence_sets_every_interval(tmp_path: Path, frame: pd.DataFrame, confidence: float) -> None:
    summary = report(tmp_path, frame, "--confidence", str(confidence))
    b = summary["binomial"]
    exact = stats.binomtest(b["k"], b["n"]).proportion_ci(confidence_level=confidence, method="exact")
    assert b["ci_exact"] == pytest.approx([exact.low, exact.high])
    default = report(tmp_path, frame)
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    for key in ("two_way_bootstrap",):
        if confidence > 0.95:
            assert width(summary[key]["ci"]) > width(default[key]["ci"])
        else:
            assert width(summary[key]["ci"]) < width(default[key]["ci"])


def test_rule_boundaries_and_details(frame: pd.DataFrame) -> None:
    rules = ExclusionRules(exclude_unfinished=False, max_failed_checks=2)
    result = apply_exclusions(load_votes(frame), rules)
    s = {step["rule"]: step for step in result.report["steps"]}
    assert s["attention"]["raters"] == 0 and s["attention"]["votes"] == 0  # 2 failures is not more than 2
    assert s["attention"]["detail"] == "raters with more than 2 failed attention check(s)"
    assert s["speeders"]["detail"] == "raters with more than 50% of votes under 500 ms"
    assert s["fast_votes"]["detail"] == "single votes under 500 ms"
    kept = result.votes.frame
    assert HALF_FAST in set(kept["rater"])          # exactly half fast is not more than half
    assert (kept.loc[kept["rater"] == AT_THRESHOLD, "response_ms"] == 500.0).sum() == 3
    assert list(s) == ["attention", "speeders", "fast_votes"]


def test_rater_ids_are_sorted_and_capped_at_50() -> None:
    frame = simulate_votes(60, 3, 0.7, 0.5, 1.0, seed=4, unfinished_raters=55)
    result = apply_exclusions(load_votes(frame), ExclusionRules(max_failed_checks=None, min_response_ms=None))
    step = result.report["steps"][0]
    unfinished = sorted(frame.loc[~frame["rater_finished"], "rater"].unique())
    assert step["raters"] == 55 and step["rater_ids"] == unfinished[:50]
    assert result.report["raters_after"] == 5 and np.all(result.votes.frame["rater_finished"])


def test_rules_that_keep_everything_say_so(frame: pd.DataFrame) -> None:
    rules = ExclusionRules.none().as_dict()
    assert rules == {"exclude_unfinished": False, "max_failed_checks": None, "min_response_ms": None,
                     "max_fast_fraction": None}
    assert rules["exclude_unfinished"] is False
    step = apply_exclusions(load_votes(frame), ExclusionRules(max_failed_checks=None, min_response_ms=None))
    assert step.report["steps"][0]["detail"] == "raters who did not finish their sequence"


def test_kept_votes_have_the_same_columns_and_a_fresh_index(frame: pd.DataFrame) -> None:
    votes = load_votes(frame)
    kept = apply_exclusions(votes).votes.frame
    assert list(kept.columns) == list(votes.frame.columns)  # no stray "index" column
    assert kept.index.tolist() == list(range(len(kept))) and len(kept) < len(votes.frame)


def test_everything_excluded_names_each_rules_count(frame: pd.DataFrame) -> None:
    from analysis.load import VotesError

    fast = frame.assign(response_ms=10)
    with pytest.raises(VotesError) as error:
        apply_exclusions(load_votes(fast))
    unfinished, failed = votes_of(frame, UNFINISHED), votes_of(frame, ONE_FAIL) + votes_of(frame, TWO_FAILS)
    speeders = len(frame) - unfinished - failed
    assert (f"(unfinished: {unfinished} votes, attention: {failed} votes, speeders: {speeders} votes, "
            "fast_votes: 0 votes)") in str(error.value)
