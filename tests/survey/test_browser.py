"""The rater app in a real browser: ``streamlit run survey/app.py`` on a free port, Debian's Chromium
driven by Playwright. Two raters finish a study (desktop and phone width), a double click records
one vote, nothing the browser receives names a method or a package file, and a SIGKILL of the server
loses no acknowledged vote."""
from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from survey.db import dispose_engines
from survey.export import votes_frame
from testing import browser as ub
from testing.packages import make_study
from tests.support import require

pytestmark = pytest.mark.browser
ADMIN_PASSWORD = "adm1n ✓ pass"


@pytest.fixture()
def playwright():
    require(ub.chromium_available(), "browser tests need Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


def _jpeg_metadata_free(data: bytes) -> bool:
    at, markers = 2, []
    while data[at] == 0xFF and data[at + 1] != 0xDA:
        markers.append(data[at + 1])
        at += 2 + int.from_bytes(data[at + 2:at + 4], "big")
    return set(markers) <= {0xE0, 0xDB, 0xC0, 0xC4}


def _answer_all(page, n_trials: int, pattern: str, *, dom: list[str],  # noqa: ANN001
                double_click_at: int | None = None, fits_screen: bool = False) -> None:
    """Answers every pair with ``pattern`` (cycled), checking progress, alt texts, sizes; collects the DOM."""
    previous: list[str] = []
    for position in range(1, n_trials + 1):
        ub.wait_for_progress(page, f"{position} / {n_trials}")
        previous = ub.wait_for_pair(page, previous)
        dom.append(page.content())
        shown = page.locator(ub.MAIN_IMAGES).evaluate_all(
            "imgs => imgs.map(i => [i.alt, Math.round(i.getBoundingClientRect().width),"
            " Math.round(i.getBoundingClientRect().height)])")
        assert [alt for alt, *_ in shown] == ["Photo", "A", "B"]
        if page.viewport_size == ub.PHONE:  # phone: photo on top, A and B side by side, no scrolling
            page.wait_for_function("() => document.querySelector('[data-stale=true]') === null")
            _assert_phone_layout(page)
        else:  # desktop: photo, A and B in a row at the same size
            assert len({tuple(size) for _, *size in shown}) == 1
        if fits_screen:  # 1280 x 800: the whole pair and both buttons without scrolling
            for side in "AB":
                assert page.get_by_role("button", name=side, exact=True).evaluate_all(
                    "bs => bs.length > 0"
                    " && bs.every(b => b.getBoundingClientRect().bottom <= window.innerHeight)")
        double = position == double_click_at
        ub.choose(page, pattern[(position - 1) % len(pattern)], double=double)
        if double and position < n_trials:  # one vote for this pair, and the next pair is not skipped
            ub.wait_for_progress(page, f"{position + 1} / {n_trials}")
            page.wait_for_timeout(700)
            assert ub.progress_text(page) == f"{position + 1} / {n_trials}"
    page.get_by_text("Thank you!").wait_for(timeout=30_000)
    dom.append(page.content())


# The boxes (left, top, right, bottom) of the current photo, map A, map B and the A and B buttons.
_PHONE_BOXES_JS = """() => {
    const fresh = el => { const box = el.closest('[data-stale]'); return box === null || box.dataset.stale === 'false'; };
    const box = el => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
    const imgs = Array.from(document.querySelectorAll('[data-testid="stMain"] [data-testid="stImage"] img')).filter(fresh);
    const buttons = Array.from(document.querySelectorAll('button')).filter(fresh);
    const named = name => buttons.filter(b => b.innerText.trim() === name).map(box);
    return {imgs: imgs.map(i => [i.alt, ...box(i)]), A: named('A'), B: named('B'),
            scrollY: window.scrollY, scrollWidth: document.documentElement.scrollWidth,
            height: window.innerHeight, width: window.innerWidth};
}"""


def _assert_phone_layout(page) -> None:  # noqa: ANN001
    """390 x 844: maps A and B side by side, both with their buttons, on screen together without
    scrolling; the photo above them, smaller; nothing wider than the screen."""
    shown = page.evaluate(_PHONE_BOXES_JS)
    assert shown["scrollY"] == 0 and shown["scrollWidth"] <= shown["width"] == ub.PHONE["width"]
    boxes = {alt: box for alt, *box in shown["imgs"]}
    assert sorted(boxes) == ["A", "B", "Photo"]
    assert len(shown["A"]) == 1 and len(shown["B"]) == 1
    photo, a, b = boxes["Photo"], boxes["A"], boxes["B"]
    for left, top, right, bottom in (a, b, shown["A"][0], shown["B"][0]):
        assert 0 <= left < right <= shown["width"] and 0 <= top < bottom <= shown["height"]  # fully on screen
    assert a[2] <= b[0] and abs(a[1] - b[1]) < 2  # side by side, A left of B, same height on screen
    assert shown["A"][0][1] >= a[3] and shown["B"][0][1] >= b[3]  # each button below its map
    assert photo[3] <= a[1]  # the photo above the maps
    assert photo[2] - photo[0] <= a[2] - a[0] + 1  # and no bigger than a map
    assert a[2] - a[0] > 0.4 * shown["width"] * 0.9  # maps still big enough to compare


def test_phone_shows_both_maps_and_their_buttons_without_scrolling(tmp_path: Path, sqlite_url: str,
                                                                    playwright):
    study = make_study(tmp_path, sqlite_url, n_items=2, n_checks=1, image_size=96, photographic=True)
    with ub.serve_app(sqlite_url, log_dir=tmp_path) as server:
        browser = ub.launch_chromium(playwright)
        try:
            phone = browser.new_context(viewport=ub.PHONE, is_mobile=True, has_touch=True).new_page()
            phone.goto(server.link(study=study.name, rater="phone"))
            ub.agree(phone)
            for position in range(1, study.n_trials + 1):
                ub.wait_for_progress(phone, f"{position} / {study.n_trials}")
                ub.wait_for_pair(phone)
                phone.wait_for_function("() => document.querySelector('[data-stale=true]') === null")
                _assert_phone_layout(phone)
                ub.choose(phone, "AB"[position % 2])
            phone.get_by_text("Thank you!").wait_for(timeout=30_000)
        finally:
            browser.close()
    assert len(votes_frame(sqlite_url, study.name)) == study.n_trials


def _admin_sees_both_raters(page, server: ub.AppServer, n_votes: int) -> None:  # noqa: ANN001
    """/admin goes through the router: wrong password shows nothing, the right one the summary and
    the votes CSV."""
    page.goto(f"{server.url}/admin")
    password = page.locator("input[type=password]")
    password.fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Wrong password.").wait_for(timeout=30_000)
    assert page.get_by_text("Raters started").count() == 0
    password.fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Raters finished").wait_for(timeout=30_000)
    finished = page.locator('[data-testid="stMetric"]').filter(has_text="Raters finished")
    assert finished.locator('[data-testid="stMetricValue"]').inner_text().strip() == "2"
    with page.expect_download(timeout=30_000) as download:
        page.get_by_role("button", name="Download votes CSV").click()
    lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("study,rater,item,label,left_method,right_method,chosen_method")
    assert len(lines) == 1 + n_votes


def test_two_raters_finish_blinded(tmp_path: Path, sqlite_url: str, playwright):
    study = make_study(tmp_path, sqlite_url, n_items=4, n_checks=1, image_size=96, photographic=True)
    n = study.n_trials
    dom: list[str] = []
    with ub.serve_app(sqlite_url, log_dir=tmp_path, env={"SURVEY_ADMIN_PASSWORD": ADMIN_PASSWORD}) as server:
        browser = ub.launch_chromium(playwright)
        try:
            desk = browser.new_context(viewport=ub.DESKTOP).new_page()
            desk_traffic = ub.record_traffic(desk)
            desk.goto(server.link(study=study.name, rater="alice"))
            ub.agree(desk)
            _answer_all(desk, n, "AB", dom=dom, fits_screen=True)

            phone = browser.new_context(viewport=ub.PHONE, is_mobile=True, has_touch=True).new_page()
            phone_traffic = ub.record_traffic(phone)
            phone.goto(server.link(study=study.name, PROLIFIC_PID="bob"))
            ub.agree(phone)
            ub.wait_for_progress(phone, f"1 / {n}")
            ub.wait_for_pair(phone)
            _assert_phone_layout(phone)
            phone.reload()  # a reload resumes at the same pair, without the consent page
            ub.wait_for_progress(phone, f"1 / {n}")
            assert phone.get_by_role("button", name="I agree, start").count() == 0
            _answer_all(phone, n, "BBA", dom=dom, double_click_at=2)
            admin = browser.new_page(viewport=ub.DESKTOP, accept_downloads=True)
            _admin_sees_both_raters(admin, server, n_votes=2 * n)
        finally:
            browser.close()

    # the database holds exactly the two raters' clicks
    votes = votes_frame(sqlite_url, study.name)
    expected = {"alice": ["left" if s == "A" else "right" for s in "AB" * n][:n],
                "bob": ["left" if s == "A" else "right" for s in "BBA" * n][:n]}
    assert sorted(set(votes["rater"])) == ["alice", "bob"]
    for rater, sides in expected.items():
        mine = votes[votes["rater"] == rater]
        assert list(mine["position"]) == list(range(1, n + 1))
        assert list(mine["chosen_side"]) == sides
        assert mine["rater_finished"].all()

    # blinding: nothing received (HTML, websocket frames, DOM, media URLs and bytes) names a method or file
    secrets = study.secrets()
    received = [body for traffic in (desk_traffic, phone_traffic) for *_, body in traffic.responses]
    received += [f for traffic in (desk_traffic, phone_traffic) for f in traffic.frames]
    received += [d.encode() for d in dom]
    received += [url.encode() for traffic in (desk_traffic, phone_traffic) for url, *_ in traffic.responses]
    leaks = {s for s in secrets for blob in received if s.encode() in blob}
    assert not leaks
    media = desk_traffic.media() + phone_traffic.media()
    assert len(media) >= 3 * n
    for url, body in media:
        assert url.rsplit("/", 1)[-1].split(".")[0].isalnum()  # /media/<hash>.jpg, nothing else
        with Image.open(io.BytesIO(body)) as im:
            assert im.format == "JPEG" and im.size == (448, 448)
        assert _jpeg_metadata_free(body)
    assert any(b"<html" in body.lower() for *_, body in desk_traffic.responses)

    screenshot = os.environ.get("VIBCAM_SCREENSHOT")  # the README picture, on request
    if screenshot:
        ub.screenshot_rater_page(sqlite_url, study.name, Path(screenshot))


def test_sigkill_loses_no_acknowledged_vote(tmp_path: Path, sqlite_url: str, playwright):
    study = make_study(tmp_path, sqlite_url, n_items=5, n_checks=1)
    n = study.n_trials
    browser = ub.launch_chromium(playwright)
    try:
        with ub.serve_app(sqlite_url, log_dir=tmp_path) as server:
            page = browser.new_page(viewport=ub.DESKTOP)
            page.goto(server.link(study=study.name, rater="crash"))
            ub.agree(page)
            for position in range(1, 4):
                ub.wait_for_progress(page, f"{position} / {n}")
                ub.choose(page, "B")
            ub.wait_for_progress(page, f"4 / {n}")  # three votes acknowledged on screen
            ub.choose(page, "A")  # a fourth click, killed in flight: it may or may not have landed
            server.kill_hard()
        dispose_engines()
        votes = votes_frame(sqlite_url, study.name)
        assert len(votes) in (3, 4) and list(votes["position"]) == list(range(1, len(votes) + 1))
        assert list(votes["chosen_side"][:3]) == ["right"] * 3

        with ub.serve_app(sqlite_url, log_dir=tmp_path) as server:
            page = browser.new_page(viewport=ub.DESKTOP)
            page.goto(server.link(study=study.name, rater="crash"))
            resume = len(votes) + 1
            ub.wait_for_progress(page, f"{resume} / {n}")  # straight back to the next unanswered pair
            assert page.get_by_role("button", name="I agree, start").count() == 0
            for position in range(resume, n + 1):
                ub.wait_for_progress(page, f"{position} / {n}")
                ub.choose(page, "A")
            page.get_by_text("Thank you!").wait_for(timeout=30_000)
    finally:
        browser.close()
    dispose_engines()
    votes = votes_frame(sqlite_url, study.name)
    assert list(votes["position"]) == list(range(1, n + 1)) and set(votes["rater"]) == {"crash"}


def test_a_click_as_a_new_pair_appears_is_not_a_vote(tmp_path: Path, sqlite_url: str, playwright):
    """A new pair's buttons take no clicks while $SURVEY_VOTE_ARM_MS runs (here 3 s, with the server's
    VoteSpacing off, so only the browser-side arming can stop the click), then they do."""
    study = make_study(tmp_path, sqlite_url, n_items=3, n_checks=0)
    n = study.n_trials
    browser = ub.launch_chromium(playwright)
    try:
        env = {"SURVEY_VOTE_ARM_MS": "3000", "SURVEY_MIN_VOTE_GAP_MS": "0"}
        with ub.serve_app(sqlite_url, log_dir=tmp_path, env=env) as server:
            page = browser.new_page(viewport=ub.DESKTOP)
            page.goto(server.link(study=study.name, rater="quick"))
            ub.agree(page)
            ub.wait_for_progress(page, f"1 / {n}")
            ub.choose(page, "A")  # an actionable click: Playwright waits until the button takes clicks
            ub.wait_for_progress(page, f"2 / {n}")
            page.locator('[data-stale="false"][class*="st-key-B-"] button').click(force=True)  # at once
            page.wait_for_timeout(1000)
            assert ub.progress_text(page) == f"2 / {n}"
            dispose_engines()
            assert len(votes_frame(sqlite_url, study.name)) == 1
            page.wait_for_timeout(2500)  # armed now: the same click counts
            page.locator('[data-stale="false"][class*="st-key-B-"] button').click(force=True)
            ub.wait_for_progress(page, f"3 / {n}")
    finally:
        browser.close()
    dispose_engines()
    votes = votes_frame(sqlite_url, study.name)
    assert list(votes["chosen_side"]) == ["left", "right"]


def test_a_press_on_one_pair_released_on_the_next_is_not_a_vote(tmp_path: Path, sqlite_url: str, playwright):
    """Streamlit reuses a pair's button element for the next pair, so a press held while the next pair
    takes its place is released on the same element under the next pair's key: the browser fires a
    click there. The page's click guard (``survey.ui_page.CLICK_GUARD``) drops it; a click pressed and
    released on one pair counts. The reuse is played here by renaming the key between press and
    release, which is all that changes on the element."""
    study = make_study(tmp_path, sqlite_url, n_items=2, n_checks=0)
    n = study.n_trials
    browser = ub.launch_chromium(playwright)
    rename = "([from, to]) => document.querySelector('.' + from).classList.replace(from, to)"
    try:
        with ub.serve_app(sqlite_url, log_dir=tmp_path) as server:
            page = browser.new_page(viewport=ub.DESKTOP)
            page.goto(server.link(study=study.name, rater="firm"))
            ub.agree(page)
            ub.wait_for_progress(page, f"1 / {n}")
            box = page.locator('[data-stale="false"][class*="st-key-A-"]')
            key = next(c for c in box.get_attribute("class").split() if c.startswith("st-key-A-"))
            box.locator("button").hover()  # actionable: waits out the arming
            page.wait_for_timeout(600)
            page.mouse.down()
            page.evaluate(rename, [key, key + "next"])  # the next pair took the element
            page.mouse.up()
            page.wait_for_timeout(1500)
            assert ub.progress_text(page) == f"1 / {n}"
            dispose_engines()
            assert len(votes_frame(sqlite_url, study.name)) == 0
            page.evaluate(rename, [key + "next", key])
            page.mouse.down()
            page.mouse.up()  # pressed and released on the same pair: a vote
            ub.wait_for_progress(page, f"2 / {n}")
    finally:
        browser.close()
    dispose_engines()
    assert list(votes_frame(sqlite_url, study.name)["chosen_side"]) == ["left"]


def test_demo_admin_password_and_lockout_across_tabs(tmp_path: Path, sqlite_url: str, playwright):
    """The demo's printed password works on its localhost server (SURVEY_DEMO=1, bound to 127.0.0.1 as
    scripts/demo.py does); then five wrong guesses, each from a new tab, lock out even the right one."""
    from survey import admin_auth
    from survey.db import get_engine

    make_study(tmp_path, sqlite_url, n_items=1, n_checks=0)
    env = {"SURVEY_ADMIN_PASSWORD": admin_auth.DEMO_PASSWORD, admin_auth.DEMO_ENV: "1"}
    with ub.serve_app(sqlite_url, log_dir=tmp_path, env=env) as server:
        browser = ub.launch_chromium(playwright)
        try:
            def try_password(password: str, expect: str):  # noqa: ANN202 (playwright page)
                page = browser.new_page(viewport=ub.DESKTOP)  # a new tab: a new Streamlit session
                page.goto(f"{server.url}/admin")
                page.locator("input[type=password]").fill(password)
                page.get_by_role("button", name="Sign in").click()
                page.get_by_text(expect).first.wait_for(timeout=30_000)
                return page

            first = try_password(admin_auth.DEMO_PASSWORD, "Raters finished")
            first.get_by_text("Recent sign-ins").wait_for(timeout=30_000)
            for _ in range(admin_auth.MAX_FAILURES):
                try_password("not the password", "Wrong password.").close()
            locked = try_password(admin_auth.DEMO_PASSWORD, "sign-in is locked")
            assert locked.get_by_text("Raters started").count() == 0
        finally:
            browser.close()
    log = admin_auth.recent_sign_ins(get_engine(sqlite_url))
    assert [r.outcome for r in log] == ["locked"] + ["failure"] * admin_auth.MAX_FAILURES + ["success"]
    assert {r.client_address for r in log} == {None}  # localhost: Streamlit reports no address
