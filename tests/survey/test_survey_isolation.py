"""The survey must start fast and install without PyTorch: importing it never imports torch."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODULES = ["survey.service", "survey.study", "survey.db", "survey.package", "survey.export",
           "survey.importer", "survey.invite", "survey.assignment", "survey.schema", "survey.votes_format",
           "survey.sample_package", "survey.testing_load"]


def test_survey_modules_never_import_torch() -> None:
    code = (f"import importlib, json, sys\nfor m in {MODULES!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'torch', 'torchvision', 'models', 'cams'})))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
