"""The distinction page in a real browser (``streamlit run survey/app.py`` + Debian's Chromium via
Playwright): a rater finishes a distinction study on a desktop and another on a 390 x 844 phone,
where the photo, all four maps, their labels and every answer button are on screen without
scrolling; nothing the browser receives names a method or a package file, and the maps arrive in
the server's random order, not by rank. ``VIBCAM_DISTINCTION_SCREENSHOT=path.png`` also saves the
page (desktop, and ``path-phone.png``) for the docs."""
from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

import survey.distinction_service as ds
from survey.db import get_engine
from survey.distinction_export import answers_frame
from testing import browser as ub
from testing.distinction_package import make_distinction_study
from testing.reveal import reveal_distinction_trial
from tests.support import require

pytestmark = pytest.mark.browser


@pytest.fixture()
def playwright():
    require(ub.chromium_available(), "browser tests need Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


# Fresh (not stale) answer buttons are keyed "d<slot>-<confidence>-<token>" (CSS class st-key-...).
_FRESH_TOKEN_JS = """() => {
    const keys = Array.from(document.querySelectorAll('[data-stale="false"][class*="st-key-d0-1-"]'))
        .map(box => Array.from(box.classList).find(c => c.startsWith('st-key-d0-1-')));
    if (keys.length !== 1) return false;
    const token = keys[0].slice('st-key-d0-1-'.length);
    return token !== window.__lastToken ? token : false;
}"""

# Boxes of the current photo and maps (alt text = caption) and of the answer buttons.
_BOXES_JS = """() => {
    const fresh = el => { const box = el.closest('[data-stale]'); return box === null || box.dataset.stale === 'false'; };
    const box = el => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
    const imgs = Array.from(document.querySelectorAll('[data-testid="stMain"] [data-testid="stImage"] img')).filter(fresh);
    const captions = Array.from(document.querySelectorAll('[data-testid="stMain"] [data-testid="stImageCaption"], [data-testid="stMain"] [data-testid="stCaptionContainer"]')).filter(fresh);
    const answer = el => Array.from(el.classList).some(c => /^st-key-d[0-9]+-[1-5]-/.test(c));
    const buttons = Array.from(document.querySelectorAll('[class*="st-key-d"]')).filter(answer)
        .map(box => box.querySelector('button')).filter(b => b !== null).filter(fresh);
    const progress = Array.from(document.querySelectorAll('[data-testid="stProgress"]')).filter(fresh);
    const header = document.querySelector('[data-testid="stHeader"]');
    return {header: header === null ? 0 : header.getBoundingClientRect().bottom, progress: progress.map(p => [p.innerText.trim(), ...box(p)]), imgs: imgs.map(i => [i.alt, ...box(i)]), captions: captions.map(c => [c.innerText.trim(), ...box(c)]),
            buttons: buttons.map(b => [b.innerText.trim(), ...box(b)]),
            scrollY: window.scrollY, scrollWidth: document.documentElement.scrollWidth,
            width: window.innerWidth, height: window.innerHeight};
}"""


def _current_screen(page) -> str:
    """Waits for a new screen (a token not yet answered), its five images decoded; returns the token."""
    token = page.wait_for_function(_FRESH_TOKEN_JS, timeout=30_000).json_value()
    page.wait_for_function(
        """(selector) => { const imgs = (%s)(selector);
            return imgs.length === 5 && imgs.every(i => i.complete && i.naturalWidth > 0); }"""
        % ub.CURRENT_IMAGES_JS, arg=ub.MAIN_IMAGES, timeout=30_000)
    page.wait_for_function("() => document.querySelector('[data-stale=true]') === null", timeout=30_000)
    return token


def _assert_fits(page, labels: list[str]) -> None:
    """Photo, four labelled maps in a 2 x 2 grid and all 20 buttons fully on screen, no scrolling.
    Streamlit draws a screen in pieces: the layout is measured once all 20 buttons are drawn (a busy
    machine can take seconds); a screen that never shows them fails below."""
    try:
        page.wait_for_function(f"() => ({_BOXES_JS})().buttons.length === 20", timeout=30_000)
    except Exception:  # Playwright's TimeoutError: measure what is there, and let the asserts say what
        pass
    shown = page.evaluate(_BOXES_JS)
    assert shown["scrollY"] == 0 and shown["scrollWidth"] <= shown["width"]
    assert [alt for alt, *_ in shown["imgs"]] == ["Photo", *labels]
    assert len(shown["buttons"]) == 20 and [b[0] for b in shown["buttons"]] == [str(c) for c in range(1, 6)] * 4
    assert len(shown["progress"]) == 1  # the page is not scrolled: the progress bar is on screen too,
    assert shown["progress"][0][2] >= shown["header"] - 1  # and not under Streamlit's header
    for name, left, top, right, bottom in shown["progress"] + shown["imgs"] + shown["buttons"]:
        assert 0 <= left < right <= shown["width"] and 0 <= top < bottom <= shown["height"], (
            f"{name!r} at {left:.0f},{top:.0f}-{right:.0f},{bottom:.0f} is off the "
            f"{shown['width']} x {shown['height']} screen")
    maps = [box for _, *box in shown["imgs"][1:]]
    lefts, tops = sorted({round(b[0]) for b in maps}), sorted({round(b[1]) for b in maps})
    assert len(lefts) == 2 and len(tops) == 2  # two columns, two rows
    assert maps[0][1] == maps[1][1] and maps[0][0] < maps[1][0]  # reading order: slot 0, 1 on top
    for k, (_, left, top, right, bottom) in enumerate(shown["buttons"]):  # each row of five under its map
        m = maps[k // 5]
        assert top >= m[3] - 1 and m[0] - 1 <= left and right <= m[2] + 1
    assert min(b[3] - b[1] for b in maps) > 0.13 * shown["height"]  # maps still big enough to judge


def _answer_all(page, eng, study: str, rater: str, picks: list[tuple[int, int]], dom: list[str],
                orders: list[tuple]) -> None:
    n = len(picks)
    for position, (slot, confidence) in enumerate(picks, start=1):
        ub.wait_for_progress(page, f"{position} / {n}")
        token = _current_screen(page)
        screen = ds.next_trial(eng, study, rater)
        assert screen.token == token
        labels = [c.label for c in screen.candidates]
        _assert_fits(page, labels)
        orders.append(reveal_distinction_trial(eng, token).ranks)
        dom.append(page.content())
        page.wait_for_timeout(ub.THINK_MS)
        page.evaluate("t => { window.__lastToken = t; }", token)
        page.locator(f".st-key-d{slot}-{confidence}-{token} button").click()
    page.get_by_text("Thank you!").wait_for(timeout=30_000)
    dom.append(page.content())


def _screenshot(page, server: ub.AppServer, study: str, rater: str, out: Path, viewport: dict) -> None:
    page.set_viewport_size(viewport)
    page.goto(server.link(study=study, rater=rater))
    ub.agree(page)
    _current_screen(page)
    page.mouse.move(0, 0)
    raw = page.screenshot()
    with Image.open(io.BytesIO(raw)) as im:  # a small file for the docs: 128 colours are plenty
        im.convert("RGB").quantize(colors=128, dither=Image.Dither.NONE).save(out, optimize=True)


def test_desktop_and_phone_raters_finish_blinded(tmp_path: Path, sqlite_url: str, playwright) -> None:
    study = make_distinction_study(tmp_path, sqlite_url, n_items=4, n_checks=1, image_size=96)
    eng = get_engine(sqlite_url)
    n = study.n_trials
    desk_picks = [(k % 4, 1 + k % 5) for k in range(n)]
    phone_picks = [(3 - k % 4, 5 - k % 5) for k in range(n)]
    dom: list[str] = []
    orders: list[tuple] = []
    with ub.serve_app(sqlite_url, log_dir=tmp_path) as server:
        browser = ub.launch_chromium(playwright)
        try:
            desk = browser.new_context(viewport=ub.DESKTOP).new_page()
            desk_traffic = ub.record_traffic(desk)
            desk.goto(server.link(study=study.name, rater="desk"))
            ub.agree(desk)
            _answer_all(desk, eng, study.name, "desk", desk_picks, dom, orders)

            phone = browser.new_context(viewport=ub.PHONE, is_mobile=True, has_touch=True).new_page()
            phone_traffic = ub.record_traffic(phone)
            phone.goto(server.link(study=study.name, PROLIFIC_PID="phone"))
            ub.agree(phone)
            ub.wait_for_progress(phone, f"1 / {n}")
            _current_screen(phone)
            phone.reload()  # a reload resumes at the same screen, without the consent page
            ub.wait_for_progress(phone, f"1 / {n}")
            assert phone.get_by_role("button", name="I agree, start").count() == 0
            _answer_all(phone, eng, study.name, "phone", phone_picks, dom, orders)

            shot = os.environ.get("VIBCAM_DISTINCTION_SCREENSHOT")
            if shot:
                page = browser.new_page()
                _screenshot(page, server, study.name, "shot-desk", Path(shot), ub.DESKTOP)
                _screenshot(page, server, study.name, "shot-phone",
                            Path(shot).with_name(Path(shot).stem + "-phone.png"), ub.PHONE)
        finally:
            browser.close()

    frame = answers_frame(sqlite_url, study.name)
    for rater, picks in (("desk", desk_picks), ("phone", phone_picks)):
        mine = frame[frame["rater"] == rater]
        assert list(mine["position"]) == list(range(1, n + 1)) and mine["rater_finished"].all()
        assert list(zip(mine["chosen_slot"], mine["confidence"])) == picks
    assert frame.groupby("rater")["method"].nunique().eq(1).all()
    assert frame.groupby("rater")["method"].first().nunique() == 2  # two raters, balanced: both methods

    # the screen order is the server's random one: the answer is not always in the same place
    assert len({ranks.index(1) for ranks in orders}) > 1 and any(list(r) != sorted(r) for r in orders)
    # blinding: nothing received (HTML, websocket frames, DOM, media URLs and bytes) names a method or file
    secrets = study.secrets()
    received = [body for t in (desk_traffic, phone_traffic) for *_, body in t.responses]
    received += [f for t in (desk_traffic, phone_traffic) for f in t.frames]
    received += [d.encode() for d in dom]
    received += [url.encode() for t in (desk_traffic, phone_traffic) for url, *_ in t.responses]
    assert not {s for s in secrets for blob in received if s.encode() in blob}
    media = desk_traffic.media() + phone_traffic.media()
    assert len(media) >= 5 * n
    for url, body in media:
        assert url.rsplit("/", 1)[-1].split(".")[0].isalnum()
        with Image.open(io.BytesIO(body)) as im:
            assert im.format == "JPEG" and not (set(im.info) - {"jfif", "jfif_version", "jfif_unit",
                                                                  "jfif_density", "dpi"})
