"""Real-browser helpers for the rater app: start ``streamlit run survey/app.py`` on a free port, drive
Debian's Chromium with Playwright, and record everything the browser receives.

Used by the browser tests, ``bench/survey_click.py``, ``bench/survey_browser_load.py`` (through
:mod:`testing.browser_load`) and the README screenshot (``python -m testing.browser``). Nothing is
downloaded: Playwright only drives ``/usr/bin/chromium``.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from testing.ports import free_port

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "survey" / "app.py"  # the rater app, for streamlit.testing's AppTest.from_file
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
START_TIMEOUT_S = 90  # streamlit imports pandas & co.; slow on 2 busy cores


def chromium_available() -> bool:
    return shutil.which("chromium") is not None


def _streamlit_command() -> list[str]:
    """The documented command, ``streamlit run survey/app.py``, from this interpreter's environment."""
    script = Path(sys.executable).parent / "streamlit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "streamlit"]


_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Streamlit's rich tracebacks are coloured
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_.]*(?:Error|Exception): .*$", re.MULTILINE)


@dataclass
class AppServer:
    """A running ``streamlit run survey/app.py``; ``url`` is its base URL."""

    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def link(self, **query: str) -> str:
        return f"{self.url}/?{urlencode(query)}" if query else f"{self.url}/"

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def errors(self) -> list[str]:
        """The exceptions the server logged (one line each, e.g. ``RuntimeError: ...``): a rater
        whose script run raised saw an error instead of the page."""
        try:
            text = _ANSI.sub("", self.log_path.read_text(errors="replace"))
        except OSError:
            return []
        return [m.group(0).strip() for m in _EXCEPTION_LINE.finditer(text)]

    def kill_hard(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing; what the database has is what survives."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill_hard()


def _wait_healthy(server: AppServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"streamlit did not answer on {server.url} within {timeout:.0f} s:\n"
                       f"{server.log_tail()}")


@contextmanager
def serve_app(db_url: str, *, env: dict[str, str] | None = None, port: int | None = None,
              log_dir: Path | None = None) -> Iterator[AppServer]:
    """Runs the rater app against ``db_url`` until the block ends (the server is always stopped).

    The server's log goes to ``log_dir`` (kept), or to a temporary folder deleted afterwards."""
    port = port or free_port()
    with ExitStack() as cleanup:
        if log_dir is None:
            log_dir = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="survey-app-"))
        log_path = Path(log_dir) / f"streamlit-{port}.log"
        child_env = {**os.environ, "SURVEY_DB_URL": db_url, "PYTHONUNBUFFERED": "1", **(env or {})}
        command = [*_streamlit_command(), "run", "survey/app.py", "--server.port", str(port),
                   "--server.headless", "true", "--server.address", "127.0.0.1"]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(command, cwd=REPO, env=child_env, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        server = AppServer(process, port, log_path)
        try:
            _wait_healthy(server, START_TIMEOUT_S)
            yield server
        finally:
            server.stop()


def launch_chromium(playwright):  # noqa: ANN001, ANN201 (playwright objects)
    """Debian's Chromium, headless; ``playwright install`` is never needed."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@dataclass
class Traffic:
    """Everything the page received: HTTP responses (with bodies of HTML/JSON/media) and websocket frames."""

    responses: list[tuple[str, int, str, bytes]] = field(default_factory=list)  # url, status, type, body
    frames: list[bytes] = field(default_factory=list)

    def media(self) -> list[tuple[str, bytes]]:
        """Files Streamlit serves for st.image & co. (``/media/<hash>.<ext>``; not the static fonts)."""
        return [(url, body) for url, _, _, body in self.responses if urlsplit(url).path.startswith("/media/")]


def record_traffic(page) -> Traffic:  # noqa: ANN001
    """Starts recording what ``page`` receives; returns the growing record."""
    traffic = Traffic()

    def on_response(response) -> None:  # noqa: ANN001
        kind = response.headers.get("content-type", "")
        body = b""
        is_media = urlsplit(response.url).path.startswith("/media/")
        if is_media or kind.startswith(("text/html", "application/json", "image/")):
            try:
                body = response.body()
            except Exception:  # a body the browser already dropped (redirects, aborted loads)
                body = b""
        traffic.responses.append((response.url, response.status, kind, body))

    def on_websocket(ws) -> None:  # noqa: ANN001
        ws.on("framereceived", lambda payload: traffic.frames.append(
            payload if isinstance(payload, bytes) else payload.encode("utf-8")))

    page.on("response", on_response)
    page.on("websocket", on_websocket)
    return traffic


# ---------------------------------------------------------------------------- rater-page actions
PROGRESS = '[data-testid="stProgress"]'
MAIN_IMAGES = '[data-testid="stMain"] [data-testid="stImage"] img'


def progress_text(page) -> str:  # noqa: ANN001
    return page.locator(PROGRESS).inner_text().strip()


def wait_for_progress(page, text: str, timeout_ms: float = 30_000) -> None:  # noqa: ANN001
    """Waits until the progress bar reads ``text`` ("3 / 5", or "Done")."""
    page.wait_for_function(
        """([selector, text]) => {
            const el = document.querySelector(selector);
            return el !== null && el.innerText.trim() === text;
        }""", arg=[PROGRESS, text], timeout=timeout_ms)


# The three images of the current run: Streamlit keeps the previous run's elements on screen, marked
# data-stale="true", until the new run replaces or drops them.
CURRENT_IMAGES_JS = """(selector) => Array.from(document.querySelectorAll(selector))
    .filter(i => {
        const box = i.closest('[data-stale]');
        return box === null || box.dataset.stale === 'false';
    })"""


def wait_for_pair(page, previous: list[str] | None = None,  # noqa: ANN001
                  timeout_ms: float = 30_000) -> list[str]:
    """Waits until three current images (photo, A, B) are decoded on screen and differ from
    ``previous``; returns their URLs."""
    handle = page.wait_for_function(
        """([selector, previous]) => {
            const imgs = (%s)(selector);
            if (imgs.length !== 3) return false;
            if (!imgs.every(i => i.complete && i.naturalWidth > 0)) return false;
            const srcs = imgs.map(i => i.currentSrc || i.src);
            if (previous && srcs.some(s => previous.includes(s))) return false;
            return srcs;
        }""" % CURRENT_IMAGES_JS, arg=[MAIN_IMAGES, previous or []], timeout=timeout_ms, polling="raf")
    return handle.json_value()


def only_button(page, name: str, timeout_ms: float = 30_000):  # noqa: ANN001, ANN201
    """The one button called ``name``, once the page has settled (while Streamlit swaps a pair in,
    the outgoing and incoming buttons can briefly both be in the DOM)."""
    from playwright.sync_api import expect

    button = page.get_by_role("button", name=name, exact=True)
    expect(button).to_have_count(1, timeout=timeout_ms)
    return button


# The vote buttons are keyed "<side>-<trial token>", which Streamlit exposes as a CSS class
# "st-key-<side>-<token>". Waiting for a token other than the last one clicked guarantees that a
# click lands on the *new* pair's button, never on the outgoing one.
_FRESH_VOTE_BUTTON_JS = """([name]) => {
    const boxes = Array.from(document.querySelectorAll('[data-stale="false"][class*="st-key-"]'))
        .filter(box => { const b = box.querySelector('button'); return b && b.innerText.trim() === name; });
    if (boxes.length !== 1) return false;
    const key = Array.from(boxes[0].classList).find(c => c.startsWith('st-key-'));
    const token = key.slice('st-key-'.length).split('-').slice(1).join('-');
    return token !== window.__lastVoteToken ? key : false;
}"""


THINK_MS = 600  # a person looks at a new pair before voting; the app ignores votes < 500 ms after the last


def choose(page, side: str, *, double: bool = False, timeout_ms: float = 30_000) -> None:  # noqa: ANN001
    """Clicks (or double-clicks) the vote button ``side`` of the pair now on screen, after looking
    at it for THINK_MS (survey.clicks.VoteSpacing ignores a vote on a new pair sooner than that)."""
    key = page.wait_for_function(_FRESH_VOTE_BUTTON_JS, arg=[side], timeout=timeout_ms).json_value()
    page.wait_for_timeout(THINK_MS)
    page.evaluate("key => { window.__lastVoteToken = "
                  "key.slice('st-key-'.length).split('-').slice(1).join('-'); }", key)
    button = page.locator(f".{key} button")
    if double:
        button.dblclick()
    else:
        button.click()


def agree(page) -> None:  # noqa: ANN001
    only_button(page, "I agree, start").click()


# ------------------------------------------------------------------------------------ screenshot
def screenshot_rater_page(db_url: str, study: str, out: Path, *, viewport: dict[str, int] = DESKTOP,
                          rater: str = "screenshot") -> Path:
    """Serves ``db_url`` and saves the rater page with the first pair of ``study`` to ``out`` (PNG)."""
    from playwright.sync_api import sync_playwright

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with serve_app(db_url) as server, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport=viewport)
            page.goto(server.link(study=study, rater=rater))
            agree(page)
            page.locator(PROGRESS).wait_for(timeout=60_000)  # the first pair's page, not the consent page
            wait_for_pair(page)
            page.wait_for_function("() => document.querySelector('[data-stale=true]') === null")
            page.mouse.move(0, 0)  # no hover highlight in the picture
            page.screenshot(path=str(out))
        finally:
            browser.close()
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m testing.browser --db sqlite:///data/survey.db --study demo --out x.png``"""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m testing.browser",
        description="Screenshot the rater page (first pair) of a study, e.g. for the README. The SQLite "
                    "database is copied first, so the real one gains no rater.")
    parser.add_argument("--db", required=True, metavar="URL", help="sqlite:///PATH of the survey database")
    parser.add_argument("--study", required=True, help="study name")
    parser.add_argument("--out", required=True, type=Path, help="PNG file to write")
    parser.add_argument("--phone", action="store_true", help="390 x 844 instead of 1280 x 800")
    args = parser.parse_args(argv)
    from sqlalchemy import make_url

    try:
        url = make_url(args.db)
        source = Path(url.database or "")
        if url.get_backend_name() != "sqlite" or not source.is_file():
            raise ValueError(f"--db must be sqlite:///PATH of an existing file, got {args.db!r}")
        if not chromium_available():
            raise ValueError("chromium not found; install it with `make system-deps`")
        with tempfile.TemporaryDirectory(prefix="survey-shot-") as tmp:
            copy = Path(tmp) / "survey.db"
            import sqlite3

            with sqlite3.connect(source) as src, sqlite3.connect(copy) as dst:
                src.backup(dst)  # a consistent copy even while the app is writing
            screenshot_rater_page(f"sqlite:///{copy}", args.study, args.out,
                                  viewport=PHONE if args.phone else DESKTOP)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
