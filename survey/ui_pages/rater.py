"""The rater page: link -> consent and instructions -> one blinded pair per screen -> completion code.
A distinction study (``view.task``) shows one photo and its candidate maps per screen instead
(:mod:`survey.distinction_service`); everything else (consent, resume, clicks, completion) is shared.

Thin on purpose: every decision about input lives in :mod:`survey.ui_logic`, every read and write in
:mod:`survey.service`. Nothing that must survive a reload is kept in the session: the database knows
where a rater is, so a reload, a new tab or another device with the same rater id continues at the
next unanswered item. A rater exists in the database from the moment they accept the consent.

A vote carries the *trial token* of the pair that was on screen (button key and callback argument),
and the service records at most one vote per token, so a double click or a stale tab can never vote
twice or skip an item.
"""
from __future__ import annotations

import os

import streamlit as st

from survey import distinction_service, service, ui_images, ui_logic
from survey.clicks import StillRunning
from survey.db import WRITER_WAIT_S, is_busy
from survey.invite import verify_token
from survey.ui_page import (BUSY, GENERIC_ERROR, STILL_SAVING, blinded_image, clicks, engine, guarded, log,
                             page_style, stop_with, vote_spacing)

NOTICE = "notice"  # session key: a message for the rater from the last click (closed study, ...)
# A repeated click waits this long for the first copy's outcome (which ends within the database's
# WRITER_WAIT_S), then gets a notice. The wait is stoppable, so it never piles up threads.
CLICK_WAIT_S = WRITER_WAIT_S + 2.0
INVALID_LINK = "This survey link is not valid. Please check the link you were given."


def _superseded() -> None:
    """A Streamlit yield point: raises StopException when a newer click has replaced this run, so a
    thread waiting for an earlier copy of its click ends instead of piling up."""
    _ = NOTICE in st.session_state


def _click(key: tuple, action, *args) -> None:  # noqa: ANN001
    """Runs a button's service call once per ``key`` (see :mod:`survey.clicks`); failures become a
    rater-safe notice. Runs in the button's callback, i.e. in the script thread of this click."""
    kind, study, rater, *token = key
    min_gap_s = ui_logic.min_vote_gap_s(os.environ.get("SURVEY_MIN_VOTE_GAP_MS"))
    if kind == "vote":
        if vote_spacing.too_soon((study, rater), token[0], min_gap_s):
            return  # a repeated click that landed on the pair which had just replaced the clicked one
        vote_spacing.clicked((study, rater), token[0])
    try:
        clicks.run(key, lambda: action(engine(), *args), wait_s=CLICK_WAIT_S, poll=_superseded)
    except service.SurveyError as exc:  # rater-safe by contract (closed study, stale pair, ...)
        st.session_state[NOTICE] = str(exc)
    except StillRunning:
        st.session_state[NOTICE] = STILL_SAVING
    except Exception as exc:
        if is_busy(exc):
            log.warning("%s: database busy (%s)", getattr(action, "__name__", "survey action"), exc)
            st.session_state[NOTICE] = BUSY
        else:
            log.exception("%s failed", getattr(action, "__name__", "survey action"))
            st.session_state[NOTICE] = GENERIC_ERROR


def _ask_for_rater_id() -> None:
    """No id in the link: let the rater type one, then put it in the URL so a reload keeps it."""
    st.title("Welcome", anchor=False)
    with st.form("rater-id"):
        typed = st.text_input("Your participant id", max_chars=ui_logic.MAX_RATER_ID_CHARS)
        submitted = st.form_submit_button("Continue", type="primary")
    if submitted:
        try:
            rater = ui_logic.rater_id_from(typed)
        except ui_logic.BadLink as exc:
            stop_with(str(exc), "warning")
        if rater is None:
            stop_with("Please enter your participant id.", "warning")
        st.query_params["rater"] = rater
        st.rerun()
    st.stop()


def _check_invitation(study: str, rater: str | None) -> None:
    """Invite-only studies: the link must carry this rater's HMAC token (``survey.invite``)."""
    secret = os.environ.get("SURVEY_INVITE_SECRET", "")
    if not secret:
        log.error("study %r admits invited raters only but SURVEY_INVITE_SECRET is not set", study)
        stop_with("This survey is not accepting participants at the moment.", "warning")
    try:
        token = ui_logic.token_from(st.query_params.get("token"))
    except ui_logic.BadLink as exc:
        stop_with(str(exc), "warning")
    if rater is None or token is None or not verify_token(study, rater, token, secret):
        stop_with("This invitation link is not valid. Please open the exact link you were sent.", "warning")


def _welcome(view: service.StudyView, rater: str) -> None:
    """Consent and instructions (with the example pair) before the first item."""
    st.title("Welcome", anchor=False)
    st.markdown(view.consent or ui_logic.default_consent(view.task))
    st.subheader("Instructions", anchor=False)
    st.markdown(view.instructions)
    example = view.example
    if view.task == "distinction":
        _distinction_example(view)
    elif example is not None:
        st.markdown("**Example** (for practice, not scored): "
                    + ui_logic.question_markdown(view.question, example.label))
        photo, left, right = st.columns(3, gap="medium")
        for column, path, caption in ((photo, example.image_path, "Photo"), (left, example.left_path, "A"),
                                      (right, example.right_path, "B")):
            with column:
                blinded_image(view.package_root, path, caption)
    st.button("I agree, start", type="primary", key="consent",
              on_click=_click, args=(("start", view.name, rater), service.start_rater, view.name, rater))


