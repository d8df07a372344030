"""Alembic environment for the survey database.

Normally run programmatically by ``survey.db.upgrade`` (which passes an open connection in
``config.attributes["connection"]``). For the ``alembic`` command line (new revisions), use
``alembic -c survey/alembic.ini ...`` with ``SURVEY_DB_URL`` pointing at a scratch database.
"""
from __future__ import annotations

from alembic import context

from survey.schema import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:  # noqa: ANN001
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from survey.db import database_url, make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url") or database_url())
    with engine.begin() as connection:
        _run(connection)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
