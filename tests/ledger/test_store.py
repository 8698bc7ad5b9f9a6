"""Migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, text

from ledger.store import MIGRATIONS, Store
from ledger.store.models import NAMING, Base


def ledger_metadata() -> MetaData:
    """The ledger's tables alone (the service's share the declarative base once `api.tables`
    is imported, but are not the ledger's migrations' business)."""
    ours = MetaData(naming_convention=NAMING)
    for table in Base.metadata.sorted_tables:
        if table.name not in SERVICE_TABLES:
            table.to_metadata(ours)
    return ours


SERVICE_TABLES = {
    "alarms", "api_keys", "asset_assignments", "deliveries", "explanations", "models",
    "portal_sessions", "product_assignments", "record_assets", "record_tags", "subscriptions",
}  # fmt: skip


def test_migrations_match_models(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), ledger_metadata())
        assert diff == []
        tables = set(inspect(conn).get_table_names())
        assert not tables & SERVICE_TABLES  # the ledger's schema holds none of the service's
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert version == head


def test_sqlite_runs_in_wal_mode(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from ledger.store import sqlite_url

    s = Store.open(sqlite_url(tmp_path / "x.db"))
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    s.close()
    # Opening again is idempotent: no migration runs twice.
    Store.open(sqlite_url(tmp_path / "x.db")).close()
