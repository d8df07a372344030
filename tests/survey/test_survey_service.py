"""The service layer (contract E) end to end on SQLite and PostgreSQL: sessions, resume, idempotent
votes, closed studies, response times, hostile rater ids, balance and the admin numbers."""
from __future__ import annotations

import re
import threading
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

import survey.service as service
from survey.db import dispose_engines, get_engine, read_session, write_session
from survey.export import votes_frame
from survey.importer import import_package
from survey.schema import Assignment, ItemMap, Rater, utcnow
from survey.service import SurveyError
from testing.distinction_package import make_distinction_study
from testing.packages import make_package
from testing.reveal import vote_count


@pytest.fixture()
def engine(any_url: str, sample_package: Path) -> Engine:
    engine = get_engine(any_url)
    import_package(engine, sample_package)
    return engine


def answer_all(engine: Engine, rater: str, choice: str = "A") -> int:
    n = 0
    while (trial := service.next_trial(engine, "demo", rater)) is not None:
        assert service.record_vote(engine, "demo", rater, trial.token, choice).recorded
        n += 1
    return n


def test_whole_session_then_completion(engine: Engine) -> None:
    study = service.get_study(engine, "demo")
    assert study is not None and study.is_open and study.n_trials_per_rater == 7
    assert service.get_study(engine, "nope") is None
    assert service.list_open_studies(engine) == ["demo"]
    view = service.start_rater(engine, "demo", "alice")
    assert (view.answered, view.total, view.finished) == (0, 7, False)
    positions = []
    while (trial := service.next_trial(engine, "demo", "alice")) is not None:
        positions.append(trial.position)
        assert trial.total == 7 and trial.label in trial.question and "{label}" not in trial.question
        assert trial.image_path.is_file() and trial.left_path.is_file() and trial.right_path.is_file()
        assert trial.left_path != trial.right_path
        result = service.record_vote(engine, "demo", "alice", trial.token, "B")
        assert result.recorded and not result.duplicate and result.finished == (trial.position == 7)
    assert positions == list(range(1, 8))
    assert service.start_rater(engine, "demo", "alice").finished
    done = service.completion(engine, "demo", "alice")
    assert len(done.code) >= 6 and done.redirect_url is None
    assert service.completion(engine, "demo", "alice") == done  # stable
    frame = votes_frame(engine, "demo")
    assert len(frame) == 7 and (frame["chosen_side"] == "right").all()
    assert (frame["chosen_method"] == frame["right_method"]).all()


def test_completion_needs_a_finished_rater(engine: Engine) -> None:
    service.start_rater(engine, "demo", "bob")
    with pytest.raises(SurveyError, match=r"^You have not finished the study yet\.$"):
        service.completion(engine, "demo", "bob")
    with pytest.raises(SurveyError):
        service.completion(engine, "demo", "never-started")


def test_nothing_a_rater_receives_names_a_method(engine: Engine) -> None:
    service.start_rater(engine, "demo", "carol")
    study = service.get_study(engine, "demo")
    texts = [repr(study)]
    while (trial := service.next_trial(engine, "demo", "carol")) is not None:
        texts.append(repr(trial))
        service.record_vote(engine, "demo", "carol", trial.token, "A")
    blob = "\n".join(texts).lower()
    assert "vib" not in blob and "baseline" not in blob and "proposed" not in blob


def test_resume_after_restart_continues_at_the_next_unanswered_item(any_url: str, engine: Engine) -> None:
    service.start_rater(engine, "demo", "dave")
    tokens = []
    for _ in range(3):
        trial = service.next_trial(engine, "demo", "dave")
        tokens.append(trial.token)
        service.record_vote(engine, "demo", "dave", trial.token, "A")
    shown = service.next_trial(engine, "demo", "dave")
    dispose_engines()  # the server restarts; the rater opens the link on another device
    engine2 = get_engine(any_url)
    view = service.start_rater(engine2, "demo", "dave")
    assert (view.answered, view.total) == (3, 7)
    again = service.next_trial(engine2, "demo", "dave")
    assert again == shown and again.position == 4 and again.token not in tokens


