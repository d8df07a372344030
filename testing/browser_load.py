"""Many raters at once in one Chromium (a browser context each) against real ``streamlit run`` servers.

Shared by the browser load test (tests/survey/test_browser_load.py) and
``bench/survey_browser_load.py``. A rater behaves like a person on a slow page:

- **impatient**: clicks "I agree, start" and then A or B (a double click), and clicks the same
  button again every 300 ms for as long as the page has not moved on;
- **patient**: clicks once and clicks again only when nothing happened for 5 s.

How fast a rater decides and when raters arrive are the launch's shape, given by :class:`Launch`:
by default every rater opens the link at the same instant and looks at each pair for
``THINK_MS`` (600 ms, about the fastest vote the analysis keeps), the harshest launch there is. A
launch as the issue describes it ("many open it in the same minute") spreads the arrivals over a
window and draws each look from the attentive raters' response times of the simulated studies
(log-normal, median 3.5 s).

A vote counts as *acknowledged* when the page moved on (the progress bar shows the next position,
or the thank-you page): exactly these votes must be in the database afterwards, once each.
While the raters click, the server processes are sampled (threads, RSS, CPU time) with psutil.
"""
from __future__ import annotations

import asyncio
import math
import os
import random
import signal
import statistics
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import psutil

from testing import browser as ub

IMPATIENT_EVERY_S = 0.3
PATIENT_EVERY_S = 5.0
MODES = ("impatient", "patient")

# Everything the loop needs to know about the page, in one evaluation: the progress text of the
# current run (or "Done"/"" ), whether the thank-you page is up, and the current vote buttons' keys.
_STATE_JS = """() => {
    const fresh = el => { const box = el.closest('[data-stale]'); return box === null || box.dataset.stale === 'false'; };
    const bars = Array.from(document.querySelectorAll('[data-testid="stProgress"]')).filter(fresh);
    const buttons = {};
    for (const box of document.querySelectorAll('[class*="st-key-"]')) {
        if (!fresh(box)) continue;
        const b = box.querySelector('button');
        if (!b) continue;
        const key = Array.from(box.classList).find(c => c.startsWith('st-key-'));
        buttons[b.textContent.trim()] = key;
    }
    const thanks = Array.from(document.querySelectorAll('h1')).some(h => h.textContent.includes('Thank you'));
    return {progress: bars.length ? bars[0].textContent.trim() : '', thanks: thanks, buttons: buttons};
}"""


def thread_bound(n_sessions: int) -> int:
    """The most threads a rater-app server may run with ``n_sessions`` browser sessions clicking
    (docs/survey.md, "One script thread per session"): Streamlit's own ~20, its anyio worker pool
    (at most 40), and per session at most two script threads (``runner.fastReruns = false``: the
    run, and briefly a finished runner still exiting when the next click arrives)."""
    return 60 + 2 * n_sessions


@dataclass(frozen=True)
class Launch:
    """When raters arrive and how long each looks at a pair before voting.

    ``arrive_within_s``: rater k of n opens the link ``k / n * arrive_within_s`` after the start
    (0: all at once). ``think_median_ms`` and ``think_sigma``: each look is log-normal with this
    median and shape (sigma 0: always the median)."""

    arrive_within_s: float = 0.0
    think_median_ms: float = ub.THINK_MS
    think_sigma: float = 0.0

    def __post_init__(self) -> None:
        if self.arrive_within_s < 0 or self.think_median_ms < 0 or self.think_sigma < 0:
            raise ValueError(f"{self}: arrival window, think time and sigma must be >= 0")

    def arrival_s(self, k: int, n: int) -> float:
        return self.arrive_within_s * k / max(1, n)

    def think_s(self, rng: random.Random) -> float:
        if self.think_sigma == 0:
            return self.think_median_ms / 1000
        return rng.lognormvariate(math.log(self.think_median_ms), self.think_sigma) / 1000


AT_ONCE = Launch()
# "Many open it in the same minute", and people look at a pair as the simulated attentive raters do
# (testing/simulated_votes.py: log-normal, median 3.5 s, sigma 0.5).
SAME_MINUTE = Launch(arrive_within_s=60.0, think_median_ms=3500.0, think_sigma=0.5)
LAUNCHES = {"at-once": AT_ONCE, "same-minute": SAME_MINUTE}


