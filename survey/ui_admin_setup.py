"""The admin settings as this Streamlit process sees them: password, demo mode, client address.

The rules live in :mod:`survey.admin_auth`; this module only reads Streamlit's environment
(secrets, ``server.address``, ``st.context.ip_address``) and, in :func:`refuse_weak_password`,
stops the whole app when the configured password is too weak to put behind a public link.
"""
from __future__ import annotations

import logging
import os
import threading

import streamlit as st

from survey import admin_auth, ui_logic

log = logging.getLogger("survey.app")

UNAVAILABLE = "This survey is not available at the moment. Please try again later."

_logged: set[str] = set()
_logged_lock = threading.Lock()


def _configured_secrets() -> dict:
    """``st.secrets`` as a plain dict; empty when there is no secrets file (or it cannot be read)."""
    try:
        return {"admin_password": st.secrets.get("admin_password")}
    except Exception:  # no secrets.toml: Streamlit raises FileNotFoundError (or a subclass)
        return {}


def configured_password() -> str | None:
    """``SURVEY_ADMIN_PASSWORD``, else ``admin_password`` from secrets; None: admin is disabled.

    Runs on every page load (``survey/app.py``), so secrets (~0.1 ms when there is no file) are
    only read when the environment has no password."""
    from_env = ui_logic.admin_password(os.environ, None)
    return from_env if from_env is not None else ui_logic.admin_password({}, _configured_secrets())


def demo_mode() -> bool:
    """`make demo`: ``SURVEY_DEMO=1`` and the server bound to localhost (:func:`admin_auth.is_demo`)."""
    return admin_auth.is_demo(os.environ, st.get_option("server.address"))


def client_address() -> str | None:
    """The TCP peer of this session, or None (localhost, or not known)."""
    try:
        raw = st.context.ip_address
    except Exception:  # no client context (bare mode): unknown, which shares one count
        raw = None
    return admin_auth.client_address(raw)


def refuse_weak_password(*, admin_page: bool) -> None:
    """Stops the app when the admin password is weak: the full reason goes to the server log (once
    per process) and to ``/admin``; raters only read that the survey is not available."""
    problem = admin_auth.password_problem(configured_password(), demo=demo_mode())
    if problem is None:
        return
    with _logged_lock:
        first = problem not in _logged
        _logged.add(problem)
    if first:
        log.error("refusing to serve: %s", problem)
    if admin_page:
        st.title("Survey admin")
        st.error(problem)
    else:
        st.warning(UNAVAILABLE)
    st.stop()
