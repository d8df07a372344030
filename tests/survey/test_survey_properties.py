"""Properties that must hold for every input, checked with Hypothesis.

- The votes CSV (contract C) written by `survey.export` reads back as the very same frame, whatever
  the text in it (commas, quotes, newlines, unicode, ids such as "007", "true", "nan" or "none").
- Sides are balanced: for any number of raters, every item shows the reference method on the left
  for half of them (within one), and every rater sees it on the left for half of the items.
"""
from __future__ import annotations

import string
from pathlib import Path

import pandas as pd
import pytest
import tests.hypothesis_home  # noqa: F401  (before Hypothesis writes anything)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import survey.export as export
from survey.assignment import reference_on_left

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(list(',"\n\r;')),
               min_size=1, max_size=12)
TRICKY = st.sampled_from(["007", "true", "false", "nan", "NA", "None", "null", "none", " x ", "1e5", "-0"])
NAME = TEXT | TRICKY


@st.composite
def vote_rows(draw: st.DrawFn) -> pd.DataFrame:
    methods = draw(st.lists(NAME, min_size=2, max_size=3, unique=True))
    rows = []
    for _ in range(draw(st.integers(1, 8))):
        left, right = draw(st.permutations(methods))[:2]
        check = draw(st.booleans())
        chosen = draw(st.sampled_from([left, right, None]))
        rows.append({
            "study": draw(NAME), "rater": draw(NAME), "item": draw(NAME), "label": draw(NAME),
            "left_method": left, "right_method": right, "chosen_method": chosen,
            "proposed_method": methods[0], "baseline_method": methods[1], "attention_check": check,
            "response_ms": draw(st.integers(0, 10**9)),
            "created_at": draw(st.datetimes().map(lambda d: d.isoformat(timespec="milliseconds") + "Z")),
            "chosen_side": "none" if chosen is None else ("left" if chosen == left else "right"),
            "position": draw(st.integers(1, 500)), "repeat": draw(st.integers(0, 1)),
            "expected_method": draw(st.sampled_from(methods)) if check else None,
            "rater_finished": draw(st.booleans()),
        })
    return export._normalise(pd.DataFrame(rows, columns=list(export.ALL_COLUMNS)))


@settings(database=None, max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=vote_rows())
def test_votes_csv_round_trip_is_the_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             frame: pd.DataFrame) -> None:
    monkeypatch.setattr(export, "votes_frame", lambda url, study: frame)
    path = tmp_path / "votes.csv"
    assert export.write_votes_csv(None, "any", path) == len(frame)
    back = export.read_votes_csv(path)
    assert list(back.columns) == list(export.ALL_COLUMNS)
    pd.testing.assert_frame_equal(back, frame)
    assert not list(tmp_path.glob(".votes.csv.*"))  # no temp file left behind


@settings(database=None, max_examples=200, deadline=None)
@given(n_raters=st.integers(1, 41), n_items=st.integers(1, 30), seed=st.integers(0, 2**32),
       salt=st.text(string.ascii_letters, max_size=5))
def test_sides_stay_balanced_for_any_number_of_raters(n_raters: int, n_items: int, seed: int,
                                                      salt: str) -> None:
    items = [f"item-{i}" for i in range(n_items)]
    plans = [reference_on_left(items, r, seed, salt) for r in range(n_raters)]
    for item in items:  # per item, over raters: within one, and exactly even after each pair of raters
        left = sum(plan[item] for plan in plans)
        assert abs(left - (n_raters - left)) <= 1
        if n_raters % 2 == 0:
            assert 2 * left == n_raters
    for plan in plans:  # per rater, over items
        left = sum(plan.values())
        assert abs(left - (n_items - left)) <= 1 and set(plan) == set(items)


def test_a_rater_id_with_a_carriage_return_survives_the_export(sqlite_url: str, sample_package: Path,
                                                              tmp_path: Path) -> None:
    """Found by the property above: the csv module left a bare '\\r' unquoted, splitting the row."""
    import survey.service as service
    from survey.db import get_engine
    from survey.importer import import_package

    engine = get_engine(sqlite_url)
    import_package(engine, sample_package)
    for rater in ("pasted\r", 'a,"b"\r\nc'):
        service.start_rater(engine, "demo", rater)
        trial = service.next_trial(engine, "demo", rater)
        assert service.record_vote(engine, "demo", rater, trial.token, "A").recorded
    path = tmp_path / "votes.csv"
    assert export.write_votes_csv(engine, "demo", path) == 2
    back = export.read_votes_csv(path)
    pd.testing.assert_frame_equal(back, export.votes_frame(engine, "demo"))
    assert set(back["rater"]) == {"pasted\r", 'a,"b"\r\nc'}
