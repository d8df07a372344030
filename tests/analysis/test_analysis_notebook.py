"""The statistics notebook: committed without outputs, and runs end to end on generated votes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "analysis" / "preference_analysis.ipynb"


def test_notebook_is_stored_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]
    assert nb.cells[1].source.startswith("SOURCE = ")  # the one variable at the top


def test_notebook_cells_only_call_the_library() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for construct in ("def ", "class ", "for ", "while ", "lambda", "groupby", "binomtest"):
        assert construct not in code


def test_notebook_runs_on_generated_votes(
    tmp_path: Path, votes_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A kernel spec named python3 that is this interpreter, found first via JUPYTER_PATH.
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (vibcam)",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("VIBCAM_VOTES", str(votes_csv))
    monkeypatch.delenv("VIBCAM_STUDY", raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(REPO)}}
    ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "votes CSV" in text and "two-way" in text and "power_two_way" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3
