"""Streamlit pieces both pages share: the engine, rater-safe failure handling, blinded images.

The page scripts stay thin: they read state, call :mod:`survey.service`, and render with these.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import streamlit as st
from sqlalchemy import Engine

from survey import ui_images
from survey.db import get_engine

log = logging.getLogger("survey.app")

GENERIC_ERROR = ("Something went wrong on our side. Please reload the page in a moment; "
                 "the answers you already gave are saved.")


def engine() -> Engine:
    """The process-wide engine for ``$SURVEY_DB_URL`` (cached by :func:`survey.db.get_engine`)."""
    return get_engine()


def stop_with(message: str, kind: str = "info") -> None:
    """Shows one rater-safe message and ends this run of the page."""
    getattr(st, kind)(message)
    st.stop()


def guarded(render: Callable[[], None]) -> None:
    """Runs a page; an unexpected exception is logged in full but the browser sees a generic message.

    ``client.showErrorDetails = "none"`` already hides tracebacks; this also keeps the exception's
    *text* (which may hold a path or a method name) away from the rater and keeps the layout calm.
    ``st.stop()``/``st.rerun()`` are BaseExceptions and pass through.
    """
    try:
        render()
    except Exception:
        log.exception("survey page failed")
        st.error(GENERIC_ERROR)


def blinded_image(root: Path, path: Path | str, caption: str) -> None:
    """An image as metadata-free bytes at the display size; caption and alt text are ``caption``."""
    st.image(ui_images.display_image(root, path), caption=caption, alt=caption, width="stretch",
             output_format=ui_images.DISPLAY_FORMAT)


def votes_csv(eng: Engine, study: str) -> bytes:
    """The study's votes CSV (``survey.export.votes_frame``; contract C columns) for the admin download."""
    from survey.export import votes_frame

    return votes_frame(eng, study).to_csv(index=False).encode("utf-8")
