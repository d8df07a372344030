"""Import before using Hypothesis: it keeps caches in ./.hypothesis, and tests write only to temp folders.

(The example database is off too: every property test sets `database=None`.)
"""
from __future__ import annotations

import tempfile

from hypothesis.configuration import set_hypothesis_home_dir

set_hypothesis_home_dir(tempfile.mkdtemp(prefix="vibcam-hypothesis-"))
