"""Click to next pair: how long a rater waits after clicking "A" until the next pair is on screen.

Runs the real app (``streamlit run survey/app.py``) on a SQLite file and drives Debian's Chromium
(Playwright). Timing is taken *inside the page*: from the click event to the first animation frame
where the progress bar shows the next position and all three new images are decoded. Photo-like
224 px images are used so the display images weigh what real CAM overlays weigh.

Baseline, measured in the same run: a second server with image prefetching switched off
(``SURVEY_IMAGE_PREFETCH=0``), so every pair is decoded, resized and encoded when it is needed.
The two raters click alternately (A B, B A, ...) so that both see the same load on a shared machine.
Target (issue 4): median <= 300 ms.

    .venv/bin/python bench/survey_click.py [--clicks 20]
    .venv/bin/python bench/survey_click.py --smoke    # 2 clicks each: does it still run?
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path


from testing.benchmark import MISSING_SYSTEM_DEPENDENCY, add_smoke_flag, print_header

TARGET_MS = 300.0
SMOKE = ["--clicks", "2"]

# Installed in the page before it loads. Setting window.__expect = {text, previous} arms it; the next
# click starts a requestAnimationFrame loop *inside the page* that notes the first frame showing the
# next position (server round trip) and the first frame with three new, decoded current images (pair
# on screen). Timing never depends on how quickly Playwright polls.
_WATCHER_JS = """
window.__currentImages = %s;
document.addEventListener('click', () => {
    const expect = window.__expect;
    if (!expect) return;
    window.__expect = null;
    const start = performance.now();
    let progressAt = null;
    const frame = () => {
        const bar = document.querySelector(expect.progressSel);
        if (bar !== null && bar.innerText.trim() === expect.text) {
            if (progressAt === null) progressAt = performance.now() - start;
            const imgs = window.__currentImages(expect.imageSel);
            const srcs = imgs.map(i => i.currentSrc || i.src);
            if (imgs.length === 3 && imgs.every(i => i.complete && i.naturalWidth > 0)
                    && !srcs.some(s => expect.previous.includes(s))) {
                window.__result = {ms: performance.now() - start, progress_ms: progressAt, srcs: srcs};
                return;
            }
        }
        requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
}, true);
"""


class RaterPage:
    """One rater answering one study on one server, timed from inside the page."""

    def __init__(self, browser, server, study) -> None:  # noqa: ANN001
        from testing import browser as ub

        self.ub, self.study, self.delays, self.round_trips = ub, study, [], []
        self.page = browser.new_page(viewport=ub.DESKTOP)
        self.page.add_init_script(_WATCHER_JS % ub.CURRENT_IMAGES_JS)
        self.page.goto(server.link(study=study.name, rater="bench"))
        ub.agree(self.page)
        ub.wait_for_progress(self.page, f"1 / {study.n_trials}", timeout_ms=60_000)
        self.previous = ub.wait_for_pair(self.page, timeout_ms=60_000)

    def click(self, position: int) -> None:
        """Clicks "A" on the pair at ``position - 1`` and records the delay until ``position`` is shown."""
        self.page.evaluate("e => { window.__result = null; window.__expect = e; }", {
            "progressSel": self.ub.PROGRESS, "imageSel": self.ub.MAIN_IMAGES,
            "text": f"{position} / {self.study.n_trials}", "previous": self.previous})
        self.ub.choose(self.page, "A")
        result = self.page.wait_for_function("() => window.__result", polling=50, timeout=30_000).json_value()
        self.delays.append(result["ms"])
        self.round_trips.append(result["progress_ms"])
        self.previous = result["srcs"]


def measure(clicks: int, workdir: Path) -> dict[str, RaterPage]:
    """The baseline's and the app's raters after ``clicks`` clicks each, alternately (same load for both)."""
    from playwright.sync_api import sync_playwright

    from testing import browser as ub
    from testing.packages import make_study

    setups = {"baseline: no prefetch": "0", "app: cache + prefetch": "1"}
    with ExitStack() as stack:
        playwright = stack.enter_context(sync_playwright())
        raters = {}
        for k, (label, prefetch) in enumerate(setups.items()):
            browser = ub.launch_chromium(playwright)  # one browser each: a page is never a background tab
            stack.callback(browser.close)
            folder = workdir / f"run{k}"
            url = f"sqlite:///{folder / 'survey.db'}"
            study = make_study(folder, url, name="clickbench", n_items=clicks + 1, n_checks=0, image_size=224,
                               photographic=True, seed=11)
            env = {"SURVEY_IMAGE_PREFETCH": prefetch}
            server = stack.enter_context(ub.serve_app(url, env=env, log_dir=folder))
            raters[label] = RaterPage(browser, server, study)
        time.sleep(5)  # let the prefetch thread finish: we time clicks, not start-up
        for position in range(2, clicks + 2):
            order = list(raters.values()) if position % 2 else list(raters.values())[::-1]
            for rater in order:
                rater.click(position)
        return raters


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=20, help="pairs answered per run (default 20)")
    add_smoke_flag(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args = parser.parse_args([*SMOKE, *(argv if argv is not None else sys.argv[1:])])
    if args.clicks < 2:
        parser.error("--clicks must be >= 2 (the percentiles need two delays)")
    from testing.browser import chromium_available

    print_header("click to next pair (bench/survey_click.py)")
    if not chromium_available():
        print("error: chromium not found; install it with `make system-deps` (apt-get install chromium)",
              file=sys.stderr)
        return MISSING_SYSTEM_DEPENDENCY
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (the machine is shared)")
    with tempfile.TemporaryDirectory(prefix="survey-click-") as tmp:
        results = measure(args.clicks, Path(tmp))
    for label, rater in results.items():
        q = statistics.quantiles(rater.delays, n=10)
        print(f"{label:24s} click to next pair: median {statistics.median(rater.delays):5.0f} ms  "
              f"p10 {q[0]:5.0f}  p90 {q[-1]:5.0f}  (n={len(rater.delays)}); "
              f"to progress text (server round trip): median {statistics.median(rater.round_trips):4.0f} ms")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    base, app = (statistics.median(r.delays) for r in results.values())
    print(f"speed-up over baseline: {base / app:.2f}x; "
          f"median / target ({TARGET_MS:.0f} ms): {app / TARGET_MS:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