def test_double_submit_never_records_twice_or_skips(engine: Engine) -> None:
    service.start_rater(engine, "demo", "erin")
    first = service.next_trial(engine, "demo", "erin")
    assert service.record_vote(engine, "demo", "erin", first.token, "A").recorded
    repeat = service.record_vote(engine, "demo", "erin", first.token, "B")  # resubmission, other button
    assert (repeat.recorded, repeat.duplicate, repeat.finished) == (False, True, False)
    assert service.next_trial(engine, "demo", "erin").position == 2
    frame = votes_frame(engine, "demo")
    assert len(frame) == 1 and frame["chosen_side"].iloc[0] == "left"  # the first answer stands
    last = None
    while (trial := service.next_trial(engine, "demo", "erin")) is not None:
        last = trial
        service.record_vote(engine, "demo", "erin", trial.token, "A")
    again = service.record_vote(engine, "demo", "erin", last.token, "A")  # the last click, resubmitted
    assert (again.recorded, again.duplicate, again.finished) == (False, True, True)
    assert len(votes_frame(engine, "demo")) == 7


def test_concurrent_double_clicks_record_one_vote(engine: Engine) -> None:
    service.start_rater(engine, "demo", "frank")
    trial = service.next_trial(engine, "demo", "frank")
    results, errors = [], []
    barrier = threading.Barrier(8)

    def click() -> None:
        try:
            barrier.wait()
            results.append(service.record_vote(engine, "demo", "frank", trial.token, "A"))
        except Exception as exc:  # noqa: BLE001 - every error is a test failure, reported below
            errors.append(exc)

    threads = [threading.Thread(target=click) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sum(r.recorded for r in results) == 1 and sum(r.duplicate for r in results) == 7
    assert vote_count(engine, "demo") == 1


def test_stale_foreign_and_invented_tokens_are_refused(engine: Engine) -> None:
    service.start_rater(engine, "demo", "gina")
    service.start_rater(engine, "demo", "hank")
    gina = service.next_trial(engine, "demo", "gina")
    with read_session(engine) as session:  # a later trial of gina's, as if the token had leaked
        later = session.scalar(select(Assignment.token).join(Rater).where(Rater.external_id == "gina",
                                                                          Assignment.position == 3))
    for rater, token in [("hank", gina.token), ("gina", later), ("gina", "x" * 22), ("gina", "")]:
        with pytest.raises(SurveyError, match="reload"):
            service.record_vote(engine, "demo", rater, token, "A")
    with pytest.raises(SurveyError, match=r"^Please choose A or B\.$"):
        service.record_vote(engine, "demo", "gina", gina.token, "C")  # type: ignore[arg-type]
    with pytest.raises(SurveyError, match="reload"):  # a token that is not text: refused before any lookup
        service.record_vote(engine, "no-such-study", "gina", 12345, "A")  # type: ignore[arg-type]
    with pytest.raises(SurveyError):
        service.record_vote(engine, "other-study", "gina", gina.token, "A")
    assert vote_count(engine, "demo") == 0
    assert service.record_vote(engine, "demo", "gina", gina.token, "A").recorded


def test_no_preference_only_where_allowed(any_url: str, tmp_path: Path, engine: Engine) -> None:
    service.start_rater(engine, "demo", "ivy")
    trial = service.next_trial(engine, "demo", "ivy")
    with pytest.raises(SurveyError, match=r"^Please choose A or B\.$"):
        service.record_vote(engine, "demo", "ivy", trial.token, "none")
    package = make_package(tmp_path / "np", name="np", allow_no_preference=True, n_checks=0)
    import_package(engine, package)
    service.start_rater(engine, "np", "ivy")
    trial = service.next_trial(engine, "np", "ivy")
    assert trial.allow_no_preference
    assert service.record_vote(engine, "np", "ivy", trial.token, "none").recorded
    row = votes_frame(engine, "np").iloc[0]
    assert row["chosen_side"] == "none" and row["chosen_method"] is None


def test_closed_study_refuses_votes_and_new_raters(engine: Engine) -> None:
    service.start_rater(engine, "demo", "jack")
    trial = service.next_trial(engine, "demo", "jack")
    service.set_study_open(engine, "demo", False)
    assert service.list_open_studies(engine) == [] and not service.get_study(engine, "demo").is_open
    with pytest.raises(SurveyError, match="closed"):
        service.record_vote(engine, "demo", "jack", trial.token, "A")
    with pytest.raises(SurveyError, match="closed"):
        service.start_rater(engine, "demo", "newcomer")
    with pytest.raises(SurveyError, match="closed"):
        service.next_trial(engine, "demo", "jack")
    assert vote_count(engine, "demo") == 0
    service.set_study_open(engine, "demo", True)
    assert service.record_vote(engine, "demo", "jack", trial.token, "A").recorded


def test_response_time_is_measured_on_the_server(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [utcnow()]
    monkeypatch.setattr(service, "utcnow", lambda: clock[0])
    service.start_rater(engine, "demo", "kim")
    trial = service.next_trial(engine, "demo", "kim")
    clock[0] += timedelta(seconds=2)
    assert service.next_trial(engine, "demo", "kim") == trial  # a reload does not restart the clock
    clock[0] += timedelta(milliseconds=1234)
    service.record_vote(engine, "demo", "kim", trial.token, "A")
    assert votes_frame(engine, "demo")["response_ms"].tolist() == [3234]


HOSTILE_IDS = [
    "O'Brien \"the rater\"; DROP TABLE votes; --",
    "<script>alert('x')</script><img src=x onerror=alert(1)>",
    "**bold** _it_ [link](javascript:alert(1)) `code` # heading\n- list",
    "😀👍🏽 raters ünïcödé 日本語",
    "r" * 200,
    " leading and trailing spaces ",
]


def test_hostile_rater_ids_are_stored_verbatim(engine: Engine) -> None:
    for rater in HOSTILE_IDS:
        assert service.start_rater(engine, "demo", rater).rater == rater
        trial = service.next_trial(engine, "demo", rater)
        service.record_vote(engine, "demo", rater, trial.token, "A")
        assert service.start_rater(engine, "demo", rater).answered == 1
    assert votes_frame(engine, "demo")["rater"].tolist() == HOSTILE_IDS


UNUSABLE_IDS = [("x" * 10_000, "at most 200"), ("r" * 201, "at most 200"), ("", "enter"), ("   ", "enter"),
                ("a\x00b", "cannot be stored"), ("bad\udcffsurrogate", "cannot be stored"), (None, "enter")]


def test_unusable_rater_ids_are_refused_clearly(engine: Engine) -> None:
    for rater, words in UNUSABLE_IDS:
        for call in (service.start_rater, service.next_trial, service.completion):
            with pytest.raises(SurveyError, match=words):
                call(engine, "demo", rater)
    assert service.admin_summary(engine, "demo").raters_started == 0


def test_completion_redirect_is_filled_and_escaped(any_url: str, sample_package: Path) -> None:
    engine = get_engine(any_url)
    template = "https://example.org/done?cc={code}&pid={rater}&s={study}"
    import_package(engine, sample_package, completion_redirect=template)
    rater = "a&b=c d/e"
    service.start_rater(engine, "demo", rater)
    answer_all(engine, rater)
    done = service.completion(engine, "demo", rater)
    assert done.redirect_url == f"https://example.org/done?cc={done.code}&pid=a%26b%3Dc%20d%2Fe&s=demo"
    assert service.get_study(engine, "demo").completion_redirect.endswith("{study}")


def test_sides_balanced_through_the_service_and_admin_numbers(engine: Engine) -> None:
    from statsmodels.stats.proportion import proportion_confint

    for k in range(10):
        service.start_rater(engine, "demo", f"r{k}")
        answer_all(engine, f"r{k}", "A" if k % 3 else "B")
    summary = service.admin_summary(engine, "demo")
    assert (summary.raters_started, summary.raters_finished, summary.n_votes) == (10, 10, 70)
    table = summary.votes_per_item
    assert (table["assigned"] == 10).all() and (table["proposed_left"] == 5).all()  # exactly half
    frame = votes_frame(engine, "demo")  # recount independently from the exported votes
    regular = frame[~frame["attention_check"] & (frame["repeat"] == 0)]
    assert summary.n == len(regular)
    assert summary.k == int((regular["chosen_method"] == regular["proposed_method"]).sum())
    checks = frame[frame["attention_check"]]
    assert summary.attention_failures == int((checks["chosen_method"] != checks["expected_method"]).sum())
    low, high = proportion_confint(summary.k, summary.n, alpha=0.05, method="beta")
    assert summary.ci == pytest.approx((low, high), abs=1e-9)
    chose_proposed = regular["chosen_method"] == regular["proposed_method"]
    assert summary.proposed_rate == pytest.approx(chose_proposed.mean())  # recounted, not k / n
    assert list(table.columns) == ["item", "label", "attention_check", "assigned", "proposed_left", "votes",
                                   "chose_proposed"]
    assert asdict(summary)["study"] == "demo"


def test_repeats_swap_sides_and_are_exported(any_url: str, sample_package: Path) -> None:
    engine = get_engine(any_url)
    import_package(engine, sample_package, repeats=2)
    assert service.get_study(engine, "demo").n_trials_per_rater == 9
    service.start_rater(engine, "demo", "rep")
    assert answer_all(engine, "rep") == 9
    frame = votes_frame(engine, "demo")
    repeats = frame[frame["repeat"] == 1]
    assert len(repeats) == 2
    for _, rep in repeats.iterrows():
        first = frame[(frame["item"] == rep["item"]) & (frame["repeat"] == 0)].iloc[0]
        assert (rep["left_method"], rep["right_method"]) == (first["right_method"], first["left_method"])


def test_response_time_never_negative_when_the_clock_steps_back(engine: Engine,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """An NTP step between display and click must not store a negative time (the database refuses it)."""
    clock = [utcnow()]
    monkeypatch.setattr(service, "utcnow", lambda: clock[0])
    service.start_rater(engine, "demo", "lena")
    trial = service.next_trial(engine, "demo", "lena")
    clock[0] -= timedelta(seconds=3)
    assert service.record_vote(engine, "demo", "lena", trial.token, "B").recorded
    assert votes_frame(engine, "demo")["response_ms"].tolist() == [0]


def test_a_trial_never_displayed_cannot_be_answered(engine: Engine) -> None:
    """The current pair's token, guessed or leaked before the page showed it (no display time yet)."""
    service.start_rater(engine, "demo", "mia")
    with read_session(engine) as session:
        first = session.scalar(select(Assignment.token).join(Rater).where(Rater.external_id == "mia",
                                                                          Assignment.position == 1))
    with pytest.raises(SurveyError, match=re.escape(service.STALE)):
        service.record_vote(engine, "demo", "mia", first, "A")
    assert vote_count(engine, "demo") == 0
    assert service.next_trial(engine, "demo", "mia").token == first
    assert service.record_vote(engine, "demo", "mia", first, "A").recorded


def test_each_refusal_says_what_to_do(tmp_path: Path, any_url: str, engine: Engine) -> None:
    """The exact rater-facing messages: wrong study, no session, another task's study."""
    service.start_rater(engine, "demo", "nora")
    token = service.next_trial(engine, "demo", "nora").token
    for study in ("no-such-study", ["demo"], None):  # a study name that is not text finds no study
        with pytest.raises(SurveyError, match=f"^{re.escape(service.UNKNOWN_STUDY)}$"):
            service.next_trial(engine, study, "nora")  # type: ignore[arg-type]
        with pytest.raises(SurveyError, match=f"^{re.escape(service.UNKNOWN_STUDY)}$"):
            service.record_vote(engine, study, "nora", token, "A")  # type: ignore[arg-type]
    with pytest.raises(SurveyError, match=f"^{re.escape(service.NOT_STARTED)}$"):
        service.next_trial(engine, "demo", "never-started")
    with pytest.raises(SurveyError, match=f"^{re.escape(service.NOT_STARTED)}$"):
        service.record_vote(engine, "demo", "never-started", token, "A")
    make_distinction_study(tmp_path, any_url, name="dist")
    service.start_rater(engine, "dist", "nora")
    with pytest.raises(SurveyError, match=f"^{re.escape(service.WRONG_TASK)}$"):
        service.next_trial(engine, "dist", "nora")  # a pairwise page on a distinction study
    assert vote_count(engine, "demo") == 0


def test_a_map_path_outside_the_package_is_never_served(engine: Engine) -> None:
    """A tampered database row pointing outside the package: the rater gets a safe message, no path."""
    service.start_rater(engine, "demo", "olga")
    with write_session(engine) as session:
        session.execute(update(ItemMap).values(path="../../etc/passwd"))
    with pytest.raises(SurveyError, match=f"^{re.escape(service.FILES_MISSING)}$") as caught:
        service.next_trial(engine, "demo", "olga")
    assert "passwd" not in str(caught.value)


def test_rater_progress_counts_votes_without_creating_raters(tmp_path: Path, engine: Engine) -> None:
    assert service.rater_progress(engine, "demo", "pia") is None
    assert service.admin_summary(engine, "demo").raters_started == 0  # looking created nobody
    service.start_rater(engine, "demo", "quinn")  # another rater of this study, one vote ahead
    service.record_vote(engine, "demo", "quinn", service.next_trial(engine, "demo", "quinn").token, "A")
    import_package(engine, make_package(tmp_path / "other", name="other", n_checks=0))
    service.start_rater(engine, "other", "pia")  # the same id in another study, one vote ahead
    service.record_vote(engine, "other", "pia", service.next_trial(engine, "other", "pia").token, "A")
    assert service.rater_progress(engine, "demo", "pia") is None
    service.start_rater(engine, "demo", "pia")
    assert service.rater_progress(engine, "demo", "pia") == service.RaterView("demo", "pia", 0, 7, False)
    for _ in range(2):
        trial = service.next_trial(engine, "demo", "pia")
        service.record_vote(engine, "demo", "pia", trial.token, "A")
        service.record_vote(engine, "demo", "pia", trial.token, "B")  # a repeated click counts once
    assert service.rater_progress(engine, "demo", "pia") == service.RaterView("demo", "pia", 2, 7, False)
    answer_all(engine, "pia")
    assert service.rater_progress(engine, "demo", "pia") == service.RaterView("demo", "pia", 7, 7, True)
    with pytest.raises(SurveyError):
        service.rater_progress(engine, "no-such-study", "pia")
    with pytest.raises(SurveyError, match="enter"):
        service.rater_progress(engine, "demo", "   ")


def test_a_lost_unique_key_race_is_retried_then_reported() -> None:
    """PostgreSQL: two transactions inserting the same vote; the loser's IntegrityError is retried
    (it then sees the winner's vote), up to RETRIES attempts, and surfaces after that."""
    calls: list[int] = []

    def lose(times: int):  # noqa: ANN202
        def action() -> str:
            calls.append(1)
            if len(calls) <= times:
                raise IntegrityError("INSERT INTO votes ...", {}, Exception("duplicate key"))
            return "done"
        return action

    assert service._retrying(lose(service.RETRIES - 1)) == "done" and len(calls) == service.RETRIES
    calls.clear()
    with pytest.raises(IntegrityError):
        service._retrying(lose(service.RETRIES))
    assert len(calls) == service.RETRIES
