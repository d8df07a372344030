"""Load votes (contract C) from a CSV or the survey database into a validated, tidy `Votes`.

Everything downstream relies on the checks here, so a bad export fails once, with a message that
names the file, the column or value, and what to do, instead of a stack trace deep in a statistic.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from survey.votes_format import VotesFormatError, parse_bools, read_votes_csv, require_columns


class VotesError(ValueError):
    """The votes cannot be analysed as given; the message says why and how to fix it."""


@dataclass(frozen=True)
class Votes:
    """Validated votes of one study plus the facts every analysis needs.

    `frame` keeps the contract C columns (normalised) and adds:
    `decisive` (a method was chosen), `pair` (the vote compares proposed and baseline),
    `proposed_left`, `y` (1 proposed chosen, 0 baseline chosen, NaN otherwise or for other pairs),
    `chose_left` (1/0, NaN for "no preference") and `failed_check` (an attention check answered wrongly).
    """

    frame: pd.DataFrame
    study: str
    proposed: str
    baseline: str
    methods: tuple[str, ...]
    source: str
    notes: tuple[str, ...] = field(default=())

    def with_frame(self, frame: pd.DataFrame) -> "Votes":
        """The same study facts around another (e.g. filtered) frame."""
        return Votes(frame, self.study, self.proposed, self.baseline, self.methods, self.source, self.notes)

    @cached_property
    def comparisons(self) -> pd.DataFrame:
        """First showings of proposed-vs-baseline comparison trials (no attention checks, no repeats).

        Computed once per `Votes` (it is used by most analyses; at 1M votes a filter copy costs ~0.1 s).
        """
        f = self.frame
        return f[f["pair"] & ~f["attention_check"] & (f["repeat"] == 0)]


_METHOD_COLUMNS = (
    "left_method",
    "right_method",
    "chosen_method",
    "proposed_method",
    "baseline_method",
    "expected_method",
)


@contextmanager
def as_votes_error() -> Iterator[None]:
    """The votes format's own errors (`survey.votes_format`) as `VotesError`: callers catch one type
    (also around the format's parsers in `analysis.distinction_answers`)."""
    try:
        yield
    except VotesFormatError as exc:
        raise VotesError(str(exc)) from None


def _parse_bool(series: pd.Series, column: str, source: str) -> pd.Series:
    with as_votes_error():
        return parse_bools(series, column, source)


def _clean(series: pd.Series) -> tuple[pd.Series, np.ndarray, list[str]]:
    """Text with surrounding blanks removed and missing values as "", plus its codes and sorted labels.

    Works on the few unique values, so it is fast at a million rows.
    """
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    cleaned = [str(u).strip() for u in uniques] + [""]  # code -1 (missing) picks the last
    labels = sorted(set(cleaned))
    position = {label: k for k, label in enumerate(labels)}
    codes = np.array([position[c] for c in cleaned], dtype=np.int64)[codes]
    text = pd.Series(np.array(labels, dtype=object)[codes], index=series.index, dtype=object)
    return text, codes, labels


def read_votes_db(url: str, study: str) -> pd.DataFrame:
    """Votes of `study` from the survey database via `survey.export.votes_frame` (contract C)."""
    try:
        from survey.export import votes_frame  # lazy: the CSV path needs no database libraries
    except ImportError as exc:
        raise VotesError(
            f"cannot read a database: survey.export is not available ({exc}); "
            "export a CSV with `python -m survey.study export` and use --votes"
        ) from None
    try:
        return votes_frame(url, study)
    except VotesError:
        raise
    except Exception as exc:  # the survey layer's own errors (unknown study, bad URL) become one line
        raise VotesError(f"cannot read votes of study {study!r} from {url}: {exc}") from None


def prepare_votes(
    raw: pd.DataFrame,
    *,
    source: str = "votes",
    study: str | None = None,
    proposed: str | None = None,
    baseline: str | None = None,
) -> Votes:
    """Validate raw contract C rows and derive the tidy columns; raise `VotesError` on anything wrong.

    `study` picks one study when the rows hold several; `proposed`/`baseline`, when given, must match
    the methods recorded in the votes (a guard against analysing the wrong study or a renamed method).
    """
    with as_votes_error():
        require_columns(raw.columns, source)
    frame = raw.copy()
    frame["study"], _, _ = _clean(frame["study"])
    studies = sorted(frame["study"].unique()) if len(frame) else []
    if study is not None:
        if len(frame) and study not in studies:
            raise VotesError(
                f"{source} has no votes of study {study!r} (studies present: {', '.join(studies)})"
            )
        frame = frame[frame["study"] == study]
    elif len(studies) > 1:
        raise VotesError(
            f"{source} holds votes of several studies ({', '.join(studies)}); choose one with --study"
        )
    if frame.empty:
        where = f" of study {study!r}" if study else ""
        raise VotesError(f"{source} contains no votes{where}; nothing to analyse (has anyone voted yet?)")
    study_name = study or studies[0]
    if "expected_method" not in frame:
        frame["expected_method"] = ""
    # Method columns share one vocabulary, so every comparison below is between integer codes
    # (comparing 1M Python strings costs ~0.1 s each; integers cost a millisecond).
    vocab: dict[str, int] = {}
    codes: dict[str, np.ndarray] = {}
    for column in ("rater", "item", "label", *_METHOD_COLUMNS):
        frame[column], column_codes, labels = _clean(frame[column])
        if column in _METHOD_COLUMNS:
            for label in labels:
                vocab.setdefault(label, len(vocab))
            codes[column] = np.array([vocab[label] for label in labels], dtype=np.int64)[column_codes]
        elif column != "label" and (n_empty := int((column_codes == labels.index("")).sum())):
            raise VotesError(f"{source}: {n_empty} vote(s) have an empty {column}; re-export the votes")
    empty = vocab.get("", -1)
    left, right, chosen = codes["left_method"], codes["right_method"], codes["chosen_method"]

    frame["attention_check"] = _parse_bool(frame["attention_check"], "attention_check", source)
    frame["response_ms"] = pd.to_numeric(frame["response_ms"], errors="coerce").astype(float)
    frame["rater_finished"] = (
        _parse_bool(frame["rater_finished"], "rater_finished", source) if "rater_finished" in frame else True
    )
    notes: list[str] = []
    if "rater_finished" not in raw.columns:
        notes.append("no rater_finished column: every rater counts as finished")

    proposed_names = sorted(frame["proposed_method"].unique())
    baseline_names = sorted(frame["baseline_method"].unique())
    if len(proposed_names) != 1 or len(baseline_names) != 1 or "" in proposed_names + baseline_names:
        raise VotesError(
            f"{source}: proposed_method and baseline_method must each hold one name for the whole "
            f"study, found proposed {proposed_names} and baseline {baseline_names}"
        )
    proposed_name, baseline_name = proposed_names[0], baseline_names[0]
    if proposed_name == baseline_name:
        raise VotesError(f"{source}: proposed and baseline method are both {proposed_name!r}")
    names = {code: name for name, code in vocab.items()}
    shown = {names[c] for c in np.unique(np.concatenate([left, right]))}
    methods = tuple(sorted(shown - {""}))
    for role, wanted, recorded in (
        ("proposed", proposed, proposed_name),
        ("baseline", baseline, baseline_name),
    ):
        if wanted is not None and wanted != recorded:
            raise VotesError(
                f"--{role} {wanted!r} does not match the study: its votes record {role} method "
                f"{recorded!r} (methods shown: {', '.join(methods)})"
            )
    for role, name in (("proposed", proposed_name), ("baseline", baseline_name)):
        if name not in shown:
            raise VotesError(
                f"{source}: {role} method {name!r} never appears in left_method/right_method "
                f"(methods shown: {', '.join(methods)}); the method names don't match the study"
            )
    blank = (left == empty) | (right == empty)
    if blank.any():
        raise VotesError(f"{source}: {int(blank.sum())} vote(s) have an empty left_method or right_method")
    same = left == right
    if same.any():
        example = frame[same].iloc[0]
        raise VotesError(
            f"{source}: {int(same.sum())} vote(s) show the same method on both sides "
            f"(e.g. rater {example['rater']!r}, item {example['item']!r})"
        )
    odd = (chosen != empty) & (chosen != left) & (chosen != right)
    if odd.any():
        example = frame[odd].iloc[0]
        raise VotesError(
            f"{source}: {int(odd.sum())} vote(s) choose a method that was not shown, e.g. "
            f"{example['chosen_method']!r} for {example['left_method']!r} vs {example['right_method']!r} "
            f"(rater {example['rater']!r}, item {example['item']!r}); the method names don't match"
        )

    if "position" in frame:
        frame["position"] = pd.to_numeric(frame["position"], errors="coerce")
    if "repeat" in frame:
        frame["repeat"] = pd.to_numeric(frame["repeat"], errors="coerce").fillna(0).astype(np.int64)
    else:  # later showings of the same (rater, item) count as repeats
        order = ["rater", "position"] if "position" in frame else ["rater", "created_at"]
        ordered = frame.sort_values(order, kind="stable")
        frame["repeat"] = (
            ordered.groupby(["rater", "item"], sort=False).cumcount().clip(upper=1).astype(np.int64)
        )

    p_code, b_code = vocab[proposed_name], vocab[baseline_name]
    decisive = chosen != empty
    pair = ((left == p_code) & (right == b_code)) | ((left == b_code) & (right == p_code))
    expected = codes["expected_method"]
    frame["decisive"] = decisive
    frame["pair"] = pair
    frame["proposed_left"] = left == p_code
    frame["y"] = np.where(pair & decisive, (chosen == p_code).astype(float), np.nan)
    frame["chose_left"] = np.where(decisive, (chosen == left).astype(float), np.nan)
    frame["failed_check"] = frame["attention_check"].to_numpy() & (expected != empty) & (chosen != expected)
    if (
        frame["attention_check"].any()
        and (frame.loc[frame["attention_check"], "expected_method"] == "").all()
    ):
        notes.append("attention checks have no expected_method: failures cannot be detected")
    # Raters and items as categoricals: every groupby and bootstrap factorizes them, and codes are fast.
    frame["rater"] = frame["rater"].astype("category")
    frame["item"] = frame["item"].astype("category")
    frame = frame.reset_index(drop=True)
    votes = Votes(frame, study_name, proposed_name, baseline_name, methods, source, tuple(notes))
    if votes.comparisons.empty:
        raise VotesError(
            f"{source}: no comparison of {proposed_name!r} with {baseline_name!r} "
            "(only attention checks, repeats or other method pairs); nothing to analyse"
        )
    return votes


def looks_like_db_url(source: str) -> bool:
    """True for SQLAlchemy URLs such as sqlite:///data/survey.db or postgresql+psycopg://..."""
    head = source.split("://", 1)[0]
    return "://" in source and head.replace("+", "").replace("_", "").isalnum() and len(head) > 1


def load_votes(
    source: str | Path | pd.DataFrame,
    study: str | None = None,
    *,
    proposed: str | None = None,
    baseline: str | None = None,
) -> Votes:
    """Votes from a CSV path, a database URL (then `study` is required) or a DataFrame, validated.

    One entry point for the command, the notebook and tests: the notebook's single `SOURCE` may be
    either a path or a URL.
    """
    raw, name = read_votes_source(source, study)
    return prepare_votes(raw, source=name, study=study, proposed=proposed, baseline=baseline)


def read_votes_source(
    source: str | Path | pd.DataFrame, study: str | None = None
) -> tuple[pd.DataFrame, str]:
    """The raw rows of a CSV path, a database URL (then `study` is required) or a DataFrame, and the
    source's name for messages: the one way every loader (`load_votes`, `analysis.tasks.load_study`)
    reads votes. A CSV is read by the format's one reader, `survey.votes_format.read_votes_csv`."""
    if isinstance(source, pd.DataFrame):
        return source, "votes frame"
    if looks_like_db_url(str(source)):
        if not study:
            raise VotesError(f"a database source ({source}) needs a study name: pass --study NAME")
        return read_votes_db(str(source), study), f"database {source}"
    with as_votes_error():
        return read_votes_csv(source), f"votes CSV {source}"