@dataclass
class RaterRun:
    """What one simulated rater saw: acknowledged votes (position -> side) and click latencies."""

    rater: str
    finished: bool = False
    acknowledged: dict[int, str] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    clicks: int = 0
    reclicks: int = 0  # clicks on a button already clicked, because the page had not moved on yet
    error: str = ""
    calls: list[tuple[str, float, float]] = field(default_factory=list)  # (key aimed at, start, end), epoch s
    page_log: dict = field(default_factory=dict)  # the page's _CLICK_LOG_JS record

    def stray_clicks(self) -> list[StrayClick]:
        """Clicks the page took on a button this rater never aimed at: a click meant for one pair
        that landed on the next, with how long that pair had been drawn and the harness call that
        sent the click (the calls' keys are the buttons aimed at)."""
        aimed = {key for key, _, _ in self.calls}
        drawn = self.page_log.get("drawn", {})
        strays = []
        for click in self.page_log.get("clicks", []):
            if click["key"] in aimed:
                continue
            token = next((t for t in drawn if click["key"].endswith(f"-{t}")), None)
            age_ms = click["at"] - drawn[token] if token is not None else float("nan")
            at_s = click["at"] / 1000
            call = next(((key, start, end) for key, start, end in self.calls if start <= at_s <= end + 0.05),
                        None)
            strays.append(StrayClick(
                key=click["key"], drawn_ms=age_ms, aimed_at=call[0] if call else "",
                call_ms=(call[2] - call[1]) * 1000 if call else float("nan"),
                sent_after_ms=(at_s - call[1]) * 1000 if call else float("nan"),
                pressed_on=click.get("pressed", ""),
                held_ms=click["at"] - click["pressed_at"] if click.get("pressed_at") else float("nan")))
        return strays


@dataclass(frozen=True)
class StrayClick:
    """A click that hit a button its rater did not aim at (see :meth:`RaterRun.stray_clicks`).

    ``drawn_ms``: how long the hit button's pair had been drawn when the click came (NaN: not an
    armed pair); ``aimed_at``: the button the harness call that sent it aimed at ("" if none);
    ``call_ms``: how long that call took; ``sent_after_ms``: when, in that call, the click came;
    ``pressed_on``: the button under the mouse press that began the click, ``held_ms`` before release
    (a press on one pair released on the next, as a starved page delays the release, is a stray
    whose press the arming could not see)."""

    key: str
    drawn_ms: float
    aimed_at: str
    call_ms: float
    sent_after_ms: float
    pressed_on: str = ""
    held_ms: float = float("nan")

    def __str__(self) -> str:
        return (f"{self.key} hit {self.drawn_ms:.0f} ms after its pair was drawn, by a click aimed at "
                f"{self.aimed_at or '?'} sent {self.sent_after_ms:.0f} ms into a {self.call_ms:.0f} ms call, "
                f"pressed on {self.pressed_on or 'no button'} {self.held_ms:.0f} ms before")


@dataclass
class ServerSample:
    """The most a server process used while sampled: threads, RSS, and its CPU time over the window."""

    max_threads: int = 0
    max_rss_mb: float = 0.0
    cpu_s: float = 0.0


