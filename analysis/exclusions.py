"""Exclusion rules for careless or incomplete voting, each switchable and always reported with counts.

Rules are applied to the raw votes in a fixed order (unfinished raters, failed attention checks,
speeders, then single fast votes) so each count says how many votes *that* rule removed on top of
the previous ones. Results are always shown with and without exclusions, so a reader can see that
the conclusion does not hinge on them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from analysis.load import Votes, VotesError


@dataclass(frozen=True)
class ExclusionRules:
    """Which votes to drop. Defaults follow common practice for short online preference studies.

    - `exclude_unfinished`: drop raters who stopped before their last trial (they may have been
      distracted, and their votes over-represent early items).
    - `max_failed_checks`: drop raters with more failed attention checks than this (default 0: any
      failure excludes the rater). None turns the rule off.
    - `min_response_ms`: drop single votes answered faster than this (default 500 ms: too fast to
      look at an image and two maps). None turns it off.
    - `max_fast_fraction`: drop raters whose share of too-fast votes exceeds this (default 0.5: a
      rater who mostly clicks through is not answering the question). None turns it off.
    """

    exclude_unfinished: bool = True
    max_failed_checks: int | None = 0
    min_response_ms: float | None = 500.0
    max_fast_fraction: float | None = 0.5

    @classmethod
    def none(cls) -> "ExclusionRules":
        """Rules that keep every vote."""
        return cls(
            exclude_unfinished=False, max_failed_checks=None, min_response_ms=None, max_fast_fraction=None
        )

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ExclusionResult:
    votes: Votes
    report: dict


def _count(frame: pd.DataFrame) -> dict:
    return {"votes": int(len(frame)), "raters": int(frame["rater"].nunique())}


def exclude_rows(frame: pd.DataFrame, rules: ExclusionRules = ExclusionRules()) -> tuple[pd.DataFrame, dict]:
    """Rows left after the rules, and the report (per rule the raters and rows it removed).

    Works on any answer table with `rater`, `rater_finished`, `failed_check` and `response_ms`
    columns, so pairwise votes and distinction answers (`analysis.distinction_answers`) share one
    set of rules.
    """
    before = _count(frame)
    steps: list[dict] = []

    def drop_raters(rule: str, raters: pd.Index | np.ndarray, detail: str) -> None:
        nonlocal frame
        mask = frame["rater"].isin(set(raters))
        steps.append(
            {
                "rule": rule,
                "detail": detail,
                "raters": int(frame.loc[mask, "rater"].nunique()),
                "votes": int(mask.sum()),
                "rater_ids": sorted(map(str, frame.loc[mask, "rater"].unique()))[:50],
            }
        )
        frame = frame[~mask]

    if rules.exclude_unfinished:
        unfinished = frame.loc[~frame["rater_finished"].astype(bool), "rater"].unique()
        drop_raters("unfinished", unfinished, "raters who did not finish their sequence")
    if rules.max_failed_checks is not None:
        failures = frame.groupby("rater", sort=False)["failed_check"].sum()
        drop_raters(
            "attention",
            failures.index[failures > rules.max_failed_checks],
            f"raters with more than {rules.max_failed_checks} failed attention check(s)",
        )
    fast = (frame["response_ms"] < rules.min_response_ms) if rules.min_response_ms is not None else None
    if fast is not None and rules.max_fast_fraction is not None:
        share = fast.groupby(frame["rater"], sort=False).mean()
        drop_raters(
            "speeders",
            share.index[share > rules.max_fast_fraction],
            f"raters with more than {rules.max_fast_fraction:.0%} of votes under {rules.min_response_ms:g} ms",
        )
        fast = frame["response_ms"] < rules.min_response_ms
    if fast is not None:
        steps.append(
            {
                "rule": "fast_votes",
                "detail": f"single votes under {rules.min_response_ms:g} ms",
                "raters": 0,
                "votes": int(fast.sum()),
                "rater_ids": [],
            }
        )
        frame = frame[~fast]

    after = _count(frame)
    report = {
        "rules": rules.as_dict(),
        "steps": steps,
        "votes_before": before["votes"],
        "votes_after": after["votes"],
        "raters_before": before["raters"],
        "raters_after": after["raters"],
        "votes_excluded": before["votes"] - after["votes"],
        "raters_excluded": before["raters"] - after["raters"],
    }
    return frame.reset_index(drop=True), report


def apply_exclusions(votes: Votes, rules: ExclusionRules = ExclusionRules()) -> ExclusionResult:
    """Votes left after the rules, and a report: per rule the raters and votes it removed.

    Raises `VotesError` when no comparison vote survives, naming the rule counts so the analyst
    knows which flag to loosen.
    """
    frame, report = exclude_rows(votes.frame, rules)
    kept = votes.with_frame(frame)
    if kept.comparisons.empty:
        raise nothing_left(report, "comparison vote", "votes")
    return ExclusionResult(kept, report)


def nothing_left(report: dict, what: str, unit: str) -> VotesError:
    """The error for rules that removed every ``what`` (either task): it names each rule's count, so
    the analyst knows which flag to loosen."""
    detail = ", ".join(f"{s['rule']}: {s['votes']} {unit}" for s in report["steps"])
    return VotesError(
        f"every {what} was excluded ({detail}); loosen the exclusion flags "
        "(e.g. --keep-unfinished, --max-failed-checks N, --min-response-ms 0) or use --no-exclusions"
    )
