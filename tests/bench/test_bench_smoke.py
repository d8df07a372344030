"""Every bench/*.py runs, the way users run it, with `--smoke` (tiny sizes, a few seconds).

Benchmarks are found by globbing, so a new one is covered the day it lands, and must keep the contract
in docs/benchmarks.md: accept `--smoke`, exit 0, print the machine header (CPU capability and native
bf16), or exit 77 when a system tool is missing (a skip locally, a failure in CI: tests/support.py).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from testing.benchmark import MISSING_SYSTEM_DEPENDENCY
from tests.support import require

ROOT = Path(__file__).resolve().parents[2]
BENCHES = sorted(path for path in (ROOT / "bench").glob("*.py") if not path.name.startswith("_"))
TIMEOUT_S = 300  # generous: the 2 shared cores can be 10x oversubscribed; smoke runs take seconds idle


def test_the_known_benchmarks_are_found() -> None:
    names = {path.name for path in BENCHES}
    assert {"analysis_scale.py", "cam_throughput.py", "data_pipeline.py", "gpu_check.py",
            "survey_browser_load.py", "survey_click.py", "survey_load.py", "synthetic_scenes.py",
            "train_step.py"} <= names


#: markers for the known benchmarks that need a system service (new ones get none until added here)
MARKS = {"survey_click": [pytest.mark.browser], "survey_load": [pytest.mark.postgres],
         "survey_browser_load": [pytest.mark.browser]}


@pytest.mark.slow
@pytest.mark.parametrize(
    "bench", [pytest.param(path, id=path.stem, marks=MARKS.get(path.stem, [])) for path in BENCHES])
def test_benchmark_runs_with_smoke_flag(bench: Path, tmp_path: Path) -> None:
    # TMPDIR short on purpose: Chromium puts a Unix socket under it, and socket paths are limited to 107
    # bytes (pytest's numbered tmp_path can be longer: "Socket path too long", a crash at launch)
    with tempfile.TemporaryDirectory(prefix="vb-", dir="/tmp") as short_tmp:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": short_tmp, "PYTHONUNBUFFERED": "1"}
        result = subprocess.run([sys.executable, str(bench), "--smoke"], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=TIMEOUT_S)
    output = result.stdout + result.stderr
    if result.returncode == MISSING_SYSTEM_DEPENDENCY:
        require(False, f"{bench.name} --smoke: {output.strip().splitlines()[-1]}")
    assert result.returncode == 0, f"{bench.name} --smoke exited {result.returncode}:\n{output[-4000:]}"
    assert "CPU capability" in result.stdout and "native bf16: " in result.stdout, (
        f"{bench.name} must print testing.benchmark.machine_header():\n{result.stdout[-2000:]}")
    assert "Traceback" not in output, output[-4000:]


@pytest.mark.parametrize("script", sorted((ROOT / "bench").glob("*.sh")), ids=lambda path: path.name)
def test_shell_benchmarks_parse(script: Path) -> None:
    """The device check (bench/gpu_check.sh) needs a GPU to run; here at least bash must accept it, and
    every Python step it calls must exist (the Python parts have their own --smoke run above)."""
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for called in {word for word in script.read_text().split() if word.startswith("bench/") and word.endswith(".py")}:
        assert (ROOT / called).is_file(), f"{script.name} calls {called}, which does not exist"
