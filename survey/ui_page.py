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
from survey.clicks import SingleFlight, VoteSpacing
from survey.db import get_engine

log = logging.getLogger("survey.app")

# Clicks of every session of this process: one write per click however often it arrives (issue 9).
clicks = SingleFlight()
vote_spacing = VoteSpacing()  # the stray second click of a double click never votes on the next pair

# Rater-safe notices for clicks that could not be served at once (docs/survey.md, "Under load").
STILL_SAVING = ("Your answer is still being saved. If this pair is still here in a moment, "
                "please click your choice again.")
BUSY = "The study is very busy right now and your last click was not saved. Please click again."
GENERIC_ERROR = ("Something went wrong on our side. Please reload the page in a moment; "
                 "the answers you already gave are saved.")


# Injected into every run of the rater page (no method names, no file names: pure layout).
# 0. The click guard's container (below) takes no space.
# 1. Buttons of the previous run (Streamlit marks them data-stale while the next run is on its way)
#    take no clicks: an impatient second click would only restart the run that is about to answer.
# 2. Phones (Streamlit stacks columns below 640 px): the photo sits on top, half width, and maps A
#    and B stay side by side with their buttons, so a 390 x 844 screen shows both without scrolling.
PAGE_CSS = """<style>
[data-stale="true"] button { pointer-events: none; }
.st-key-vibcam-click-guard { display: none; }
@media (max-width: 640px) {
  [data-testid="stMainBlockContainer"] { padding-top: 3.5rem; padding-bottom: 1rem; }
  .st-key-pair [data-testid="stHorizontalBlock"] {
    display: grid !important; grid-template-columns: 1fr 1fr; column-gap: 0.75rem; row-gap: 0.25rem;
  }
  .st-key-pair [data-testid="stColumn"] { width: auto !important; min-width: 0 !important; }
  .st-key-pair [data-testid="stColumn"]:first-child {
    grid-column: 1 / 3; justify-self: center; width: 46% !important;
  }
}
/* Distinction task: the candidate maps always in a 2-column grid, each with its label and a row of
   five confidence buttons that stays a row on phones; tighter spacing and maps sized to the screen
   height, so progress, question, photo, maps and every button fit without scrolling. */
[data-testid="stMain"]:has(.st-key-dlayout) [data-testid="stMainBlockContainer"] {
  padding-top: 4.5rem; padding-bottom: 1rem;
}
[data-testid="stMain"]:has(.st-key-dlayout) [data-testid="stVerticalBlock"] { row-gap: 0.5rem; }
.st-key-dgrid { display: grid !important; grid-template-columns: 1fr 1fr; column-gap: 1rem; row-gap: 0.5rem; }
.st-key-dgrid [data-testid="stImage"] img { max-height: calc((100vh - 23rem) / 2); object-fit: contain; }
.st-key-dgrid [data-testid="stImageCaption"] [data-testid="stCaptionContainer"] {
  color: inherit; font-weight: 600; font-size: 0.95rem;
}
.st-key-dgrid [data-testid="stHorizontalBlock"] {
  display: grid !important; grid-template-columns: repeat(5, 1fr); column-gap: 0.25rem;
}
.st-key-dgrid [data-testid="stColumn"] { width: auto !important; min-width: 0 !important; }
.st-key-dgrid button { padding-left: 0; padding-right: 0; min-width: 0; width: 100%; }
.st-key-dphoto [data-testid="stImage"] img { max-height: calc(100vh - 14rem); object-fit: contain; }
@media (max-width: 640px) {
  [data-testid="stMain"]:has(.st-key-dlayout) [data-testid="stMainBlockContainer"] { padding-top: 4rem; }
  .st-key-dgrid { column-gap: 0.5rem; row-gap: 0.25rem; }
  .st-key-dgrid [data-testid="stImage"] img { max-height: 17vh; }
  .st-key-dgrid button { min-height: 2.1rem; }
  .st-key-dphoto [data-testid="stImage"] img { max-height: 11vh; }
  .st-key-dlayout > [data-testid="stHorizontalBlock"] { gap: 0.25rem; }
  [data-testid="stMain"]:has(.st-key-dlayout) [data-testid="stVerticalBlock"] { row-gap: 0.35rem; }
}
</style>"""


# Our own static script (no data in it), run once per browser tab: a click counts only on the button
# its press began on. Streamlit reuses the previous pair's button elements for the next pair, so a
# press on one pair's A that is released after the next pair took its place (a firm press on a slow
# page, a long tap on a phone, a starved browser that delivers the release late) fires a click on the
# *new* pair's A once that pair's arming has run out. The browser's own rule (a click goes to the
# element both press and release hit) cannot see it, as it is the same element; the Streamlit key
# on it changed. The listener runs before Streamlit's handler (capture phase, on the document) and
# drops such a click. Keyboard clicks (no press: detail 0) pass.
CLICK_GUARD = """<script>
(() => {
  if (window.vibcamClickGuard) return;
  window.vibcamClickGuard = true;
  const keyOf = target => {
    const button = target && target.closest ? target.closest('button') : null;
    const box = button ? button.closest('[class*="st-key-"]') : null;
    return box ? Array.from(box.classList).find(c => c.startsWith('st-key-')) : '';
  };
  let pressed = '';
  document.addEventListener('pointerdown', e => { pressed = keyOf(e.target); }, true);
  document.addEventListener('click', e => {
    const key = keyOf(e.target);
    if (e.detail !== 0 && key && key !== pressed) { e.stopImmediatePropagation(); e.preventDefault(); }
  }, true);
})();
</script>"""
CLICK_GUARD_KEY = "vibcam-click-guard"  # its container, hidden by PAGE_CSS so it takes no space


def page_style() -> None:
    """Adds :data:`PAGE_CSS` and :data:`CLICK_GUARD` to this run of the page."""
    st.html(PAGE_CSS)
    with st.container(key=CLICK_GUARD_KEY):
        st.html(CLICK_GUARD, unsafe_allow_javascript=True)


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
    """The study's votes CSV for the admin download: byte for byte what ``python -m survey.study export``
    writes (``survey.votes_format``), so the analysis reads either the same way."""
    from survey.export import votes_frame
    from survey.votes_format import votes_csv_text

    return votes_csv_text(votes_frame(eng, study)).encode("utf-8")

