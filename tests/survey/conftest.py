"""Shared survey fixtures: a sample study package, a SQLite URL in tmp_path, and PostgreSQL.

``pg_url`` gives each test a fresh database in one throwaway cluster per session
(``testing.postgres``); where PostgreSQL is not installed the test skips locally and fails in CI.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from survey.db import dispose_engines, get_engine
from testing.packages import make_package
from tests.support import require

_db_numbers = itertools.count()
_TEMPLATE = "survey_template"


@pytest.fixture(scope="session")
def sample_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid package: 6 regular items, 1 attention check, an example, masks. Shared: do not modify
    it (copy it with shutil.copytree first)."""
    root = tmp_path_factory.mktemp("package") / "demo"
    return make_package(root, n_items=6, n_checks=1, with_masks=True)


@pytest.fixture()
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'db' / 'survey.db'}"
    dispose_engines()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[str]:
    """URL of the maintenance database of a throwaway cluster (started once per test session)."""
    from testing.postgres import temporary_cluster, unavailable_reason

    reason = unavailable_reason()
    require(reason is None, f"PostgreSQL tests cannot run: {reason}")
    with temporary_cluster(durable=False) as url:
        # A migrated template: each test's database is a cheap copy of it (CREATE DATABASE ... TEMPLATE).
        from sqlalchemy import create_engine, make_url

        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {_TEMPLATE}")
        admin.dispose()
        template_url = make_url(url).set(database=_TEMPLATE).render_as_string(hide_password=False)
        get_engine(template_url)
        dispose_engines()
        yield url


@pytest.fixture()
def pg_url(pg_cluster: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one test (schema already at head, no studies)."""
    from sqlalchemy import create_engine, make_url

    name = f"t{next(_db_numbers)}"
    admin = create_engine(pg_cluster, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name} TEMPLATE {_TEMPLATE} STRATEGY FILE_COPY")
    admin.dispose()
    yield make_url(pg_cluster).set(database=name).render_as_string(hide_password=False)
    dispose_engines()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_url(request: pytest.FixtureRequest) -> str:
    """Runs a test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")
