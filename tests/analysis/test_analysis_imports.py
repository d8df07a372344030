"""`analysis` must never import torch (directly or through models/cams): analysts install it without PyTorch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_analysis_never_imports_torch() -> None:
    code = (
        "import sys\n"
        "import analysis.report, analysis.power, analysis.simulate, analysis.notebook, analysis.summary\n"
        "import analysis.load, analysis.mixed, analysis.multi, analysis.metrics, analysis.plots\n"
        "import analysis.distinction, analysis.distinction_power, analysis.tasks, testing.distinction_votes\n"
        "from analysis.load import load_votes\n"
        "from analysis.simulate import simulate_votes\n"
        "load_votes(simulate_votes(3, 3, 0.7, 0.5, 1.0))\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'torchvision', 'models', 'cams'})\n"
        "assert not bad, bad\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
