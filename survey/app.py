"""The rater app: ``streamlit run survey/app.py`` from the repository root (see docs/rater-app.md).

This file only routes: the rater page (default, ``/``) and the password-protected admin page
(``/admin``); with a weak admin password it serves neither (``survey.ui_admin_setup``). Navigation is
hidden, so raters see no link to the admin page. The page scripts live in ``survey/ui_pages/``,
deliberately not ``pages/``: Streamlit treats a ``pages/`` folder next to the entry point as
old-style pages and would run ``/admin`` directly, bypassing this router.
"""
from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run survey/app.py` puts survey/ (not the repository root) on sys.path; the pages import
# the `survey` package, so make the root importable the way `python -m` would.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402  (after the sys.path fix on purpose)

from survey.ui_admin_setup import refuse_weak_password  # noqa: E402

st.set_page_config(page_title="Image study", layout="wide", initial_sidebar_state="collapsed",
                   menu_items={"Get help": None, "Report a bug": None, "About": "Image study"})
pages = [
    st.Page("ui_pages/rater.py", title="Image study", default=True),
    st.Page("ui_pages/admin.py", title="Survey admin", url_path="admin"),
]
page = st.navigation(pages, position="hidden")
refuse_weak_password(admin_page=page.url_path == "admin")  # a weak admin password stops the whole app
page.run()
