"""16+ processes voting at once through the service layer (the app's code path), on SQLite and
PostgreSQL: every vote stored exactly once, no "database is locked", sides still balanced."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from survey.db import get_engine, read_session
from survey.export import votes_frame
from survey.importer import import_package
from survey.schema import Rater, Vote
from survey.service import admin_summary
from testing.concurrent_raters import run_raters
from testing.packages import make_package

N_PROCESSES = 16


@pytest.fixture(scope="module")
def load_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_package(tmp_path_factory.mktemp("big") / "load", name="load", n_items=6, n_checks=1,
                        image_size=16, with_example=False)


@pytest.mark.slow
def test_concurrent_raters_every_vote_exactly_once(any_url: str, load_package: Path) -> None:
    engine = get_engine(any_url)
    import_package(engine, load_package, repeats=1)
    raters = [f"p{k:02d}" for k in range(N_PROCESSES)]
    runs = run_raters(any_url, "load", raters, double_submit=True)
    assert [e for run in runs for e in run.errors] == []
    per_rater = 6 + 1 + 1
    assert sorted(run.rater for run in runs) == raters
    assert all(run.recorded == per_rater and run.duplicates == per_rater for run in runs)
    frame = votes_frame(engine, "load")
    assert len(frame) == N_PROCESSES * per_rater
    assert not frame.duplicated(["rater", "item", "repeat"]).any()
    assert frame.groupby("rater").size().eq(per_rater).all() and frame["rater_finished"].all()
    with read_session(engine) as session:  # sequence numbers: unique and gap-free despite the race
        seqs = sorted(session.scalars(select(Rater.seq)))
    assert seqs == list(range(N_PROCESSES))
    table = admin_summary(engine, "load").votes_per_item  # so the sides stay exactly balanced
    assert (table["assigned"] == N_PROCESSES).all() and (table["proposed_left"] == N_PROCESSES // 2).all()


@pytest.mark.slow
def test_one_rater_racing_itself_from_many_processes(any_url: str, load_package: Path) -> None:
    """Several devices of the same rater clicking at once: one sequence, one vote per trial."""
    engine = get_engine(any_url)
    import_package(engine, load_package)
    runs = run_raters(any_url, "load", ["same"] * 4)
    assert [e for run in runs for e in run.errors] == []
    assert sum(run.recorded for run in runs) == 7
    with read_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Rater)) == 1
        assert session.scalar(select(func.count()).select_from(Vote)) == 7


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_app_replicas_migrating_a_fresh_database_at_once(backend: str, request: pytest.FixtureRequest,
                                                         tmp_path: Path) -> None:
    """Several servers starting together on an empty database: one migrates, the others wait."""
    from sqlalchemy import create_engine, make_url

    from survey.db import head_revision
    from testing.concurrent_raters import migrate_at_once

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    if backend == "postgresql":
        cluster = request.getfixturevalue("pg_cluster")
        admin = create_engine(cluster, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql("CREATE DATABASE fresh_for_migration")  # empty: no template
        admin.dispose()
        url = make_url(cluster).set(database="fresh_for_migration").render_as_string(hide_password=False)
    assert migrate_at_once(url, 8) == [head_revision()] * 8
