"""The admin summary on a study with repeats, attention checks, "no preference" and unfinished raters,
recounted independently from the exported votes (and scipy for the interval).

Repeats show the same item again with sides swapped; a rater who always clicks the same side
therefore votes for the other method on the repeat, so counting repeats would change the rate.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from scipy.stats import binomtest
from sqlalchemy import Engine

import survey.service as service
from survey.db import get_engine
from survey.export import votes_frame
from survey.importer import import_package
from testing.packages import make_package
from testing.reveal import reveal_trial, vote_count

# rater -> (choice on every trial, number of trials answered; None = all)
# ("proposed": always the proposed map, found with testing.reveal.reveal_trial, so the rate is far from 1/2)
RATERS = {"left-1": ("A", None), "left-2": ("A", None), "right-1": ("B", None), "none-1": ("none", None),
          "fan-1": ("proposed", None), "fan-2": ("proposed", None), "left-partial": ("A", 4), "idle": ("A", 0)}


@pytest.fixture()
def engine(sqlite_url: str, tmp_path: Path) -> Engine:
    package = make_package(tmp_path / "demo", n_items=6, n_checks=1, allow_no_preference=True)
    engine = get_engine(sqlite_url)
    import_package(engine, package, repeats=2)
    for rater, (choice, limit) in RATERS.items():
        service.start_rater(engine, "demo", rater)
        answered = 0
        while (limit is None or answered < limit) and (trial := service.next_trial(engine, "demo", rater)):
            click = choice
            if choice == "proposed":
                revealed = reveal_trial(engine, trial.token)
                click = "A" if revealed.left_method == revealed.proposed_method else "B"
            assert service.record_vote(engine, "demo", rater, trial.token, click).recorded
            answered += 1
    return engine


def test_preference_rate_counts_first_showings_of_regular_items_only(engine: Engine) -> None:
    summary = service.admin_summary(engine, "demo")
    frame = votes_frame(engine, "demo").fillna({"chosen_method": ""})
    assert (frame["repeat"] == 1).sum() >= 6  # the repeats are really there
    regular = frame[~frame["attention_check"] & (frame["repeat"] == 0)]
    decided = regular[regular["chosen_method"] != ""]
    k = int((decided["chosen_method"] == decided["proposed_method"]).sum())
    assert (summary.k, summary.n) == (k, len(decided))
    assert summary.no_preference == int((regular["chosen_method"] == "").sum()) > 0
    assert summary.proposed_rate == k / len(decided) > 0.6  # not 1/2: swapping the roles would show
    with_repeats = frame[~frame["attention_check"] & (frame["chosen_method"] != "")]
    assert summary.n < len(with_repeats)  # repeats would add votes (and, here, move the rate)
    assert k / len(decided) != (with_repeats["chosen_method"] == with_repeats["proposed_method"]).mean()
    interval = binomtest(k, len(decided)).proportion_ci(confidence_level=0.95, method="exact")
    assert summary.ci == pytest.approx((interval.low, interval.high), abs=1e-12)


def test_counts_of_raters_votes_and_attention_checks(engine: Engine) -> None:
    summary = service.admin_summary(engine, "demo")
    frame = votes_frame(engine, "demo").fillna({"chosen_method": ""})
    assert summary.study == "demo" and summary.is_open
    assert (summary.raters_started, summary.raters_finished) == (len(RATERS), 6)
    assert summary.n_votes == len(frame) == vote_count(engine, "demo")
    checks = frame[frame["attention_check"]]
    wrong = checks[checks["chosen_method"] != checks["expected_method"]]
    assert summary.attention_checks_answered == len(checks)
    assert summary.attention_failures == len(wrong) > 0
    assert summary.raters_failing_attention == wrong["rater"].nunique() < len(wrong) + 1
    assert summary.raters_failing_attention < len(checks)  # a rater who answered right is not counted


def test_votes_per_item_table_by_hand(engine: Engine) -> None:
    table = service.admin_summary(engine, "demo").votes_per_item.set_index("item")
    frame = votes_frame(engine, "demo").fillna({"chosen_method": ""})
    assert list(table.columns) == ["label", "attention_check", "assigned", "proposed_left", "votes",
                                   "chose_proposed"]
    for item, row in table.iterrows():
        votes = frame[frame["item"] == item]
        assert row["votes"] == len(votes)  # every vote, repeats included
        assert row["chose_proposed"] == int((votes["chosen_method"] == votes["proposed_method"]).sum())
        assert row["assigned"] == len(RATERS)  # every started rater is assigned every item once
        assert row["label"] == votes["label"].iloc[0]
        assert row["attention_check"] == votes["attention_check"].iloc[0]
    firsts = frame[frame["repeat"] == 0]
    left = firsts.groupby("item").apply(lambda v: int((v["left_method"] == v["proposed_method"]).sum()))
    answered = table.loc[left.index, "proposed_left"]
    assert (answered >= left).all() and (table["proposed_left"] <= table["assigned"]).all()
    assert table["attention_check"].sum() == 1 and table.index.is_unique


def test_an_unknown_study_is_an_error(engine: Engine) -> None:
    with pytest.raises(service.SurveyError):
        service.admin_summary(engine, "nope")


def test_a_study_without_votes_has_no_rate_and_no_interval(sqlite_url: str, tmp_path: Path) -> None:
    engine = get_engine(sqlite_url)
    import_package(engine, make_package(tmp_path / "demo", n_items=3, n_checks=1))
    summary = service.admin_summary(engine, "demo")
    assert (summary.k, summary.n, summary.n_votes, summary.raters_started) == (0, 0, 0, 0)
    assert summary.proposed_rate is None and summary.ci is None
    assert summary.votes_per_item["votes"].tolist() == [0, 0, 0, 0]
