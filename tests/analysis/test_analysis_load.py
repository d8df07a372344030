"""Loading and validating votes: every bad input is one clear VotesError, never a crash."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.load import VotesError, load_votes, prepare_votes
from survey.votes_format import REQUIRED_COLUMNS, read_votes_csv, write_votes_csv
from testing.simulated_votes import simulate_votes


def test_csv_and_frame_load_the_same_votes(study_frame: pd.DataFrame, votes_csv: Path) -> None:
    from_csv, from_frame = load_votes(votes_csv), load_votes(study_frame)
    assert (from_csv.study, from_csv.proposed, from_csv.baseline, from_csv.methods) == (
        "sim",
        "vib",
        "baseline",
        ("baseline", "vib"),
    )
    cols = [
        "rater",
        "item",
        "chosen_method",
        "attention_check",
        "repeat",
        "rater_finished",
        "failed_check",
        "pair",
    ]
    pd.testing.assert_frame_equal(from_csv.frame[cols], from_frame.frame[cols], check_dtype=False)
    assert np.allclose(from_csv.frame["y"].fillna(-1), from_frame.frame["y"].fillna(-1))
    text = votes_csv.read_text().splitlines()
    assert text[0].startswith(",".join(REQUIRED_COLUMNS))
    assert ",true," in text[1] or ",false," in text[1]  # contract C booleans


def test_derived_columns(study_frame: pd.DataFrame) -> None:
    votes = load_votes(study_frame)
    f = votes.frame
    none = f["chosen_method"] == ""
    assert f.loc[none, "y"].isna().all() and f.loc[none, "chose_left"].isna().all()
    decided = f[f["pair"] & ~none]
    assert ((decided["y"] == 1) == (decided["chosen_method"] == "vib")).all()
    assert f.loc[f["failed_check"], "attention_check"].all()
    comparisons = votes.comparisons
    assert not comparisons["attention_check"].any() and (comparisons["repeat"] == 0).all()


def test_the_votes_format_reader_is_what_load_votes_reads(votes_csv: Path) -> None:
    raw = read_votes_csv(votes_csv)
    pd.testing.assert_frame_equal(load_votes(raw).frame, load_votes(votes_csv).frame)


def _raw(frame: pd.DataFrame, **changes) -> pd.DataFrame:
    out = frame.copy()
    for column, value in changes.items():
        out[column] = value
    return out


def test_missing_columns_are_listed(study_frame: pd.DataFrame) -> None:
    with pytest.raises(VotesError, match=r"missing column\(s\) chosen_method, response_ms"):
        prepare_votes(study_frame.drop(columns=["chosen_method", "response_ms"]))


def test_no_votes(tmp_path: Path, study_frame: pd.DataFrame) -> None:
    empty = tmp_path / "empty.csv"
    study_frame.iloc[:0].to_csv(empty, index=False)
    with pytest.raises(VotesError, match="contains no votes"):
        load_votes(empty)
    (tmp_path / "nothing.csv").write_text("")
    with pytest.raises(VotesError, match="empty"):
        load_votes(tmp_path / "nothing.csv")
    with pytest.raises(VotesError, match="does not exist"):
        load_votes(tmp_path / "absent.csv")


def test_method_names_that_do_not_match(study_frame: pd.DataFrame) -> None:
    with pytest.raises(VotesError, match="never appears in left_method/right_method"):
        prepare_votes(_raw(study_frame, proposed_method="vib-v2"))
    with pytest.raises(VotesError, match="--proposed 'gradcam' does not match"):
        prepare_votes(study_frame, proposed="gradcam")
    odd = study_frame.copy()
    odd.loc[3, "chosen_method"] = "VIB"
    with pytest.raises(VotesError, match="choose a method that was not shown"):
        prepare_votes(odd)
    mixed = study_frame.copy()
    mixed.loc[0, "baseline_method"] = "resnet"
    with pytest.raises(VotesError, match="must each hold one name"):
        prepare_votes(mixed)


def test_several_studies_need_a_choice(study_frame: pd.DataFrame) -> None:
    other = simulate_votes(3, 3, 0.7, 0.5, 1.0, seed=0, study="pilot")
    both = pd.concat([study_frame, other], ignore_index=True)
    with pytest.raises(VotesError, match=r"several studies \(pilot, sim\); choose one with --study"):
        prepare_votes(both)
    assert prepare_votes(both, study="pilot").frame["rater"].nunique() == 3
    with pytest.raises(VotesError, match="no votes of study 'main'"):
        prepare_votes(both, study="main")


def test_bad_booleans_and_same_method_on_both_sides(study_frame: pd.DataFrame) -> None:
    with pytest.raises(VotesError, match="attention_check.*true/false.*maybe"):
        prepare_votes(_raw(study_frame, attention_check="maybe"))
    same = study_frame.copy()
    same.loc[0, "right_method"] = same.loc[0, "left_method"]
    same.loc[0, "chosen_method"] = same.loc[0, "left_method"]
    with pytest.raises(VotesError, match="same method on both sides"):
        prepare_votes(same)


def test_only_attention_checks_is_not_a_study(study_frame: pd.DataFrame) -> None:
    checks = study_frame[study_frame["attention_check"]]
    with pytest.raises(VotesError, match="no comparison of 'vib' with 'baseline'"):
        prepare_votes(checks)


def test_database_url_needs_a_study() -> None:
    with pytest.raises(VotesError, match="needs a study name"):
        load_votes("sqlite:///nowhere.db")


def test_repeat_column_is_derived_when_absent(study_frame: pd.DataFrame) -> None:
    derived = prepare_votes(study_frame.drop(columns=["repeat"])).frame.sort_values(["rater", "position"])
    given = prepare_votes(study_frame).frame.sort_values(["rater", "position"])
    assert derived["repeat"].tolist() == given["repeat"].tolist()


def test_save_is_atomic_and_roundtrips(tmp_path: Path, study_frame: pd.DataFrame) -> None:
    path = write_votes_csv(study_frame, tmp_path / "deep" / "votes.csv")
    assert [p.name for p in path.parent.iterdir()] == ["votes.csv"]
    assert len(pd.read_csv(path)) == len(study_frame)


def test_numeric_looking_ids_stay_text(tmp_path: Path) -> None:
    frame = simulate_votes(3, 3, 0.7, 0.5, 1.0, seed=0)
    frame["item"] = frame["item"].map({"i-00000": "007", "i-00001": "008", "i-00002": "010"})
    votes = load_votes(write_votes_csv(frame, tmp_path / "votes.csv"))
    assert sorted(votes.frame["item"].unique()) == ["007", "008", "010"]


def test_empty_rater_ids_are_an_error(study_frame: pd.DataFrame) -> None:
    broken = study_frame.copy()
    broken.loc[[2, 5], "rater"] = ""
    with pytest.raises(VotesError, match="2 vote\\(s\\) have an empty rater;"):
        prepare_votes(broken)


def test_bad_csvs_are_one_votes_error_naming_the_file(tmp_path: Path, study_frame: pd.DataFrame) -> None:
    """The votes format's own errors reach the analysis as VotesError (what the report command catches)."""
    path = tmp_path / "votes.csv"
    study_frame.drop(columns=["created_at"]).to_csv(path, index=False)
    with pytest.raises(VotesError, match=rf"votes CSV {path} is missing column\(s\) created_at;"):
        load_votes(path)
    study_frame.assign(response_ms="slow").to_csv(path, index=False)
    with pytest.raises(VotesError, match="column 'response_ms' must hold whole numbers"):
        load_votes(path)


def test_ids_that_look_like_missing_values_stay_ids(tmp_path: Path) -> None:
    """The analysis used to read CSVs with pandas' default missing markers: a rater called "NA" or
    "None" became an empty rater and the study was refused. One reader now keeps them as text."""
    frame = simulate_votes(4, 3, 0.7, 0.5, 1.0, seed=0)
    frame["rater"] = frame["rater"].map({"r-0000": "NA", "r-0001": "None", "r-0002": "null", "r-0003": "nan"})
    votes = load_votes(write_votes_csv(frame, tmp_path / "votes.csv"))
    assert sorted(votes.frame["rater"].unique()) == ["NA", "None", "nan", "null"]
