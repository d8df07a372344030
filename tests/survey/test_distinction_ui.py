"""The rater page on a distinction study, driven through Streamlit's AppTest (no browser): consent
with the example, one click per screen (a confidence number under a map), progress, resume, a stale
tab, a closed study, completion, blinding of everything a rater can read; the admin page and the
``survey.study`` commands on a distinction study."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import survey.distinction_service as ds
from survey import service
from survey.db import get_engine
from survey.distinction_export import answers_frame
from survey.package import DEFAULT_DISTINCTION_QUESTION
from survey.study import main
from survey.ui_logic import DEFAULT_DISTINCTION_CONSENT
from survey.votes_format import read_votes_csv
from testing.distinction_package import make_distinction_study
from testing.reveal import answer_count
from tests.survey.test_ui_apptest import click, open_page, progress_text, texts

CONFIDENCE = ["1", "2", "3", "4", "5"]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> None:
    for name in ("SURVEY_STUDY", "SURVEY_ADMIN_PASSWORD", "SURVEY_INVITE_SECRET", "SURVEY_DEMO"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SURVEY_DB_URL", sqlite_url)
    monkeypatch.setenv("SURVEY_MIN_VOTE_GAP_MS", "0")


def answer(at: AppTest, slot: int, confidence: int) -> AppTest:
    """Clicks confidence ``confidence`` under the map in screen slot ``slot`` (one click answers)."""
    buttons = [b for b in at.button if b.key.startswith(f"d{slot}-{confidence}-")]
    assert len(buttons) == 1
    buttons[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def captions(at: AppTest) -> list[str]:
    return [c for image in at.image for c in image.captions]


def test_whole_session_one_click_per_screen_blinded(tmp_path: Path, sqlite_url: str) -> None:
    study = make_distinction_study(tmp_path, sqlite_url, n_items=3, n_checks=1,
                                   completion_redirect="https://example.org/done?cc={code}")
    eng = get_engine(sqlite_url)
    at = open_page({"study": study.name, "rater": "rita"})
    assert [t.value for t in at.title] == ["Welcome"]
    assert any(DEFAULT_DISTINCTION_CONSENT[:40] in t for t in texts(at))
    example = ds.get_example(eng, study.name)
    assert captions(at) == ["Photo", *[c.label for c in example.candidates]]  # the example, no buttons
    assert [b.label for b in at.button] == ["I agree, start"]
    assert any(f"model chose **{example.answer_label}**" in t for t in texts(at))  # the example's answer
    click(at, "I agree, start")

    picks = []
    for k in range(study.n_trials):
        screen = ds.next_trial(eng, study.name, "rita")
        assert progress_text(at) == f"{k + 1} / {study.n_trials}"
        assert any(DEFAULT_DISTINCTION_QUESTION.split(".")[0] in t.replace("\\", "") for t in texts(at))
        assert captions(at) == ["Photo", *[c.label for c in screen.candidates]]
        assert [b.label for b in at.button] == CONFIDENCE * 4  # five numbers under each of four maps
        slot, confidence = k % 4, 5 - k % 5
        picks.append((slot, confidence))
        answer(at, slot, confidence)
    assert [t.value for t in at.title] == ["Thank you!"]
    done = service.completion(eng, study.name, "rita")
    assert [c.value for c in at.code] == [done.code]
    assert at.link_button[0].proto.url == f"https://example.org/done?cc={done.code}"
    frame = answers_frame(eng, study.name)
    assert list(zip(frame["chosen_slot"], frame["confidence"])) == picks
    assert list(frame["position"]) == list(range(1, study.n_trials + 1))
    page_text = " ".join(texts(at)).lower()
    assert not [s for s in study.secrets() if s.lower() in page_text]


def test_nothing_a_rater_reads_names_a_method_or_the_answer(tmp_path: Path, sqlite_url: str) -> None:
    study = make_distinction_study(tmp_path, sqlite_url, n_items=2, n_checks=0)
    at = click(open_page({"study": study.name, "rater": "eve"}), "I agree, start")
    readable = " ".join(texts(at)) + " ".join(str(b.help) for b in at.button) + " ".join(b.key for b in at.button)
    assert not [s for s in study.secrets() if s.lower() in readable.lower()]
    assert "rank" not in readable.lower() and "answer" not in readable.lower()
    keys = [b.key for b in at.button]  # slot-confidence-token: nothing about ranks or methods
    token = ds.next_trial(get_engine(sqlite_url), study.name, "eve").token
    assert keys == [f"d{s}-{c}-{token}" for s in range(4) for c in range(1, 6)]


def test_resume_and_stale_tab(tmp_path: Path, sqlite_url: str) -> None:
    study = make_distinction_study(tmp_path, sqlite_url, n_items=3, n_checks=0)
    tab1 = click(open_page({"study": study.name, "rater": "sam"}), "I agree, start")
    tab2 = open_page({"study": study.name, "rater": "sam"})  # another tab or device: no consent again
    assert not [t for t in tab2.title if t.value == "Welcome"]
    assert progress_text(tab1) == progress_text(tab2) == f"1 / {study.n_trials}"
    answer(tab1, 0, 2)
    answer(tab2, 3, 5)  # the same screen answered again from the stale tab: nothing new, nothing skipped
    assert progress_text(tab1) == progress_text(tab2) == f"2 / {study.n_trials}"
    frame = answers_frame(sqlite_url, study.name)
    assert list(zip(frame["chosen_slot"], frame["confidence"])) == [(0, 2)]
    answer(tab2, 1, 1)
    again = open_page({"study": study.name, "rater": "sam"})
    assert progress_text(again) == f"3 / {study.n_trials}"
    assert list(answers_frame(sqlite_url, study.name)["position"]) == [1, 2]


def test_closed_study_and_finished_rater(tmp_path: Path, sqlite_url: str) -> None:
    study = make_distinction_study(tmp_path, sqlite_url, n_items=1, n_checks=0)
    eng = get_engine(sqlite_url)
    at = click(open_page({"study": study.name, "rater": "late"}), "I agree, start")
    service.set_study_open(eng, study.name, False)  # closed while the rater looks at a screen
    answer(at, 0, 3)
    assert any("closed" in w.value for w in [*at.warning, *at.info]) and not at.button
    assert answer_count(eng, study.name) == 0
    service.set_study_open(eng, study.name, True)
    answer(open_page({"study": study.name, "rater": "late"}), 2, 4)
    service.set_study_open(eng, study.name, False)
    at = open_page({"study": study.name, "rater": "late"})  # finished: the code, even when closed
    assert [c.value for c in at.code] == [service.completion(eng, study.name, "late").code]


def test_admin_page_and_cli_on_a_distinction_study(tmp_path: Path, sqlite_url: str, monkeypatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    study = make_distinction_study(tmp_path, sqlite_url, n_items=2, n_checks=1)
    at = click(open_page({"study": study.name, "rater": "ann"}), "I agree, start")
    answer(answer(at, 1, 4), 2, 2)
    monkeypatch.setenv("SURVEY_ADMIN_PASSWORD", "s3cret ✓ long enough")
    admin = open_page(page="ui_pages/admin.py")
    admin.text_input[0].input("s3cret ✓ long enough")
    admin.button[0].click().run()
    assert not admin.exception and not admin.error
    metrics = {m.label: m.value for m in admin.metric}
    assert metrics["Raters started"] == "1" and metrics["Answers"] == "2"
    summary = ds.summary(get_engine(sqlite_url), study.name)
    assert list(admin.dataframe[0].value["method"]) == list(summary.per_method["method"])
    assert [b.label for b in admin.button if b.label.endswith("study")] == ["Close study"]

    capsys.readouterr()
    assert main(["list", "--db", sqlite_url]) == 0
    assert capsys.readouterr().out.splitlines()[1].split() == [study.name, "open", "public", "3", "1", "0", "2"]
    out = tmp_path / "answers.csv"
    assert main(["export", study.name, "--out", str(out), "--db", sqlite_url]) == 0
    assert "2 answer(s)" in capsys.readouterr().out
    lines = out.read_text().splitlines()
    assert lines[0].startswith("study,rater,item,label,attention_check") and len(lines) == 3
    # the votes format owns the file: it reads back as exactly the database's answers
    pd.testing.assert_frame_equal(read_votes_csv(out), answers_frame(sqlite_url, study.name))


def test_busy_database_gives_a_notice_and_the_next_click_records_once(tmp_path: Path, sqlite_url: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer path has the votes' busy handling: DatabaseBusy becomes a calm notice, the screen
    stays, and the rater's next click is stored once (SingleFlight counts one execution per click)."""
    from survey import db
    from survey.ui_page import BUSY, clicks

    study = make_distinction_study(tmp_path, sqlite_url, n_items=2, n_checks=0)
    at = click(open_page({"study": study.name, "rater": "busy"}), "I agree, start")
    real = ds.record_answer
    calls: list[tuple] = []

    def busy_once(engine, *args):  # noqa: ANN001, ANN202
        calls.append(args)
        if len(calls) == 1:
            raise db.DatabaseBusy("no turn to write within 5.0 s")
        return real(engine, *args)

    monkeypatch.setattr(ds, "record_answer", busy_once)
    at.run()  # the buttons now carry the patched call
    executions = clicks.executions
    answer(at, 1, 2)
    assert BUSY in texts(at) and progress_text(at) == f"1 / {study.n_trials}"
    assert not any("DatabaseBusy" in t or "5.0 s" in t for t in texts(at))
    answer(at, 3, 4)  # the rater clicks again: this one is stored
    assert progress_text(at) == f"2 / {study.n_trials}" and BUSY not in texts(at)
    assert clicks.executions - executions == 2 and len(calls) == 2
    frame = answers_frame(sqlite_url, study.name)
    assert list(zip(frame["chosen_slot"], frame["confidence"])) == [(3, 4)]