class ServerMonitor:
    """Samples server processes every ``every_s`` in a background thread (threads, RSS, CPU time),
    and the CPU time of everything else this process runs: the clients (Playwright's driver and
    the Chromium it started, and this Python process), so a run shows where the machine's time went."""

    def __init__(self, pids: Sequence[int], every_s: float = 0.1) -> None:
        self.processes = [psutil.Process(pid) for pid in pids]
        self.samples = [ServerSample() for _ in pids]
        self._cpu0 = [self._cpu(p) for p in self.processes]
        self._me = psutil.Process()
        self._client_cpu: dict[int, float] = {}  # pid -> CPU time when last seen (renderers come and go)
        self._samples_taken = 0
        self._client_cpu0 = self._client_tally()
        self.client_cpu_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)

    @staticmethod
    def _cpu(process: psutil.Process) -> float:
        times = process.cpu_times()
        return times.user + times.system

    def _client_tally(self) -> float:
        servers = {p.pid for p in self.processes}
        for process in [self._me, *self._me.children(recursive=True)]:  # the servers start no children
            if process.pid in servers:
                continue
            try:
                self._client_cpu[process.pid] = self._cpu(process)
            except psutil.Error:  # gone between listing and reading
                pass
        return sum(self._client_cpu.values())

    def _sample(self) -> None:
        self._samples_taken += 1
        if self._samples_taken % 5 == 0:  # listing every process on the machine: not every 100 ms
            self._client_tally()
        self._sample_servers()

    def _sample_servers(self) -> None:
        for process, sample in zip(self.processes, self.samples):
            try:
                with process.oneshot():
                    sample.max_threads = max(sample.max_threads, process.num_threads())
                    sample.max_rss_mb = max(sample.max_rss_mb, process.memory_info().rss / 2**20)
            except psutil.Error:
                pass

    def _run(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self._sample()

    def __enter__(self) -> ServerMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample_servers()
        self.client_cpu_s = self._client_tally() - self._client_cpu0
        for process, sample, cpu0 in zip(self.processes, self.samples, self._cpu0):
            try:
                sample.cpu_s = self._cpu(process) - cpu0
            except psutil.Error:
                pass


async def _state(page) -> dict:  # noqa: ANN001
    try:
        return await page.evaluate(_STATE_JS)
    except Exception:  # the page is navigating or closed; treat as "nothing yet"
        return {"progress": "", "thanks": False, "buttons": {}}


# Waiting happens *inside the page* (one CDP call per wait, the check runs every 50 ms in the page):
# polling from Python would cost Chromium and Playwright more CPU than the app itself with 32 pages.
_READY_JS = """([lastKey]) => {
    const s = (%s)();
    if (s.thanks) return s;
    const a = s.buttons['A'], b = s.buttons['B'];
    return (s.progress && a && b && a !== lastKey && b !== lastKey) ? s : false;
}""" % _STATE_JS
_MOVED_JS = """([position]) => {
    const s = (%s)();
    const shown = parseInt((s.progress.split('/')[0] || '').trim(), 10);
    return s.thanks || shown > position;
}""" % _STATE_JS
_STARTED_JS = """() => { const s = (%s)(); return s.thanks || s.progress !== ''; }""" % _STATE_JS

# Installed in every page before the app loads: the page's own record of each trusted click on a
# button (its Streamlit key, when, epoch ms) and of when each pair's buttons were drawn (the start
# of the arming animation `vibcam-arm-<token>`, survey.ui_logic.arming_css). It is what tells a
# stray vote apart: a click that hit a pair the rater never aimed at, and how long that pair had
# been on screen by then.
_CLICK_LOG_JS = """(() => {
    const drawn = {}, clicks = [];
    let down = {key: '', at: 0};
    window.__vibcamLog = {drawn: drawn, clicks: clicks};
    const now = e => performance.timeOrigin + e.timeStamp;
    const keyOf = e => {
        const button = e.isTrusted && e.target.closest ? e.target.closest('button') : null;
        const box = button ? button.closest('[class*="st-key-"]') : null;
        return box ? Array.from(box.classList).find(c => c.startsWith('st-key-')) : '';
    };
    document.addEventListener('animationstart', e => {
        const name = e.animationName;
        if (name.startsWith('vibcam-arm-') && !(name.slice(11) in drawn)) drawn[name.slice(11)] = now(e);
    }, true);
    document.addEventListener('pointerdown', e => { down = {key: keyOf(e), at: now(e)}; }, true);
    document.addEventListener('click', e => {
        const key = keyOf(e);
        if (!key) return;
        clicks.push({key: key, at: now(e), pressed: down.key, pressed_at: down.at});
    }, true);
})()"""
_CLICK_LOG_READ_JS = "() => window.__vibcamLog || {drawn: {}, clicks: []}"


async def _wait(page, script: str, arg, timeout_s: float):  # noqa: ANN001, ANN202
    """The truthy value of ``script`` once it has one, or None after ``timeout_s``."""
    try:
        handle = await page.wait_for_function(script, arg=arg, polling=50, timeout=max(1, timeout_s * 1000))
        return await handle.json_value()
    except Exception:  # Playwright's TimeoutError, or the page went away
        return None


async def _click(page, key: str, *, double: bool, run: RaterRun) -> None:  # noqa: ANN001
    """Clicks the button with Streamlit key class ``key`` as a person would: at its place on screen,
    whatever is there now (a button being replaced takes no clicks). Never waits for it. The call is
    noted in ``run.calls``."""
    button = page.locator(f".{key} button")
    start = time.time()
    try:
        if double:
            await button.dblclick(timeout=1000, force=True)
        else:
            await button.click(timeout=1000, force=True)
    except Exception:  # gone already: the page moved on
        pass
    run.calls.append((key, start, time.time()))


def _position(progress: str) -> int | None:
    head = progress.split("/")[0].strip()
    return int(head) if head.isdigit() else None


async def run_rater(context, link: str, rater: str, n_trials: int, *, mode: str,  # noqa: ANN001
                    deadline: float, sides: str = "AB", stop: threading.Event | None = None,
                    launch: Launch = AT_ONCE, arrive_after_s: float = 0.0, seed: int = 0) -> RaterRun:
    """One rater from the link to the thank-you page (or until ``deadline``, time.monotonic(), or
    until ``stop`` is set), opening the link ``arrive_after_s`` after the call."""
    every = IMPATIENT_EVERY_S if mode == "impatient" else PATIENT_EVERY_S
    run = RaterRun(rater)
    rng = random.Random(seed)
    await asyncio.sleep(arrive_after_s)

    def time_left() -> float:
        if stop is not None and stop.is_set():
            return 0.0
        return max(0.0, deadline - time.monotonic())

    page = await context.new_page()
    try:
        await page.goto(link, timeout=max(1.0, time_left()) * 1000)
        # consent: click "I agree, start" (again) until the first pair's progress bar shows up
        while time_left():
            state = await _state(page)
            if state["progress"] or state["thanks"]:
                break
            key = state["buttons"].get("I agree, start")
            if key is None:
                await _wait(page, "() => document.querySelector('[class*=st-key-consent] button') !== null",
                            None, min(every, time_left()))
                continue
            await _click(page, key, double=False, run=run)
            run.reclicks += run.clicks > 0
            run.clicks += 1
            await _wait(page, _STARTED_JS, None, min(every, time_left()))
        last_key = None
        while time_left():
            state = await _wait(page, _READY_JS, [last_key], min(5.0, time_left()))
            if state is None:
                continue
            if state["thanks"]:
                run.finished = True
                break
            position = _position(state["progress"])
            if position is None:
                continue
            side = sides[position % len(sides)]
            key = state["buttons"][side]
            last_key = key
            await asyncio.sleep(launch.think_s(rng))  # a person looks at the pair first
            start = time.monotonic()
            await _click(page, key, double=(mode == "impatient"), run=run)
            run.clicks += 2 if mode == "impatient" else 1  # a double click is two clicks
            while time_left():  # until the page moves on; click again whenever it is slow
                if await _wait(page, _MOVED_JS, [position], min(every, time_left())):
                    run.latencies_ms.append((time.monotonic() - start) * 1000)
                    run.acknowledged[position] = side
                    break
                await _click(page, key, double=False, run=run)
                run.clicks += 1
                run.reclicks += 1
        if not run.finished:
            run.error = f"stuck at {await _state(page)}"
            shots = os.environ.get("SURVEY_LOAD_SHOTS")  # debugging aid: where did a rater get stuck?
            if shots:
                await page.screenshot(path=f"{shots}/{rater}.png")
    except Exception as exc:  # a rater that crashed is a rater that did not finish
        run.error = f"{type(exc).__name__}: {exc}"
    finally:
        try:
            run.page_log = await page.evaluate(_CLICK_LOG_READ_JS)
        except Exception:  # the page crashed: nothing to read
            pass
        await page.close()
    run.finished = run.finished and len(run.acknowledged) == n_trials
    return run


@dataclass
class LoadRun:
    """One load run: every rater's outcome, the servers' samples and the wall time."""

    raters: list[RaterRun]
    servers: list[ServerSample]
    wall_s: float
    client_cpu_s: float = 0.0  # Chromium, Playwright's driver and the Python process driving them

    @property
    def completion(self) -> float:
        return sum(r.finished for r in self.raters) / max(1, len(self.raters))

    @property
    def latencies_ms(self) -> list[float]:
        return [ms for r in self.raters for ms in r.latencies_ms]

    @property
    def votes(self) -> int:
        return sum(len(r.acknowledged) for r in self.raters)

    def percentile(self, q: float) -> float:
        values = sorted(self.latencies_ms)
        if not values:
            return float("nan")
        if len(values) == 1:
            return values[0]
        return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def _load(servers: Sequence[ub.AppServer], study: str, n_trials: int, n_raters: int, mode: str,
                timeout_s: float, prefix: str, stop: threading.Event | None, launch: Launch) -> LoadRun:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=ub.CHROMIUM, args=ub.CHROMIUM_ARGS)
        try:
            contexts = [await browser.new_context(viewport=ub.DESKTOP) for _ in range(n_raters)]
            for context in contexts:
                await context.add_init_script(script=_CLICK_LOG_JS)
            with ServerMonitor([s.process.pid for s in servers]) as monitor:
                start = time.monotonic()
                deadline = start + timeout_s
                raters = await asyncio.gather(*(
                    run_rater(context, servers[k % len(servers)].link(study=study, rater=f"{prefix}{k}"),
                              f"{prefix}{k}", n_trials, mode=mode, deadline=deadline,
                              sides="AB" if k % 2 else "BA", stop=stop, launch=launch,
                              arrive_after_s=launch.arrival_s(k, n_raters), seed=k)
                    for k, context in enumerate(contexts)))
                wall = time.monotonic() - start
        finally:
            await browser.close()
    return LoadRun(list(raters), monitor.samples, wall, monitor.client_cpu_s)


