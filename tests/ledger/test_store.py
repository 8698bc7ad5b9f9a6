"""Migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from ledger.store import Store
from ledger.store.models import Base


def test_migrations_match_models(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    assert version == "0002"


def test_sqlite_runs_in_wal_mode(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from ledger.store import sqlite_url

    s = Store.open(sqlite_url(tmp_path / "x.db"))
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    s.close()
    # Opening again is idempotent: no migration runs twice.
    Store.open(sqlite_url(tmp_path / "x.db")).close()
