"""One study's votes table, split by task: pairwise votes (`analysis.load`) and distinction answers.

The votes table holds both kinds of rows (issue 14); the `task` column tells them apart, by the
votes format's rule (`survey.votes_format.task_of`: absent or empty means pairwise, so every
existing export is a pairwise study).
A table without distinction rows takes exactly the path `analysis.load.load_votes` takes, so
pairwise results cannot change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.distinction_answers import DistinctionAnswers, prepare_distinction
from analysis.load import Votes, VotesError, as_votes_error, prepare_votes, read_votes_source
from survey.votes_format import task_of


@dataclass(frozen=True)
class StudyVotes:
    """Everything one study collected: `pairwise` votes and/or `distinction` answers (None when absent)."""

    pairwise: Votes | None
    distinction: DistinctionAnswers | None

    @property
    def study(self) -> str:
        return self.pairwise.study if self.pairwise is not None else self.distinction.study

    @property
    def source(self) -> str:
        return self.pairwise.source if self.pairwise is not None else self.distinction.source


def _pick_study(raw: pd.DataFrame, study: str | None, source: str) -> pd.DataFrame:
    """The rows of one study (same rules and messages as `prepare_votes`, over both tasks)."""
    if "study" not in raw:
        raise VotesError(f"{source} is missing column study")
    names = raw["study"].astype("string").fillna("").str.strip()
    studies = sorted(names.unique())
    if study is not None:
        if study not in studies:
            raise VotesError(
                f"{source} has no votes of study {study!r} (studies present: {', '.join(studies)})"
            )
        return raw[names == study]
    if len(studies) > 1:
        raise VotesError(
            f"{source} holds votes of several studies ({', '.join(studies)}); choose one with --study"
        )
    return raw


def study_votes(
    raw: pd.DataFrame,
    *,
    source: str = "votes frame",
    study: str | None = None,
    proposed: str | None = None,
    baseline: str | None = None,
) -> StudyVotes:
    """Split raw rows by task and validate each part; a table without distinction rows is passed to
    `prepare_votes` untouched."""
    with as_votes_error():  # the format's rule: absent or empty task = pairwise, other values refused
        task = task_of(raw, source)
    if not (task == "distinction").any():
        return StudyVotes(
            prepare_votes(raw, source=source, study=study, proposed=proposed, baseline=baseline), None
        )
    chosen = _pick_study(raw, study, source)
    task = task.loc[chosen.index]
    pairwise_rows = chosen[task == "pairwise"]
    distinction_rows = chosen[task == "distinction"]
    pairwise = (
        prepare_votes(pairwise_rows, source=source, study=study, proposed=proposed, baseline=baseline)
        if len(pairwise_rows)
        else None
    )
    if pairwise is None and baseline is not None:
        raise VotesError(
            f"--baseline {baseline!r}: the study has no pairwise votes (only distinction answers)"
        )
    if pairwise is not None:  # the pairwise proposed method leads the differences when it was also shown here
        shown = (
            set(distinction_rows["method"].astype("string").str.strip())
            if "method" in distinction_rows
            else set()
        )
        proposed = pairwise.proposed if pairwise.proposed in shown else None
    distinction = (
        prepare_distinction(distinction_rows, source=source, study=study, proposed=proposed)
        if len(distinction_rows)
        else None
    )
    if pairwise is None and distinction is None:
        raise VotesError(f"{source} contains no votes of study {study!r}; nothing to analyse")
    return StudyVotes(pairwise, distinction)


def load_study(
    source: str | Path | pd.DataFrame,
    study: str | None = None,
    *,
    proposed: str | None = None,
    baseline: str | None = None,
) -> StudyVotes:
    """Votes of one study from a CSV path, a database URL (needs `study`) or a DataFrame, by task.

    The reading is `analysis.load.read_votes_source`; only the split by task is added.
    """
    raw, name = read_votes_source(source, study)
    return study_votes(raw, source=name, study=study, proposed=proposed, baseline=baseline)
