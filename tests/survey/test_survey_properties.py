"""Properties that must hold for every input, checked with Hypothesis.

(The votes CSV round trip for any text is in test_survey_votes_format.py.)

- Sides are balanced: for any number of raters, every item shows the reference method on the left
  for half of them (within one), and every rater sees it on the left for half of the items.
"""
from __future__ import annotations

import string
from pathlib import Path

import pandas as pd
import tests.hypothesis_home  # noqa: F401  (before Hypothesis writes anything)
from hypothesis import given, settings
from hypothesis import strategies as st

import survey.export as export
from survey.assignment import reference_on_left
from survey.votes_format import read_votes_csv


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
    """Found by the round-trip property: the csv module left a bare '\\r' unquoted, splitting the row."""
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
    assert export.export_votes_csv(engine, "demo", path) == 2
    back = read_votes_csv(path)
    pd.testing.assert_frame_equal(back, export.votes_frame(engine, "demo"))
    assert set(back["rater"]) == {"pasted\r", 'a,"b"\r\nc'}
