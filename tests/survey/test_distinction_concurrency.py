"""Many processes answering distinction trials at once through the service layer, on SQLite and
PostgreSQL: every answer stored exactly once despite double submissions, gap-free rater numbers, and
the methods still balanced across raters."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from survey.db import get_engine, read_session
from survey.distinction_export import answers_frame
from survey.importer import import_package
from survey.schema import DistinctionAnswer, Rater
from testing.distinction_load import run_distinction_raters
from testing.distinction_package import make_distinction_package

N_PROCESSES = 12
N_ITEMS, N_CHECKS, REPEATS = 4, 1, 1


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_distinction_package(tmp_path_factory.mktemp("dload") / "pkg", name="dload", n_items=N_ITEMS,
                                    n_checks=N_CHECKS, image_size=16, with_example=False)


@pytest.mark.slow
def test_concurrent_raters_every_answer_exactly_once(any_url: str, package: Path) -> None:
    engine = get_engine(any_url)
    import_package(engine, package, repeats=REPEATS)
    raters = [f"p{k:02d}" for k in range(N_PROCESSES)]
    runs = run_distinction_raters(any_url, "dload", raters, double_submit=True)
    assert [e for run in runs for e in run.errors] == []
    per_rater = N_ITEMS + N_CHECKS + REPEATS
    assert sorted(run.rater for run in runs) == raters
    assert all(run.recorded == per_rater and run.duplicates == per_rater for run in runs)
    frame = answers_frame(engine, "dload")
    assert len(frame) == N_PROCESSES * per_rater
    assert not frame.duplicated(["rater", "item", "repeat"]).any()
    # the first click counted, never the double submission (slot 0, confidence 5)
    assert (frame["confidence"] == 1 + frame["position"] % 5).all()
    assert frame.groupby("rater").size().eq(per_rater).all() and frame["rater_finished"].all()
    with read_session(engine) as session:
        assert sorted(session.scalars(select(Rater.seq))) == list(range(N_PROCESSES))
    methods = Counter(frame.groupby("rater")["method"].first())
    assert sorted(methods.values()) == [N_PROCESSES // 2] * 2


@pytest.mark.slow
def test_one_rater_racing_itself_from_many_processes(any_url: str, package: Path) -> None:
    engine = get_engine(any_url)
    import_package(engine, package)
    runs = run_distinction_raters(any_url, "dload", ["same"] * 4)
    assert [e for run in runs for e in run.errors] == []
    assert sum(run.recorded for run in runs) == N_ITEMS + N_CHECKS
    with read_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Rater)) == 1
        assert session.scalar(select(func.count()).select_from(DistinctionAnswer)) == N_ITEMS + N_CHECKS
