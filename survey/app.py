"""The rater app: ``streamlit run survey/app.py`` from the repository root (see docs/rater-app.md);
the `survey` package is importable because `make venv` installs the project in editable mode.

This file only routes: the rater page (default, ``/``) and the password-protected admin page
(``/admin``); with a weak admin password it serves neither (``survey.ui_admin_setup``). Navigation is
hidden, so raters see no link to the admin page. The page scripts live in ``survey/ui_pages/``,
deliberately not ``pages/``: Streamlit treats a ``pages/`` folder next to the entry point as
old-style pages and would run ``/admin`` directly, bypassing this router.
"""
from __future__ import annotations

import streamlit as st

from survey.ui_admin_setup import refuse_weak_password

st.set_page_config(page_title="Image study", layout="wide", initial_sidebar_state="collapsed",
                   menu_items={"Get help": None, "Report a bug": None, "About": "Image study"})
pages = [
    st.Page("ui_pages/rater.py", title="Image study", default=True),
    st.Page("ui_pages/admin.py", title="Survey admin", url_path="admin"),
]
page = st.navigation(pages, position="hidden")
refuse_weak_password(admin_page=page.url_path == "admin")  # a weak admin password stops the whole app
page.run()
