"""One write per click, however often the click arrives: coalescing of identical requests.

Streamlit's fast reruns run a button's callback in a *new* script thread for every click, while the
previous run may still be writing. An impatient rater therefore sends the same request ("start me",
"vote B on trial t") several times within a second. :class:`SingleFlight` makes those copies cheap
and harmless:

- the first copy runs the write; copies arriving while it runs wait for *its* outcome (a bounded
  wait, polled so that Streamlit can stop the waiting thread when an even newer click supersedes it)
  and never write;
- a request that succeeded is remembered (a bounded LRU), so a late copy returns at once without
  touching the database;
- a request that failed is forgotten, so the next copy tries again.

The database stays the authority (vote tokens are idempotent there, across replicas too); this only
keeps one process from paying for the same click twice and from parking threads on the write lock.
Plain threading, no Streamlit: unit-tested in tests/survey/test_clicks.py.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

POLL_S = 0.05


class StillRunning(TimeoutError):
    """The same request is still being served by an earlier click; this copy gave up waiting."""


class _Flight:
    __slots__ = ("done", "ok", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False
        self.result: Any = None


class SingleFlight:
    """Runs each ``key``'s action at most once at a time, and not again once it succeeded."""

    def __init__(self, remember: int = 20_000) -> None:
        self._lock = threading.Lock()  # held only for dict updates, never during an action
        self._running: dict[Hashable, _Flight] = {}
        self._succeeded: OrderedDict[Hashable, Any] = OrderedDict()
        self._remember = remember
        self.executions = 0  # how many actions actually ran (tests, benchmarks)

    def run(self, key: Hashable, action: Callable[[], Any], *, wait_s: float,
            poll: Callable[[], None] = lambda: None) -> tuple[Any, bool]:
        """``(result, ran_here)``: the action's result, from this call or from the copy that ran it.

        Waits at most ``wait_s`` for a copy in flight (calling ``poll`` every 50 ms; it may raise to
        abandon the wait), then raises :class:`StillRunning`. An exception from the action reaches
        only the caller that ran it.
        """
        deadline = time.monotonic() + wait_s
        while True:
            with self._lock:
                if key in self._succeeded:
                    self._succeeded.move_to_end(key)
                    return self._succeeded[key], False
                flight = self._running.get(key)
                if flight is None:
                    flight = self._running[key] = _Flight()
                    self.executions += 1
                    mine = True
                else:
                    mine = False
            if mine:
                return self._execute(key, flight, action), True
            while not flight.done.wait(min(POLL_S, max(0.0, deadline - time.monotonic()))):
                poll()
                if time.monotonic() >= deadline:
                    raise StillRunning(f"{key!r} still in flight after {wait_s:.1f} s")
            if flight.ok:
                return flight.result, False
            # the copy in flight failed: loop and try ourselves (if time is left)
            if time.monotonic() >= deadline:
                raise StillRunning(f"{key!r} failed in another request; no time left to retry")

    def _execute(self, key: Hashable, flight: _Flight, action: Callable[[], Any]) -> Any:
        try:
            result = action()
            flight.ok, flight.result = True, result
            with self._lock:
                self._succeeded[key] = result
                while len(self._succeeded) > self._remember:
                    self._succeeded.popitem(last=False)
            return result
        finally:
            with self._lock:
                self._running.pop(key, None)
            flight.done.set()


class VoteSpacing:
    """Ignores a vote on a *new* pair that arrives within ``min_gap_s`` of the rater's previous click
    on another pair (the rater page uses ``$SURVEY_MIN_VOTE_GAP_MS``, default 500).

    A click repeated at the same spot lands on the *next* pair's button when that pair appeared in
    between: the second click of a double click, or an impatient click again while the page was
    changing. Nobody judges a new pair that fast (the analysis drops answers under 500 ms,
    ``MIN_RESPONSE_MS``), so such a click is taken as a repeat of the previous one and costs no write.
    The pair stays on screen and the rater's next considered click counts. Measured from the previous
    click's *arrival*, not from its commit, so a slow server or browser cannot stretch the window.
    """

    def __init__(self, remember: int = 20_000) -> None:
        self._lock = threading.Lock()
        self._last: OrderedDict[Hashable, tuple[str, float]] = OrderedDict()
        self._remember = remember

    def too_soon(self, rater: Hashable, token: str, min_gap_s: float) -> bool:
        """True when ``rater`` clicked another pair less than ``min_gap_s`` ago."""
        with self._lock:
            last = self._last.get(rater)
        return last is not None and last[0] != token and time.monotonic() - last[1] < min_gap_s

    def clicked(self, rater: Hashable, token: str) -> None:
        """Notes an accepted click of ``rater`` on the pair ``token`` (now)."""
        with self._lock:
            self._last[rater] = (token, time.monotonic())
            self._last.move_to_end(rater)
            while len(self._last) > self._remember:
                self._last.popitem(last=False)
