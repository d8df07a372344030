"""The admin page (``/admin``): live progress of each study, behind a password.

The password comes from ``SURVEY_ADMIN_PASSWORD`` or ``admin_password`` in Streamlit secrets
(:mod:`survey.ui_admin_setup`; ``survey/app.py`` has already refused a weak one). Each attempt goes
through :func:`survey.admin_auth.attempt_sign_in`: constant-time compare, lockout after repeated
failures, and a log line, which the signed-in page lists. With no password set the page says that
admin is disabled and shows nothing else. Unlike the rater page, this page names methods.
"""
from __future__ import annotations

import hashlib

import streamlit as st

from survey import admin_auth, distinction_service, service, ui_admin_setup, ui_logic
from survey.ui_page import engine, guarded, votes_csv

SIGNED_IN = "admin_signed_in"  # session key: digest of the password this session signed in with


def _signed_in(expected: str) -> bool:
    """True when this session holds the current password; otherwise shows the sign-in form."""
    digest = hashlib.sha256(expected.encode("utf-8")).hexdigest()  # a changed password signs everyone out
    if st.session_state.get(SIGNED_IN) == digest:
        return True
    st.title("Survey admin")
    with st.form("admin-sign-in", clear_on_submit=True):
        given = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        result = admin_auth.attempt_sign_in(engine(), given, expected, ui_admin_setup.client_address())
        if result.ok:
            st.session_state[SIGNED_IN] = digest
            st.rerun()
        if result.outcome == "failure":
            st.error("Wrong password.")
        if result.retry_after_s > 0:
            st.error(f"Too many failed sign-ins: sign-in is locked. Try again in "
                     f"{admin_auth.wait_text(result.retry_after_s)}.")
    return False


def _set_open(study: str, is_open: bool) -> None:
    service.set_study_open(engine(), study, is_open)


def _open_close(study: str, is_open: bool) -> None:
    if is_open:
        st.button("Close study", on_click=_set_open, args=(study, False), key=f"close-{study}")
    else:
        st.button("Open study", on_click=_set_open, args=(study, True), key=f"open-{study}")


def _progress_metrics(s, count_label: str, count: int) -> None:  # noqa: ANN001 (either task's summary)
    """One row: raters started and finished, the study's answers or votes, attention-check failures."""
    started, finished, counted, checks = st.columns(4)
    started.metric("Raters started", s.raters_started)
    finished.metric("Raters finished", s.raters_finished)
    counted.metric(count_label, count)
    checks.metric("Attention-check failures", f"{s.attention_failures} / {s.attention_checks_answered}",
                  help=f"{s.raters_failing_attention} rater(s) failed at least one check")


def _distinction_panel(study: str) -> None:
    """A distinction study: progress, attention checks, accuracy per method, the answers CSV."""
    eng = engine()
    s = distinction_service.summary(eng, study)
    st.subheader(f"{study} ({'open' if s.is_open else 'closed'}, distinction task)")
    _progress_metrics(s, "Answers", s.n_answers)
    toggle, download = st.columns(2)
    with toggle:
        _open_close(study, s.is_open)
    with download:
        st.download_button("Download answers CSV", data=lambda: votes_csv(eng, study),
                           file_name=f"{study}-answers.csv", mime="text/csv", key=f"csv-{study}",
                           on_click="ignore")
    st.markdown("**Accuracy per method** (first showings of regular items; chance is 1 / number of maps; "
                "the analysis gives intervals)")
    st.dataframe(s.per_method, hide_index=True, width="stretch")


def _study_panel(study: str) -> None:
    eng = engine()
    view = service.get_study(eng, study)
    if view is not None and view.task == "distinction":
        _distinction_panel(study)
        return
    s = service.admin_summary(eng, study)
    state = "open" if s.is_open else "closed"
    st.subheader(f"{study} ({state})")
    _progress_metrics(s, "Votes", s.n_votes)
    st.markdown("**Preference for the proposed method:** "
                + ui_logic.escape_markdown(ui_logic.preference_text(s.k, s.n, s.proposed_rate, s.ci)))
    st.caption(f"First showings of regular items with a preference; exact (Clopper-Pearson) 95% CI. "
               f"No preference: {s.no_preference}.")
    toggle, download = st.columns(2)
    with toggle:
        _open_close(study, s.is_open)
    with download:
        st.download_button("Download votes CSV", data=lambda: votes_csv(eng, study),
                           file_name=f"{study}-votes.csv", mime="text/csv", key=f"csv-{study}",
                           on_click="ignore")
    st.markdown("**Votes per item** (balance: `proposed_left` should be half of `assigned`)")
    st.dataframe(s.votes_per_item, hide_index=True, width="stretch")


def _sign_in_log() -> None:
    records = admin_auth.recent_sign_ins(engine())
    st.subheader("Recent sign-ins")
    st.caption("Newest first; server time (UTC). A failure is a wrong password, locked an attempt "
               "refused unchecked during a lockout. No address: localhost, or not known.")
    st.table([{"time (UTC)": r.at.strftime("%Y-%m-%d %H:%M:%S"), "client address": r.client_address or "",
               "outcome": r.outcome} for r in records])


def render() -> None:
    expected = ui_admin_setup.configured_password()
    if expected is None:
        st.title("Survey admin")
        st.info("The admin page is disabled: set SURVEY_ADMIN_PASSWORD (or admin_password in "
                ".streamlit/secrets.toml) and restart the app.")
        return
    if not _signed_in(expected):
        return
    st.title("Survey admin")
    names = service.list_studies(engine())
    if names:
        _study_panel(st.selectbox("Study", names, key="admin-study"))
    else:
        st.info("No study has been imported yet: python -m survey.study import PACKAGE --db URL")
    _sign_in_log()


guarded(render)
