"""The votes CSV (contract C) through its one owner, `survey.votes_format`.

- Round trip: `write_votes_csv` then `read_votes_csv` gives the frame back, whatever the text
  (commas, quotes, line breaks, unicode, "007", "nan", "none"), missing values included (Hypothesis).
- The file itself: the header in contract order, UTF-8, `true`/`false`, empty fields for missing.
- Hostile or incomplete input: one `VotesFormatError` naming the file, the column or value, and the fix.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tests.hypothesis_home  # noqa: F401  (before Hypothesis writes anything)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from survey.votes_format import (
    ALL_TASKS,
    COLUMN_KINDS,
    COLUMNS,
    DISTINCTION,
    FORMATS,
    OPTIONAL_COLUMNS,
    PAIRWISE,
    REQUIRED_COLUMNS,
    VotesFormat,
    VotesFormatError,
    empty_frame,
    format_of,
    normalise,
    read_votes_csv,
    task_of,
    votes_csv_text,
    write_votes_csv,
)

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(list(',"\n\r;')),
               min_size=1, max_size=12)
TRICKY = st.sampled_from(["007", "true", "false", "nan", "NA", "None", "null", "none", " x ", "1e5", "-0",
                          "=1+1", "é€😀"])
NAME = TEXT | TRICKY
MAYBE = NAME | st.none()


@st.composite
def vote_rows(draw: st.DrawFn) -> pd.DataFrame:
    """A votes frame in contract dtypes; any text column may be missing, and so may the integers."""
    methods = draw(st.lists(NAME, min_size=2, max_size=3, unique=True))
    missing_ints = draw(st.booleans())
    ints = st.integers(0, 10**12) | (st.none() if missing_ints else st.nothing())
    rows = []
    for _ in range(draw(st.integers(1, 8))):
        left, right = draw(st.permutations(methods))[:2]
        check = draw(st.booleans())
        chosen = draw(st.sampled_from([left, right, None]))
        rows.append({
            "study": draw(NAME), "rater": draw(NAME), "item": draw(NAME), "label": draw(MAYBE),
            "left_method": left, "right_method": right, "chosen_method": chosen,
            "proposed_method": methods[0], "baseline_method": methods[1], "attention_check": check,
            "response_ms": draw(ints),
            "created_at": draw(st.datetimes().map(lambda d: d.isoformat(timespec="milliseconds") + "Z")),
            "chosen_side": "none" if chosen is None else ("left" if chosen == left else "right"),
            "position": draw(ints), "repeat": draw(st.integers(0, 1)),
            "expected_method": draw(st.sampled_from(methods)) if check else None,
            "rater_finished": draw(st.booleans()),
        })
    return normalise(pd.DataFrame(rows, columns=list(COLUMNS)))


@settings(database=None, max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=vote_rows())
def test_round_trip_is_the_identity(tmp_path: Path, frame: pd.DataFrame) -> None:
    path = tmp_path / "votes.csv"
    assert write_votes_csv(frame, path) == path
    back = read_votes_csv(path)
    assert list(back.columns) == list(COLUMNS)
    pd.testing.assert_frame_equal(back, frame)
    assert not list(tmp_path.glob(".votes.csv.*"))  # no temp file left behind
    assert votes_csv_text(frame).encode("utf-8") == path.read_bytes()  # the admin download is the same file


def _frame(**changes: list) -> pd.DataFrame:
    base = {
        "study": ["s", "s"], "rater": ["007", "r,2"], "item": ["i1", "i2"], "label": ["Café «Ω» 😀", None],
        "left_method": ["vib", "baseline"], "right_method": ["baseline", "vib"],
        "chosen_method": ["vib", None], "proposed_method": ["vib", "vib"],
        "baseline_method": ["baseline", "baseline"], "attention_check": [False, True],
        "response_ms": [1200, 3400], "created_at": ["2026-11-27T18:03:12.345Z", "2026-11-27T18:03:15.001Z"],
        "chosen_side": ["left", "none"], "position": [1, 2], "repeat": [0, 0],
        "expected_method": [None, "vib"], "rater_finished": [True, False],
    }
    return pd.DataFrame({**base, **changes})


def test_the_file_is_utf8_with_true_false_and_empty_fields_for_missing(tmp_path: Path) -> None:
    path = write_votes_csv(_frame(), tmp_path / "deep" / "votes.csv")
    lines = path.read_bytes().decode("utf-8").split("\n")
    assert lines[0] == ",".join(COLUMNS) and lines[-1] == ""
    assert lines[1] == ("s,007,i1,Café «Ω» 😀,vib,baseline,vib,vib,baseline,false,1200,"
                        "2026-11-27T18:03:12.345Z,left,1,0,,true")
    assert lines[2] == ('s,"r,2",i2,,baseline,vib,,vib,baseline,true,3400,'
                        "2026-11-27T18:03:15.001Z,none,2,0,vib,false")
    back = read_votes_csv(path)
    assert back["rater"].tolist() == ["007", "r,2"]  # ids stay text
    assert back["label"].tolist() == ["Café «Ω» 😀", None] and back["chosen_method"].tolist() == ["vib", None]
    assert back["attention_check"].dtype == bool and back["response_ms"].dtype == np.int64
    assert [p.name for p in path.parent.iterdir()] == ["votes.csv"]


def test_empty_text_and_missing_text_are_one_thing(tmp_path: Path) -> None:
    """The one treatment of missing values: "" and None are both written empty and read as None."""
    frame = _frame(chosen_method=["vib", ""], label=["", None])
    assert normalise(frame)["chosen_method"].tolist() == ["vib", None]
    back = read_votes_csv(write_votes_csv(frame, tmp_path / "votes.csv"))
    assert back["chosen_method"].tolist() == ["vib", None] and back["label"].tolist() == [None, None]


def test_missing_integers_read_as_nullable_and_booleans_in_any_spelling(tmp_path: Path) -> None:
    path = tmp_path / "votes.csv"
    header = ",".join(REQUIRED_COLUMNS + ("rater_finished",))
    path.write_text(f"{header}\n"
                    "s,r1,i1,l,vib,baseline,vib,vib,baseline,TRUE,,t,yes\n"
                    "s,r2,i1,l,vib,baseline,,vib,baseline, 0 ,250,t,\n", encoding="utf-8")
    back = read_votes_csv(path)
    assert back["attention_check"].tolist() == [True, False]
    assert back["rater_finished"].tolist() == [True, False]  # an empty boolean reads as false
    assert back["response_ms"].dtype == "Int64" and back["response_ms"].isna().tolist() == [True, False]
    assert "position" not in back  # optional columns that are absent stay absent
    again = read_votes_csv(write_votes_csv(back, tmp_path / "again.csv"))
    pd.testing.assert_frame_equal(again, back)


def test_a_file_saved_by_a_spreadsheet_reads_the_same(tmp_path: Path) -> None:
    """Byte-order mark and Windows line ends (what "CSV UTF-8" in a spreadsheet writes) change nothing."""
    path = write_votes_csv(_frame(), tmp_path / "votes.csv")
    saved = tmp_path / "saved.csv"
    saved.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    pd.testing.assert_frame_equal(read_votes_csv(saved), read_votes_csv(path))


def test_columns_of_no_format_are_kept_as_text_after_the_contract_columns(tmp_path: Path) -> None:
    frame = _frame().assign(note=["a", None])[["note", *COLUMNS]]
    path = write_votes_csv(frame, tmp_path / "votes.csv")
    assert path.read_text(encoding="utf-8").splitlines()[0] == ",".join((*COLUMNS, "note"))
    assert read_votes_csv(path)["note"].tolist() == ["a", None]


def test_empty_study_has_every_column_in_its_dtype(tmp_path: Path) -> None:
    path = write_votes_csv(empty_frame(), tmp_path / "votes.csv")
    assert path.read_text(encoding="utf-8") == ",".join(COLUMNS) + "\n"
    back = read_votes_csv(path)
    assert len(back) == 0 and list(back.columns) == list(COLUMNS)
    assert back["attention_check"].dtype == bool and back["position"].dtype == np.int64


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = write_votes_csv(_frame(), tmp_path / "votes.csv")
    before = path.read_bytes()
    with pytest.raises(VotesFormatError, match="must be true/false"):
        write_votes_csv(_frame(attention_check=["maybe", "no"]), path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["votes.csv"]


@pytest.mark.parametrize(("content", "message"), [
    (None, r"votes CSV .*absent\.csv does not exist; export it with `python -m survey.study export"),
    (b"", r"votes CSV .*votes\.csv is empty \(not even a header row\); re-export it"),
    (b"study,rater\ns,r\n", (r"votes CSV .*votes\.csv is missing column\(s\) item, label, left_method.*; "
                             r"a votes CSV needs study, rater, item.*python -m survey\.study export")),
    (b"\xff\xfe\x00s\x00t\x00", r"votes CSV .*votes\.csv is not a readable UTF-8 CSV"),
    (",".join(COLUMNS + ("rater",)).encode() + b"\n", r"repeats column\(s\) rater in its header"),
    (",".join(COLUMNS).encode() + b"\ns,r,i,l,a,b,a,a,b,maybe,1,t,left,1,0,,true\n",
     r"votes CSV .*votes\.csv: column 'attention_check' must be true/false, found \['maybe'\]"),
    (",".join(COLUMNS).encode() + b"\ns,r,i,l,a,b,a,a,b,true,1.5,t,left,1,0,,true\n",
     r"votes CSV .*votes\.csv: column 'response_ms' must hold whole numbers.*\['1\.5'\]"),
    (",".join(COLUMNS).encode() + b"\ns,r,i,l,a,b,a,a,b,true,1,t,left,1,0,,true,extra,fields\n",
     r"votes CSV .*votes\.csv is not a readable UTF-8 CSV"),
])
def test_bad_files_name_the_file_and_the_fix(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / ("absent.csv" if content is None else "votes.csv")
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VotesFormatError, match=message) as error:
        read_votes_csv(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_writing_a_frame_without_the_required_columns_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VotesFormatError, match=r"is missing column\(s\) chosen_method"):
        write_votes_csv(_frame().drop(columns=["chosen_method"]), tmp_path / "votes.csv")
    assert not list(tmp_path.iterdir())


def test_one_definition_of_the_columns_ready_for_a_second_task() -> None:
    assert FORMATS == {"pairwise": PAIRWISE, "distinction": DISTINCTION}
    assert COLUMNS == REQUIRED_COLUMNS + OPTIONAL_COLUMNS
    assert COLUMNS == ("study", "rater", "item", "label", "left_method", "right_method", "chosen_method",
                       "proposed_method", "baseline_method", "attention_check", "response_ms", "created_at",
                       "chosen_side", "position", "repeat", "expected_method", "rater_finished")
    assert PAIRWISE.of_kind("bool") == ("attention_check", "rater_finished")
    assert PAIRWISE.of_kind("int") == ("response_ms", "position", "repeat")
    assert set(ALL_TASKS.columns) == set(COLUMN_KINDS) == set(COLUMNS) | set(DISTINCTION.columns)
    assert DISTINCTION.of_kind("bool") == ("attention_check", "rater_finished", "correct")
    assert set(DISTINCTION.of_kind("int")) == {"response_ms", "chosen_index", "answer_index", "confidence",
                                               "chosen_rank", "position", "repeat", "chosen_slot", "answer_slot"}
    with pytest.raises(ValueError, match="unknown or repeated"):
        VotesFormat("other", ("study", "no_such_column"), ())


# ---- several tasks in one file (issue 14): the optional ``task`` column --------------------------------


def _distinction_rows() -> pd.DataFrame:
    """Two distinction answers: a regular item (rank 2 chosen, wrong) and an attention check (no rank)."""
    return pd.DataFrame({
        "study": ["s", "s"], "rater": ["r-d", "r-d"], "item": ["i1", "check-00"], "label": ["lake", None],
        "attention_check": [False, True], "response_ms": [2100, 900],
        "created_at": ["2026-11-30T09:00:10Z", "2026-11-30T09:00:20Z"], "position": [1, 2], "repeat": [0, 0],
        "rater_finished": [True, True], "task": ["distinction", "distinction"], "method": ["vib", "vib"],
        "chosen_index": [3, 0], "answer_index": [1, 0], "correct": [False, True], "confidence": [4, None],
        "chosen_rank": [2, None], "chosen_slot": [0, 2], "answer_slot": [1, 2],
    })


def test_a_table_of_both_tasks_round_trips_as_the_identity(tmp_path: Path) -> None:
    pairwise = _frame(task=["pairwise", None])  # an empty task field means pairwise
    frame = normalise(pd.concat([pairwise, _distinction_rows()], ignore_index=True))
    assert format_of(frame.columns) is ALL_TASKS
    assert frame["chosen_index"].dtype == "Int64" and frame["correct"].dtype == bool  # missing on pairwise rows
    path = write_votes_csv(frame, tmp_path / "votes.csv")
    back = read_votes_csv(path)
    pd.testing.assert_frame_equal(back, frame)
    header = path.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header == [c for c in ALL_TASKS.columns if c in frame]  # pairwise columns, then task, then its own
    assert header.index("task") == header.index("rater_finished") + 1
    assert list(task_of(back)) == ["pairwise", "pairwise", "distinction", "distinction"]
    assert back.loc[2:, "left_method"].isna().all() and back.loc[:1, "method"].isna().all()
    assert back["confidence"].iloc[2] == 4 and pd.isna(back["confidence"].iloc[3])


def test_a_distinction_only_export_reads_in_its_dtypes(tmp_path: Path) -> None:
    """The survey's answers export has no pairwise columns; its order is the table's order."""
    rows = _distinction_rows()
    text = votes_csv_text(rows)
    assert text.splitlines()[0] == ",".join(rows.columns)
    (tmp_path / "answers.csv").write_text(text, encoding="utf-8")
    back = read_votes_csv(tmp_path / "answers.csv")
    assert back["chosen_index"].dtype == "int64" and back["chosen_rank"].dtype == "Int64"
    assert back["correct"].tolist() == [False, True] and back["answer_slot"].tolist() == [1, 2]
    pd.testing.assert_frame_equal(back, normalise(rows))


def test_a_file_without_a_task_column_is_a_pairwise_file() -> None:
    assert format_of(COLUMNS) is PAIRWISE
    assert set(task_of(_frame())) == {"pairwise"}


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: f.assign(task=["pairwise", "ranking"]), r"'task' must be one of pairwise, distinction .*'ranking'"),
    (lambda f: f.drop(columns=["left_method"]).assign(task=["pairwise", "pairwise"]),
     r"has pairwise rows but is missing column\(s\) left_method"),
])
def test_bad_task_tables_are_refused_on_write_and_on_read(tmp_path: Path, change, message: str) -> None:
    bad = change(_frame())
    with pytest.raises(VotesFormatError, match=message):
        write_votes_csv(bad, tmp_path / "votes.csv")
    assert not list(tmp_path.iterdir())
    path = tmp_path / "hand-made.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(VotesFormatError, match=message):
        read_votes_csv(path)


def test_distinction_rows_need_their_columns(tmp_path: Path) -> None:
    path = tmp_path / "answers.csv"
    _distinction_rows().drop(columns=["confidence", "method"]).to_csv(path, index=False)
    with pytest.raises(VotesFormatError, match=rf"{path} has distinction rows but is missing column\(s\) "
                                               r"method, confidence; distinction rows need"):
        read_votes_csv(path)


def test_a_pairwise_file_keeps_a_column_named_like_a_distinction_one_as_text(tmp_path: Path) -> None:
    """Without a ``task`` column a file is pairwise: an extra ``confidence`` column is not the distinction
    task's integer column, it stays text as before issue 14."""
    path = tmp_path / "votes.csv"
    _frame(confidence=["007", "8"]).to_csv(path, index=False)
    back = read_votes_csv(path)
    assert back["confidence"].tolist() == ["007", "8"]
