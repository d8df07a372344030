"""The rater and admin pages driven through Streamlit's AppTest (no browser): whole sessions, resume,
resubmission, closed studies, invitations, admin sign-in and hostile links."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from survey import admin_auth, service, ui_admin_setup
from survey.db import get_engine
from survey.export import votes_frame
from survey.invite import make_token
from survey.ui_page import BUSY, GENERIC_ERROR, votes_csv
from testing.browser import APP
from testing.packages import make_study
from tests.survey.test_admin_auth import FakeClock

SECRET = "a-test-secret-of-sufficient-length"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> None:
    for name in ("SURVEY_STUDY", "SURVEY_ADMIN_PASSWORD", "SURVEY_INVITE_SECRET", "SURVEY_DEMO"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SURVEY_DB_URL", sqlite_url)
    # AppTest clicks the next pair within milliseconds; no person does (survey.clicks.VoteSpacing)
    monkeypatch.setenv("SURVEY_MIN_VOTE_GAP_MS", "0")


def open_page(query: dict[str, str] | None = None, *, page: str | None = None,
              secrets: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params.update(query or {})
    at.secrets.update(secrets or {})
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> list[str]:
    """Every piece of text on the page (what a rater could read)."""
    found = [e.value for kind in ("markdown", "title", "subheader", "caption", "warning", "info", "error",
                                  "success", "code") for e in getattr(at, kind)]
    found += [b.label for b in at.button] + [p.text for p in at.progress]
    found += [c for image in at.image for c in image.captions]
    return [str(t) for t in found]


def progress_text(at: AppTest) -> str | None:
    return at.progress[0].text if len(at.progress) else None


def click(at: AppTest, label: str) -> AppTest:
    [button] = [b for b in at.button if b.label == label]
    button.click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def start(study, rater: str, **query: str) -> AppTest:
    at = open_page({"study": study.name, "rater": rater, **query})
    return click(at, "I agree, start")


# --------------------------------------------------------------------------------- rater session
def test_whole_session_blinded_and_complete(tmp_path: Path, sqlite_url: str):
    redirect = "https://example.org/done?cc={code}&pid={rater}"
    study = make_study(tmp_path, sqlite_url, completion_redirect=redirect)
    at = open_page({"study": study.name, "rater": "rater one"})
    # consent and instructions first, with the example pair as A/B; nothing voted yet
    assert [t.value for t in at.title] == ["Welcome"]
    assert any("Pick the heat map" in t for t in texts(at))
    assert [i.captions for i in at.image] == [["Photo"], ["A"], ["B"]]
    assert service.rater_progress(get_engine(sqlite_url), study.name, "rater one") is None
    click(at, "I agree, start")

    choices, seen = [], []
    for k in range(study.n_trials):
        seen.append(progress_text(at))
        assert [i.captions for i in at.image] == [["Photo"], ["A"], ["B"]]
        assert [b.label for b in at.button] == ["A", "B"]  # no "No preference" unless the study allows it
        side = "AB"[k % 2]
        choices.append(side)
        click(at, side)
    assert seen == [f"{k} / {study.n_trials}" for k in range(1, study.n_trials + 1)]

    done = service.completion(get_engine(sqlite_url), study.name, "rater one")
    assert [c.value for c in at.code] == [done.code]
    [link] = at.link_button
    assert link.proto.url == f"https://example.org/done?cc={done.code}&pid=rater%20one"
    votes = votes_frame(sqlite_url, study.name)
    assert list(votes["rater"]) == ["rater one"] * study.n_trials
    assert list(votes["position"]) == list(range(1, study.n_trials + 1))
    assert list(votes["chosen_side"]) == [{"A": "left", "B": "right"}[c] for c in choices]
    assert votes["rater_finished"].all()
    # nothing the rater could read names a method or a package file
    page_text = " ".join(texts(at)).lower()
    assert not [s for s in study.secrets() if s.lower() in page_text]


def test_no_preference_button_only_where_allowed(tmp_path: Path, sqlite_url: str):
    study = make_study(tmp_path, sqlite_url, allow_no_preference=True)
    at = start(study, "r")
    assert [b.label for b in at.button] == ["A", "B", "No preference"]
    click(at, "No preference")
    assert progress_text(at) == f"2 / {study.n_trials}"
    votes = votes_frame(sqlite_url, study.name)
    assert list(votes["chosen_side"]) == ["none"] and votes["chosen_method"].isna().all()


def test_typed_rater_id_goes_into_the_link(tmp_path: Path, sqlite_url: str):
    study = make_study(tmp_path, sqlite_url)
    at = open_page({"study": study.name})
    assert len(at.text_input) == 1 and not at.image
    at.text_input[0].input("  typed-42 ")
    at.button[0].click().run()
    assert at.query_params.get("rater") == "typed-42"  # a reload keeps the id
    assert [t.value for t in at.title] == ["Welcome"]
    click(at, "I agree, start")
    assert service.rater_progress(get_engine(sqlite_url), study.name, "typed-42").total == study.n_trials


def test_prolific_pid_and_configured_study(tmp_path: Path, sqlite_url: str, monkeypatch):
    study = make_study(tmp_path, sqlite_url)
    make_study(tmp_path, sqlite_url, name="other")
    at = open_page({"PROLIFIC_PID": "5f00aa"})  # two open studies and no config: which one?
    assert any("link you were given" in w.value for w in at.warning)
    monkeypatch.setenv("SURVEY_STUDY", study.name)
    at = click(open_page({"PROLIFIC_PID": "5f00aa"}), "I agree, start")
    assert progress_text(at) == f"1 / {study.n_trials}"
    assert service.rater_progress(get_engine(sqlite_url), study.name, "5f00aa") is not None


def test_resume_in_a_new_session(tmp_path: Path, sqlite_url: str):
    study = make_study(tmp_path, sqlite_url)
    first = start(study, "resumer")
    click(click(first, "A"), "B")
    assert progress_text(first) == f"3 / {study.n_trials}"
    # a reload / another device: a fresh session with the same id skips consent and continues
    again = open_page({"study": study.name, "rater": "resumer"})
    assert not [t for t in again.title if t.value == "Welcome"]
    assert progress_text(again) == f"3 / {study.n_trials}"
    assert len(votes_frame(sqlite_url, study.name)) == 2


def test_stale_tab_resubmission_records_one_vote_and_skips_nothing(tmp_path: Path, sqlite_url: str):
    study = make_study(tmp_path, sqlite_url)
    tab1 = start(study, "twotabs")
    tab2 = open_page({"study": study.name, "rater": "twotabs"})
    assert progress_text(tab1) == progress_text(tab2) == f"1 / {study.n_trials}"
    click(tab1, "A")
    click(tab2, "B")  # the same pair (same trial token), answered again from the stale tab
    assert progress_text(tab1) == progress_text(tab2) == f"2 / {study.n_trials}"
    assert not tab2.warning
    votes = votes_frame(sqlite_url, study.name)
    assert list(votes["chosen_side"]) == ["left"] and list(votes["position"]) == [1]
    click(tab2, "B")  # carrying on from either tab continues in order
    assert list(votes_frame(sqlite_url, study.name)["position"]) == [1, 2]


# --------------------------------------------------------------------------------- closed study
def test_closed_study(tmp_path: Path, sqlite_url: str):
    study = make_study(tmp_path, sqlite_url, is_open=False)
    at = open_page({"study": study.name, "rater": "late"})
    assert any("closed" in i.value for i in at.info) and not at.button and not at.image

    eng = get_engine(sqlite_url)
    service.set_study_open(eng, study.name, True)
    at = start(study, "midway")
    service.set_study_open(eng, study.name, False)  # closed while the rater looks at a pair
    click(at, "A")
    assert any("closed" in w.value for w in [*at.warning, *at.info])
    assert not at.button and len(votes_frame(sqlite_url, study.name)) == 0


def test_finished_rater_sees_code_after_closing(tmp_path: Path, sqlite_url: str):
    study = make_study(tmp_path, sqlite_url, n_items=1, n_checks=0)
    click(start(study, "done"), "A")
    service.set_study_open(get_engine(sqlite_url), study.name, False)
    at = open_page({"study": study.name, "rater": "done"})
    assert [c.value for c in at.code] == [service.completion(get_engine(sqlite_url), study.name, "done").code]


# ---------------------------------------------------------------------------------- invitations
def test_invitation_tokens(tmp_path: Path, sqlite_url: str, monkeypatch):
    study = make_study(tmp_path, sqlite_url, invite_only=True)
    monkeypatch.setenv("SURVEY_INVITE_SECRET", SECRET)
    token = make_token(study.name, "inv-1", SECRET)
    at = click(open_page({"study": study.name, "rater": "inv-1", "token": token}), "I agree, start")
    assert progress_text(at) == f"1 / {study.n_trials}"

    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    bad_links = [
        {"rater": "inv-1", "token": tampered},
        {"rater": "inv-2", "token": token},  # someone else's token
        {"rater": "inv-1"},  # no token
        {"token": token},  # no rater
        {"rater": "inv-1", "token": "<b>" + "x" * 10_000},
    ]
    for query in bad_links:
        at = open_page({"study": study.name, **query})
        assert any("invitation link is not valid" in w.value for w in at.warning), query
        assert not at.button and not at.image and not at.text_input
    assert service.rater_progress(get_engine(sqlite_url), study.name, "inv-2") is None

    monkeypatch.delenv("SURVEY_INVITE_SECRET")  # misconfigured server: nobody gets in
    at = open_page({"study": study.name, "rater": "inv-1", "token": token})
    assert any("not accepting participants" in w.value for w in at.warning) and not at.button


# ------------------------------------------------------------------------------------------ admin
def test_admin_disabled_without_password(tmp_path: Path, sqlite_url: str):
    make_study(tmp_path, sqlite_url)
    at = open_page(page="ui_pages/admin.py")
    assert any("admin page is disabled" in i.value for i in at.info)
    assert not at.text_input and not at.metric and not at.dataframe and not at.selectbox


def test_admin_sign_in_summary_and_open_close(tmp_path: Path, sqlite_url: str, monkeypatch):
    study = make_study(tmp_path, sqlite_url)
    click(click(start(study, "voter"), "A"), "B")
    monkeypatch.setenv("SURVEY_ADMIN_PASSWORD", "s3cret ✓ long enough")
    at = open_page(page="ui_pages/admin.py")
    at.text_input[0].input("wrong").run()
    at.button[0].click().run()
    assert [e.value for e in at.error] == ["Wrong password."]
    assert not at.metric and not at.dataframe and not at.selectbox and not at.table
    assert not [t for t in texts(at) if study.name in t]

    at.text_input[0].input("s3cret ✓ long enough")
    at.button[0].click().run()
    assert not at.exception and not at.error
    summary = service.admin_summary(get_engine(sqlite_url), study.name)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Raters started"] == "1" and metrics["Votes"] == "2"
    checks = f"{summary.attention_failures} / {summary.attention_checks_answered}"
    assert metrics["Attention-check failures"] == checks
    assert len(at.dataframe) == 1
    assert list(at.dataframe[0].value["item"]) == list(summary.votes_per_item["item"])
    [close] = [b for b in at.button if b.label == "Close study"]
    close.click().run()
    assert service.get_study(get_engine(sqlite_url), study.name).is_open is False
    assert [b.label for b in at.button if b.label.endswith("study")] == ["Open study"]

    csv = votes_csv(get_engine(sqlite_url), study.name).decode()
    assert csv.splitlines()[0].startswith("study,rater,item,label,left_method,right_method,chosen_method")
    assert len(csv.splitlines()) == 3


def test_admin_password_from_secrets(tmp_path: Path, sqlite_url: str):
    make_study(tmp_path, sqlite_url)
    at = open_page(page="ui_pages/admin.py", secrets={"admin_password": "from-secrets-file"})
    at.text_input[0].input("from-secrets-file")
    at.button[0].click().run()
    assert at.metric and not at.error


def sign_in(password: str) -> AppTest:
    """A new session (a new tab) on /admin that submits ``password`` once."""
    at = open_page(page="ui_pages/admin.py")
    at.text_input[0].input(password)
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def sign_in_log(at: AppTest) -> list[dict]:
    [table] = at.table
    return table.value.to_dict("records")


def test_admin_guessing_is_locked_out_at_the_sixth_attempt(tmp_path: Path, sqlite_url: str, monkeypatch):
    """Every guess from a fresh tab: the count lives in the database, not in the session."""
    make_study(tmp_path, sqlite_url)
    monkeypatch.setenv("SURVEY_ADMIN_PASSWORD", SECRET)
    clock = FakeClock()
    monkeypatch.setattr(admin_auth, "database_now", clock)  # injected: the test never sleeps
    for attempt in range(1, admin_auth.MAX_FAILURES + 1):
        at = sign_in(f"guess number {attempt}")
        errors = [e.value for e in at.error]
        assert errors[0] == "Wrong password." and not at.metric
        assert (len(errors) == 2) == (attempt == admin_auth.MAX_FAILURES), errors
        clock.advance(1)
    assert "locked. Try again in 1 min" in errors[1]

    sixth = sign_in(SECRET)  # the right password, during the lockout
    locked = "Too many failed sign-ins: sign-in is locked. Try again in 59 s."
    assert [e.value for e in sixth.error] == [locked]
    assert not sixth.metric and not sixth.table
    clock.advance(58)
    assert not sign_in(SECRET).metric  # still 1 s to wait
    clock.advance(1)
    at = sign_in(SECRET)
    assert at.metric and not at.error  # waited out: signed in

    log = sign_in_log(at)
    assert [r["outcome"] for r in log] == ["success", "locked", "locked"] + ["failure"] * 5
    assert log[0]["time (UTC)"] == clock.now.strftime("%Y-%m-%d %H:%M:%S")
    assert {r["client address"] for r in log} == {""}  # AppTest has no client address


def test_admin_lockout_is_per_client_address(tmp_path: Path, sqlite_url: str, monkeypatch):
    make_study(tmp_path, sqlite_url)
    monkeypatch.setenv("SURVEY_ADMIN_PASSWORD", SECRET)
    monkeypatch.setattr(ui_admin_setup, "client_address", lambda: "198.51.100.1")
    for _ in range(admin_auth.MAX_FAILURES):
        sign_in("a wrong guess")
    assert not sign_in(SECRET).metric
    monkeypatch.setattr(ui_admin_setup, "client_address", lambda: "198.51.100.2")
    at = sign_in(SECRET)
    assert at.metric and not at.error
    log = sign_in_log(at)
    assert (log[0]["client address"], log[0]["outcome"]) == ("198.51.100.2", "success")
    assert {(r["client address"], r["outcome"]) for r in log[1:]} == {("198.51.100.1", "failure"),
                                                                      ("198.51.100.1", "locked")}


@pytest.mark.parametrize("password, words", [("short", "too short"), ("eleven char", "too short"),
                                             (admin_auth.DEMO_PASSWORD, "demo's published password")])
def test_weak_admin_password_stops_the_app(tmp_path: Path, sqlite_url: str, monkeypatch, caplog,
                                           password, words):
    study = make_study(tmp_path, sqlite_url)
    monkeypatch.setenv("SURVEY_ADMIN_PASSWORD", password)
    monkeypatch.setenv("SURVEY_DEMO", "1")  # the flag alone is not the demo: the server is not on localhost
    monkeypatch.setattr(ui_admin_setup, "_logged", set())  # as in a freshly started process
    admin = open_page(page="ui_pages/admin.py")
    [error] = [e.value for e in admin.error]
    assert words in error and "at least 12 characters" in error and "secrets.token_urlsafe" in error
    assert not admin.text_input and not admin.button
    rater = open_page({"study": study.name, "rater": "r1"})  # raters read only that it is unavailable
    assert [w.value for w in rater.warning] == [ui_admin_setup.UNAVAILABLE] and not rater.button
    assert service.rater_progress(get_engine(sqlite_url), study.name, "r1") is None
    # the operator's terminal gets the full reason, once per process however many pages load
    logged = [r.getMessage() for r in caplog.records if r.name == "survey.app"]
    assert logged == [f"refusing to serve: {error}"]


def test_demo_password_works_in_the_demo_on_localhost(tmp_path: Path, sqlite_url: str, monkeypatch):
    from streamlit import config

    make_study(tmp_path, sqlite_url)
    monkeypatch.setenv("SURVEY_ADMIN_PASSWORD", admin_auth.DEMO_PASSWORD)
    monkeypatch.setenv("SURVEY_DEMO", "1")
    before = config.get_option("server.address")
    config.set_option("server.address", "127.0.0.1")  # what scripts/demo.py passes
    try:
        at = sign_in(admin_auth.DEMO_PASSWORD)
    finally:
        config.set_option("server.address", before)
    assert at.metric and not at.error


# ------------------------------------------------------------------------------- hostile input
HOSTILE_IDS = ['o"brien\'s', "<img src=x onerror=alert(1)>", "**bold** [x](javascript:alert(1)) `c`",
               "👩‍🔬🧪 ïd", "$x$ :red[y] <script>z</script>"]


@pytest.mark.parametrize("rater", HOSTILE_IDS)
def test_hostile_but_valid_rater_ids_work_verbatim_and_are_never_rendered(tmp_path: Path, sqlite_url: str,
                                                                          rater: str):
    study = make_study(tmp_path, sqlite_url, n_items=1, n_checks=0)
    at = start(study, rater)
    assert progress_text(at) == "1 / 1" and not [t for t in texts(at) if rater in t]
    click(at, "B")
    assert list(votes_frame(sqlite_url, study.name)["rater"]) == [rater]  # stored verbatim
    assert not [t for t in texts(at) if rater in t]


@pytest.mark.parametrize("query, message", [
    ({"rater": "x" * 10_240}, "too long"),
    ({"rater": "tab\x00null"}, "not allowed"),
    ({"study": "nosuchstudy", "rater": "r"}, "not valid"),
    ({"study": "<script>alert(1)</script>", "rater": "r"}, "not valid"),
    ({"study": "x" * 10_240, "rater": "r"}, "not valid"),
    ({"study": "../uistudy", "rater": "r"}, "not valid"),
    ({"study": "uistudy\"'", "rater": "r"}, "not valid"),
])
def test_hostile_links_get_a_clear_message(tmp_path: Path, sqlite_url: str, query, message):
    study = make_study(tmp_path, sqlite_url)
    at = open_page({"study": study.name, **query})
    assert any(message in w.value for w in at.warning), texts(at)
    assert not at.button and not at.image and not at.error
    assert not [t for q in query.values() for t in texts(at) if len(q) > 3 and q in t]
    assert service.list_studies(get_engine(sqlite_url)) == [study.name]
    assert len(votes_frame(sqlite_url, study.name)) == 0


def test_failures_show_only_a_generic_message(tmp_path: Path, sqlite_url: str, monkeypatch):
    study = make_study(tmp_path, sqlite_url)
    at = start(study, "unlucky")
    secrets = study.secrets()
    for image in sorted(study.package.glob("maps/*.png")):  # the package vanished from the disk
        image.unlink()
    at = open_page({"study": study.name, "rater": "unlucky"})
    assert [e.value for e in at.error] == [GENERIC_ERROR] and not at.button
    page_text = " ".join(texts(at))
    assert not [s for s in secrets if s in page_text]

    (tmp_path / "garbage.db").write_bytes(b"this is not a database" * 100)
    monkeypatch.setenv("SURVEY_DB_URL", f"sqlite:///{tmp_path / 'garbage.db'}")
    at = open_page({"study": study.name, "rater": "unlucky"})
    assert [e.value for e in at.error] == [GENERIC_ERROR]


# ------------------------------------------------------------------------- busy database (issue 9)
def test_busy_database_gives_a_notice_and_the_next_click_records_once(tmp_path: Path, sqlite_url: str,
                                                                       monkeypatch: pytest.MonkeyPatch):
    from survey import db
    from survey.ui_page import clicks

    study = make_study(tmp_path, sqlite_url)
    at = start(study, "busy rater")
    assert progress_text(at) == f"1 / {study.n_trials}"
    real = service.record_vote
    calls: list[str] = []

    def busy_once(engine, *args):  # noqa: ANN001, ANN202
        calls.append(args[2])
        if len(calls) == 1:
            raise db.DatabaseBusy("no turn to write within 5.0 s")
        return real(engine, *args)

    monkeypatch.setattr(service, "record_vote", busy_once)
    at.run()  # the buttons now carry the patched call
    executions = clicks.executions
    click(at, "A")
    assert BUSY in texts(at) and progress_text(at) == f"1 / {study.n_trials}"  # same pair, clear notice
    assert not any("DatabaseBusy" in t or "5.0 s" in t for t in texts(at))
    click(at, "B")  # the rater clicks again: this one is stored
    assert progress_text(at) == f"2 / {study.n_trials}" and BUSY not in texts(at)
    assert clicks.executions - executions == 2 and len(calls) == 2
    votes = votes_frame(sqlite_url, study.name)
    assert list(votes["chosen_side"]) == ["right"]
