"""The admin page (``/admin``): live progress of each study, behind a password.

The password comes from ``SURVEY_ADMIN_PASSWORD`` or ``admin_password`` in Streamlit secrets and is
compared in constant time (:func:`survey.ui_logic.password_matches`). With neither set the page says
that admin is disabled and shows nothing else. Unlike the rater page, this page names methods.
"""
from __future__ import annotations

import hashlib
import os

import streamlit as st

from survey import service, ui_logic
from survey.ui_page import engine, guarded, votes_csv

SIGNED_IN = "admin_signed_in"  # session key: digest of the password this session signed in with


def _configured_secrets() -> dict:
    """``st.secrets`` as a plain dict; empty when there is no secrets file (or it cannot be read)."""
    try:
        return {"admin_password": st.secrets.get("admin_password")}
    except Exception:  # no secrets.toml: Streamlit raises FileNotFoundError (or a subclass)
        return {}


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
        if ui_logic.password_matches(given, expected):
            st.session_state[SIGNED_IN] = digest
            st.rerun()
        st.error("Wrong password.")
    return False


def _set_open(study: str, is_open: bool) -> None:
    service.set_study_open(engine(), study, is_open)


def _study_panel(study: str) -> None:
    eng = engine()
    s = service.admin_summary(eng, study)
    state = "open" if s.is_open else "closed"
    st.subheader(f"{study} ({state})")
    started, finished, votes, checks = st.columns(4)
    started.metric("Raters started", s.raters_started)
    finished.metric("Raters finished", s.raters_finished)
    votes.metric("Votes", s.n_votes)
    checks.metric("Attention-check failures", f"{s.attention_failures} / {s.attention_checks_answered}",
                  help=f"{s.raters_failing_attention} rater(s) failed at least one check")
    st.markdown("**Preference for the proposed method:** "
                + ui_logic.escape_markdown(ui_logic.preference_text(s.k, s.n, s.proposed_rate, s.ci)))
    st.caption(f"First showings of regular items with a preference; exact (Clopper-Pearson) 95% CI. "
               f"No preference: {s.no_preference}.")
    toggle, download = st.columns(2)
    with toggle:
        if s.is_open:
            st.button("Close study", on_click=_set_open, args=(study, False), key=f"close-{study}")
        else:
            st.button("Open study", on_click=_set_open, args=(study, True), key=f"open-{study}")
    with download:
        st.download_button("Download votes CSV", data=lambda: votes_csv(eng, study),
                           file_name=f"{study}-votes.csv", mime="text/csv", key=f"csv-{study}",
                           on_click="ignore")
    st.markdown("**Votes per item** (balance: `proposed_left` should be half of `assigned`)")
    st.dataframe(s.votes_per_item, hide_index=True, width="stretch")


def render() -> None:
    expected = ui_logic.admin_password(os.environ, _configured_secrets())
    if expected is None:
        st.title("Survey admin")
        st.info("The admin page is disabled: set SURVEY_ADMIN_PASSWORD (or admin_password in "
                ".streamlit/secrets.toml) and restart the app.")
        return
    if not _signed_in(expected):
        return
    st.title("Survey admin")
    names = service.list_studies(engine())
    if not names:
        st.info("No study has been imported yet: python -m survey.study import PACKAGE --db URL")
        return
    _study_panel(st.selectbox("Study", names, key="admin-study"))


guarded(render)
