"""The statistics notebook: committed without outputs, and runs end to end on generated votes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from survey.votes_format import write_votes_csv
from testing.distinction_votes import simulate_distinction_votes, with_task

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


def _execute(tmp_path: Path, votes_csv: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list, str]:
    """Run the notebook on `votes_csv`; its outputs and their text."""
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
    text = "\n".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) + str(o.get("data", {}).get("text/markdown", ""))
        for o in outputs
    )
    return outputs, text


def test_notebook_runs_on_generated_votes(
    tmp_path: Path, votes_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs, text = _execute(tmp_path, votes_csv, monkeypatch)
    assert "votes CSV" in text and "two-way" in text and "power_two_way" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3
    assert "no distinction answers" in text  # the distinction section says why it is empty


@pytest.mark.parametrize("with_pairwise", [True, False], ids=["mixed", "distinction-only"])
def test_notebook_shows_the_distinction_task(
    tmp_path: Path, study_frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, with_pairwise: bool
) -> None:
    answers = simulate_distinction_votes(8, 12, {"vib": 0.55, "gradcam": 0.35}, study="sim", seed=3)
    table = with_task(study_frame, answers) if with_pairwise else answers
    outputs, text = _execute(tmp_path, write_votes_csv(table, tmp_path / "votes.csv"), monkeypatch)
    assert "picked the model's prediction" in text and "distinction answers" in text
    assert "half_width_mean" in text
    if with_pairwise:
        assert "power_two_way" in text and "two-way" in text
    else:
        assert "no pairwise votes" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= (4 if with_pairwise else 1)
