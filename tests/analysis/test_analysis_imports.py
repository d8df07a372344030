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
        "from analysis.load import load_votes\n"
        "from testing.simulated_votes import simulate_votes\n"
        "load_votes(simulate_votes(3, 3, 0.7, 0.5, 1.0))\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'torchvision', 'models', 'cams'})\n"
        "assert not bad, bad\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr


def test_reading_a_votes_csv_needs_only_the_votes_format(tmp_path: Path) -> None:
    """analysis -> survey for the votes format only: a CSV is read without the database layer."""
    code = (
        "import sys\n"
        "from analysis.load import load_votes\n"
        "from survey.votes_format import write_votes_csv\n"
        "from testing.simulated_votes import simulate_votes\n"
        f"load_votes(write_votes_csv(simulate_votes(3, 3, 0.7, 0.5, 1.0), {str(tmp_path / 'v.csv')!r}))\n"
        "survey = sorted(m for m in sys.modules if m.startswith('survey.'))\n"
        "assert survey == ['survey.votes_format'], survey\n"
        "assert 'sqlalchemy' not in sys.modules\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
