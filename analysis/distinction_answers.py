"""Distinction answers (issue 14, HIVE's task): validate the rows and derive what the statistics need.

A rater sees one image and the maps of *one* method for the model's top-4 classes and picks the map
of the model's actual prediction, with a confidence of 1-5. One row per answer, in the votes table
beside pairwise votes, marked `task = "distinction"`. Checks live here, once, so a bad export fails
with a message naming the column and the fix instead of a wrong accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from analysis.load import VotesError, as_votes_error
from survey.votes_format import (
    CANDIDATES,
    CONFIDENCE_LEVELS,
    DISTINCTION,
    TASK_COLUMN,
    parse_bools,
    parse_ints,
)

#: Chance accuracy: one of the CANDIDATES maps (the model's top-4 classes) is the prediction's.
CHANCE = 1 / CANDIDATES
#: Columns a distinction row needs (the votes format's, besides `task`); `correct`, `label`,
#: `position`, `repeat`, `rater_finished` and `created_at` are used when present.
DISTINCTION_COLUMNS: tuple[str, ...] = tuple(c for c in DISTINCTION.required if c != TASK_COLUMN)


@dataclass(frozen=True)
class DistinctionAnswers:
    """Validated distinction answers of one study.

    `frame` columns: study, rater, item, label, method, chosen_index, answer_index, correct (bool),
    confidence and chosen_rank (float, NaN when missing), attention_check, response_ms,
    rater_finished, repeat, failed_check (an attention check answered wrongly) and y (1.0 correct,
    0.0 wrong) -- `y` and `failed_check` are what `analysis.crossed` and `analysis.exclusions` read.
    """

    frame: pd.DataFrame
    study: str
    methods: tuple[str, ...]
    source: str
    notes: tuple[str, ...] = field(default=())

    def with_frame(self, frame: pd.DataFrame) -> DistinctionAnswers:
        """The same study facts around another (e.g. filtered) frame."""
        return DistinctionAnswers(frame, self.study, self.methods, self.source, self.notes)

    @cached_property
    def regular(self) -> pd.DataFrame:
        """First showings of real items: the answers every accuracy is computed on."""
        f = self.frame
        return f[~f["attention_check"] & (f["repeat"] == 0)]


def _integers(
    frame: pd.DataFrame, column: str, low: int, high: int, source: str, *, optional: bool
) -> pd.Series:
    """A column of whole numbers (the votes format's parsing) in [low, high], as float; NaN allowed
    only when `optional`."""
    with as_votes_error():
        values = parse_ints(frame[column], column, source).astype("Float64").astype(float)
    bad = values.notna() & ((values < low) | (values > high))
    if not optional:
        bad |= values.isna()
    if bad.any():
        example = frame.loc[bad, column].iloc[0]
        raise VotesError(
            f"{source}: {int(bad.sum())} distinction answer(s) have {column} outside {low}..{high} "
            f"(e.g. {example!r}); re-export the votes"
        )
    return values


def _bools(frame: pd.DataFrame, column: str, source: str) -> pd.Series:
    with as_votes_error():
        return parse_bools(frame[column], column, source)


def _text(series: pd.Series) -> pd.Series:
    return series.astype("string").fillna("").str.strip().astype(object)


def prepare_distinction(
    raw: pd.DataFrame, *, source: str = "votes", study: str | None = None, proposed: str | None = None
) -> DistinctionAnswers:
    """Validate distinction rows of one study and derive the tidy columns; `VotesError` on anything wrong.

    `proposed`, when given, must be one of the methods and is listed first (it is the minuend of
    every accuracy difference). Raters with several methods are allowed (a within-subjects variant)
    and noted; the difference bootstrap then resamples raters across methods instead of within.
    """
    missing = [c for c in DISTINCTION_COLUMNS if c not in raw.columns]
    if missing:
        raise VotesError(
            f"{source} has distinction answers but lacks column(s) {', '.join(missing)}; "
            f"distinction rows need {', '.join(DISTINCTION_COLUMNS)}"
        )
    frame = raw.copy()
    for column in ("study", "rater", "item", "method"):
        frame[column] = _text(frame[column])
        empty = int((frame[column] == "").sum())
        if empty:
            raise VotesError(
                f"{source}: {empty} distinction answer(s) have an empty {column}; re-export the votes"
            )
    studies = sorted(frame["study"].unique())
    if len(studies) != 1:
        raise VotesError(
            f"{source}: distinction answers of several studies ({', '.join(studies)}); choose one with --study"
        )
    frame["label"] = _text(frame["label"]) if "label" in frame else ""
    frame["attention_check"] = _bools(frame, "attention_check", source)
    frame["rater_finished"] = _bools(frame, "rater_finished", source) if "rater_finished" in frame else True
    frame["response_ms"] = pd.to_numeric(frame["response_ms"], errors="coerce").astype(float)
    last = CANDIDATES - 1
    frame["chosen_index"] = _integers(frame, "chosen_index", 0, last, source, optional=False).astype(np.int64)
    frame["answer_index"] = _integers(frame, "answer_index", 0, last, source, optional=False).astype(np.int64)
    frame["confidence"] = _integers(frame, "confidence", 1, len(CONFIDENCE_LEVELS), source, optional=True)
    frame["chosen_rank"] = _integers(frame, "chosen_rank", 1, CANDIDATES, source, optional=True)
    derived = frame["chosen_index"] == frame["answer_index"]
    if "correct" in frame and frame["correct"].notna().any():
        recorded = _bools(frame, "correct", source)
        wrong = recorded != derived
        if wrong.any():
            raise VotesError(
                f"{source}: {int(wrong.sum())} distinction answer(s) record correct != (chosen_index == "
                "answer_index); the export is inconsistent"
            )
    frame["correct"] = derived.astype(bool)
    regular = ~frame["attention_check"]
    no_rank = regular & frame["chosen_rank"].isna()
    if no_rank.any():
        raise VotesError(
            f"{source}: {int(no_rank.sum())} distinction answer(s) on regular items have no chosen_rank"
        )
    odd = regular & ((frame["chosen_rank"] == 1) != frame["correct"])
    if odd.any():
        raise VotesError(
            f"{source}: {int(odd.sum())} distinction answer(s) have chosen_rank 1 (the prediction) but are "
            "not correct, or the reverse; chosen_rank must be 1 exactly when chosen_index == answer_index"
        )
    if "repeat" in frame:
        frame["repeat"] = pd.to_numeric(frame["repeat"], errors="coerce").fillna(0).astype(np.int64)
    else:  # later showings of the same (rater, item) count as repeats, as for pairwise votes
        order = [c for c in ("rater", "position", "created_at") if c in frame][:2]
        ordered = frame.sort_values(order, kind="stable")
        frame["repeat"] = (
            ordered.groupby(["rater", "item"], sort=False).cumcount().clip(upper=1).astype(np.int64)
        )
    frame["failed_check"] = frame["attention_check"] & ~frame["correct"]
    frame["y"] = frame["correct"].astype(float)
    methods = sorted(frame["method"].unique())
    if proposed is not None:
        if proposed not in methods:
            raise VotesError(
                f"--proposed {proposed!r} is not a method of the distinction answers (methods: {', '.join(methods)})"
            )
        methods = [proposed] + [m for m in methods if m != proposed]
    notes = []
    if "rater_finished" not in raw.columns:
        notes.append("distinction answers have no rater_finished column: every rater counts as finished")
    frame["rater"] = frame["rater"].astype("category")
    frame["item"] = frame["item"].astype("category")
    answers = DistinctionAnswers(
        frame.reset_index(drop=True), study or studies[0], tuple(methods), source, tuple(notes)
    )
    if answers.regular.empty:
        raise VotesError(
            f"{source}: no distinction answer on a regular item (only attention checks or repeats)"
        )
    return answers


def methods_per_rater(frame: pd.DataFrame) -> pd.Series:
    """How many methods each rater answered under (1 everywhere in the between-subjects design)."""
    return frame.groupby("rater", observed=True)["method"].nunique()
