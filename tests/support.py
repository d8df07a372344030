"""Shared test helpers. Tests that need a system tool call `require()`: locally they skip with the
reason, in CI (CI=true) they fail, so nothing is silently skipped in CI."""
from __future__ import annotations

import os

import pytest


def require(available: bool, reason: str) -> None:
    """Skip (locally) or fail (in CI) when a system dependency such as chromium is missing."""
    if available:
        return
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} -- CI=true, so this test may not be skipped; run `make system-deps`")
    pytest.skip(f"{reason}; run `make system-deps` (in CI this is a failure)")  # noqa: CI-aware skip