def run_load(servers: Sequence[ub.AppServer], study: str, n_trials: int, n_raters: int, *,
             mode: str = "impatient", timeout_s: float = 90.0, prefix: str = "r",
             stop: threading.Event | None = None, launch: Launch = AT_ONCE) -> LoadRun:
    """``n_raters`` raters (ids ``<prefix>0``...), split round-robin over ``servers``, arriving as
    ``launch`` says (default: all at once), until all finish, ``timeout_s`` passes or ``stop`` is set."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: use one of {', '.join(MODES)}")
    return asyncio.run(_load(servers, study, n_trials, n_raters, mode, timeout_s, prefix, stop, launch))


def exported_votes(url: str, study: str) -> dict[str, list[tuple[int, str]]]:
    """Rater -> [(position, A/B)] as the exporter writes them (``survey.export.votes_frame``)."""
    from survey.export import votes_frame

    frame = votes_frame(url, study)
    out: dict[str, list[tuple[int, str]]] = {}
    for row in frame.itertuples():
        out.setdefault(row.rater, []).append(
            (int(row.position), {"left": "A", "right": "B"}.get(row.chosen_side, row.chosen_side)))
    return {rater: sorted(votes) for rater, votes in out.items()}


def export_mismatch(run: RaterRun, exported: dict[str, list[tuple[int, str]]]) -> str:
    """"" when ``run``'s acknowledged votes are exactly its votes in ``exported`` (each once);
    otherwise what differs, as (position, side) pairs, and the rater's stray clicks (the usual cause)."""
    acknowledged, stored = Counter(run.acknowledged.items()), Counter(exported.get(run.rater, []))
    if acknowledged == stored:
        return ""
    strays = "".join(f"\n  stray click: {stray}" for stray in run.stray_clicks())
    return (f"{run.rater} (position, side) acknowledged only {sorted(acknowledged - stored)}, "
            f"exported only {sorted((stored - acknowledged).elements())}{strays}")


def sigterm_seconds(server: ub.AppServer, limit_s: float = 30.0) -> float:
    """Sends SIGTERM (what Ctrl+C or ``systemctl stop`` sends) and returns how long the exit took;
    ``inf`` when it had not exited after ``limit_s`` (it is then killed)."""
    start = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=limit_s)
    except Exception:
        server.kill_hard()
        return float("inf")
    return time.monotonic() - start
