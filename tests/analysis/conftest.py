"""Shared fixtures of the analysis tests: small simulated studies (contract D) as frames and CSVs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from survey.votes_format import write_votes_csv
from testing.simulated_votes import simulate_votes


@pytest.fixture()
def study_frame() -> pd.DataFrame:
    """30 raters x 15 items with every complication a real study has, fixed seed."""
    return simulate_votes(
        30,
        15,
        0.7,
        0.5,
        1.0,
        seed=1,
        repeats=2,
        attention_checks=2,
        careless_raters=2,
        side_pickers=1,
        unfinished_raters=3,
        no_preference=0.05,
    )


@pytest.fixture()
def votes_csv(tmp_path: Path, study_frame: pd.DataFrame) -> Path:
    return write_votes_csv(study_frame, tmp_path / "votes.csv")