def _arm_buttons(token: str) -> None:
    """A new pair's buttons take no clicks for $SURVEY_VOTE_ARM_MS after the browser draws them."""
    css = ui_logic.arming_css(token, ui_logic.arm_ms(os.environ.get("SURVEY_VOTE_ARM_MS")))
    if css:
        st.html(css)


def _show_trial(view: service.StudyView, rater: str, trial: service.Trial) -> None:
    vote = ("vote", view.name, rater, trial.token)  # one write per trial, whichever button and how often
    _arm_buttons(trial.token)
    fraction, text = ui_logic.progress(trial.position, trial.total)
    st.progress(fraction, text=text)
    st.markdown(ui_logic.question_markdown(view.question, trial.label))
    photo, left, right = st.container(key="pair").columns(3, gap="medium")
    with photo:
        blinded_image(view.package_root, trial.image_path, "Photo")
    for column, side, path in ((left, "A", trial.left_path), (right, "B", trial.right_path)):
        with column:
            blinded_image(view.package_root, path, side)
            st.button(side, key=f"{side}-{trial.token}", type="primary", width="stretch", on_click=_click,
                      args=(vote, service.record_vote, view.name, rater, trial.token, side))
    if trial.allow_no_preference:
        st.button("No preference", key=f"none-{trial.token}", width="stretch", on_click=_click,
                  args=(vote, service.record_vote, view.name, rater, trial.token, "none"))


def _candidate_grid(view: service.StudyView, photo: object, candidates: tuple, buttons=None) -> None:  # noqa: ANN001
    """The photo beside (phones: above) the candidate maps in a 2-column grid, each captioned with its
    class label; ``buttons(slot)`` draws the answer buttons under map ``slot``."""
    left, right = st.container(key="dlayout").columns([1, 2], gap="medium")
    with left, st.container(key="dphoto"):
        blinded_image(view.package_root, photo, "Photo")
    with right, st.container(key="dgrid"):
        for slot, candidate in enumerate(candidates):
            with st.container(key=f"dcand{slot}"):
                blinded_image(view.package_root, candidate.path, candidate.label)
                if buttons is not None:
                    buttons(slot)


def _distinction_example(view: service.StudyView) -> None:
    example = distinction_service.get_example(engine(), view.name)
    if example is not None:
        st.markdown("**Example** (for practice, not scored): " + ui_logic.escape_markdown(example.question))
        _candidate_grid(view, example.image_path, example.candidates)
        st.markdown(f"In this example the model chose **{ui_logic.escape_markdown(example.answer_label)}**, "
                    "so its map is the one to pick. In the study, click a number from 1 (just guessing) to "
                    "5 (certain) under the map you pick.")


def _show_screen(view: service.StudyView, rater: str, screen: distinction_service.DistinctionScreen) -> None:
    """One distinction trial: one click (a confidence number under a map) answers it."""
    answer = ("vote", view.name, rater, screen.token)  # one write per trial, whichever button and how often
    _arm_buttons(screen.token)
    fraction, text = ui_logic.progress(screen.position, screen.total)
    st.progress(fraction, text=text)
    st.markdown(ui_logic.escape_markdown(screen.question))
    st.caption(ui_logic.confidence_help(distinction_service.CONFIDENCE_ENDS))

    def buttons(slot: int) -> None:
        for column, level in zip(st.columns(5, gap=None), range(1, 6)):
            column.button(str(level), key=f"d{slot}-{level}-{screen.token}", width="stretch", on_click=_click,
                          args=(answer, distinction_service.record_answer, view.name, rater, screen.token,
                                slot, level))

    _candidate_grid(view, screen.image_path, screen.candidates, buttons)


def _finish(view: service.StudyView, rater: str) -> None:
    done = service.completion(engine(), view.name, rater)
    st.progress(1.0, text="Done")
    st.title("Thank you!", anchor=False)
    st.write("You have answered every item. Your completion code is:")
    st.code(done.code, language=None)
    link = ui_logic.safe_link(done.redirect_url)
    if link:
        st.link_button("Finish and return", link, type="primary")


def render() -> None:
    page_style()
    eng = engine()
    try:
        name = ui_logic.choose_study(st.query_params.get("study"), os.environ.get("SURVEY_STUDY"),
                                     lambda: service.list_open_studies(eng))
        rater = ui_logic.rater_from_params(st.query_params)
    except ui_logic.BadLink as exc:
        stop_with(str(exc), "warning")
    view = service.get_study(eng, name)
    if view is None:
        stop_with(INVALID_LINK, "warning")
    if view.invite_only:
        _check_invitation(name, rater)
    if rater is None:
        _ask_for_rater_id()

    notice = st.session_state.pop(NOTICE, None)
    if notice:
        st.warning(notice)
    started = f"started:{name}:{rater}"  # session key: this session already saw the rater in the DB
    try:
        if not (view.is_open and st.session_state.get(started)):  # first run of a session, or closed
            progress = service.rater_progress(eng, name, rater)
            if progress is not None and progress.finished:
                _finish(view, rater)
                return
            if not view.is_open:
                stop_with(service.CLOSED)
            if os.environ.get("SURVEY_IMAGE_PREFETCH", "1") != "0":
                ui_images.prefetch_folder(view.package_root)  # once per process: next pairs are ready
            if progress is None:
                _welcome(view, rater)
                return
            st.session_state[started] = True
        next_trial = distinction_service.next_trial if view.task == "distinction" else service.next_trial
        trial = next_trial(eng, name, rater)
    except service.SurveyError as exc:
        stop_with(str(exc), "warning")
    if trial is None:  # the last vote was just recorded (or landed from another tab)
        _finish(view, rater)
        return
    if view.task == "distinction":
        _show_screen(view, rater, trial)
    else:
        _show_trial(view, rater, trial)


guarded(render)
