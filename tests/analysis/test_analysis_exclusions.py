"""Exclusion rules: each removes exactly the simulated careless, unfinished or fast raters, with counts."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.exclusions import ExclusionRules, apply_exclusions
from analysis.load import VotesError, load_votes


def test_default_rules_remove_known_bad_raters(study_frame: pd.DataFrame) -> None:
    truth = study_frame.attrs["truth"]
    result = apply_exclusions(load_votes(study_frame))
    steps = {s["rule"]: s for s in result.report["steps"]}
    assert steps["unfinished"]["rater_ids"] == truth["unfinished"]
    assert steps["unfinished"]["votes"] == int((~study_frame["rater_finished"]).sum())
    # careless raters fail checks about half the time; whoever failed one is gone and nobody else
    failed = set(
        study_frame.loc[
            study_frame["attention_check"] & (study_frame["chosen_method"] != study_frame["expected_method"]),
            "rater",
        ]
    )
    assert set(steps["attention"]["rater_ids"]) == failed - set(truth["unfinished"])
    kept = set(result.votes.frame["rater"])
    assert not kept & (failed | set(truth["unfinished"]))
    report = result.report
    assert report["votes_before"] - report["votes_after"] == sum(s["votes"] for s in report["steps"])
    assert report["raters_after"] == len(kept)


def test_speeders_and_fast_votes() -> None:
    from testing.simulated_votes import simulate_votes

    frame = simulate_votes(12, 10, 0.7, 0.5, 1.0, seed=2, careless_raters=3)  # careless = ~350 ms
    result = apply_exclusions(load_votes(frame), ExclusionRules(max_failed_checks=None))
    steps = {s["rule"]: s for s in result.report["steps"]}
    assert steps["speeders"]["rater_ids"] == frame.attrs["truth"]["careless"]
    assert steps["fast_votes"]["votes"] == int((result.votes.frame["response_ms"] < 500).sum()) == 0
    lone = frame.copy()
    lone.loc[lone["rater"] == "r-0005", "response_ms"] = [100] + [4000] * 9
    result = apply_exclusions(load_votes(lone), ExclusionRules(max_failed_checks=None))
    assert {s["rule"]: s["votes"] for s in result.report["steps"]}["fast_votes"] == 1


def test_rules_can_be_switched_off(study_frame: pd.DataFrame) -> None:
    result = apply_exclusions(load_votes(study_frame), ExclusionRules.none())
    assert result.report["votes_excluded"] == 0 and result.report["steps"] == []
    assert len(result.votes.frame) == len(study_frame)


def test_everything_excluded_is_a_clear_error(study_frame: pd.DataFrame) -> None:
    slow = study_frame.assign(response_ms=10)
    with pytest.raises(VotesError, match="every comparison vote was excluded.*--min-response-ms") as error:
        apply_exclusions(load_votes(slow))
    # the fix is spelled out as flags the analyst can paste, in the report's own syntax
    assert str(error.value).endswith("; loosen the exclusion flags (e.g. --keep-unfinished, "
                                     "--max-failed-checks N, --min-response-ms 0) or use --no-exclusions")
