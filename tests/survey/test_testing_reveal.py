"""testing/reveal.py looks behind the blinding: what it reveals for each trial a rater is shown must be
what the export later records for that vote (an independent path through survey.export)."""
from __future__ import annotations

from pathlib import Path

import pytest

from survey import service
from survey.db import get_engine
from survey.export import votes_frame
from survey.importer import import_package
from testing.reveal import reveal_trial, vote_count


def test_reveal_matches_the_export_and_vote_count_counts(sqlite_url: str, sample_package: Path) -> None:
    engine = get_engine(sqlite_url)
    import_package(engine, sample_package, repeats=1)
    service.start_rater(engine, "demo", "r1")
    revealed = {}
    while (trial := service.next_trial(engine, "demo", "r1")) is not None:
        truth = reveal_trial(engine, trial.token)
        revealed[trial.position] = truth
        side = "A" if truth.left_method == truth.proposed_method else "B"  # always pick the proposed map
        assert service.record_vote(engine, "demo", "r1", trial.token, side).recorded
        assert vote_count(engine, "demo") == trial.position
    frame = votes_frame(sqlite_url, "demo").set_index("position")
    assert len(frame) == len(revealed) == 8  # 6 items, 1 attention check, 1 repeat
    for position, truth in revealed.items():
        row = frame.loc[position]
        assert (row["item"], row["left_method"], row["right_method"]) == (
            truth.item, truth.left_method, truth.right_method)
        assert (bool(row["attention_check"]), bool(row["repeat"])) == (truth.is_attention_check, truth.is_repeat)
        assert row["chosen_method"] == truth.proposed_method == "vib"
        assert (row["expected_method"] or None) == truth.expected_method


def test_unknown_token_and_unknown_study_are_errors(sqlite_url: str, sample_package: Path) -> None:
    engine = get_engine(sqlite_url)
    import_package(engine, sample_package)
    with pytest.raises(service.SurveyError):
        reveal_trial(engine, "no-such-token")
    with pytest.raises(service.SurveyError):
        vote_count(engine, "no-such-study")
