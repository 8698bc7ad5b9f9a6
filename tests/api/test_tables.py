"""The service's tables have migrations of their own (api/migrations, version table
`alembic_version_api`), which build exactly what `api.tables` describes, beside the ledger's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, select, text

from api.tables import MIGRATIONS, VERSION_TABLE, ApiKeyRow, ensure_schema
from ledger.store import Store, sqlite_url
from ledger.store.models import Base, ParticipantRow
from tests.conftest import postgres_schema
from tests.ledger.test_store import SERVICE_TABLES


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store.open(sqlite_url(tmp_path / "t.db"))
        yield s
        s.close()
        return
    with postgres_schema(request.getfixturevalue("postgres_url")) as url:
        s = Store.open(url)
        yield s
        s.close()


def test_service_migrations_match_the_tables(store: Store) -> None:
    ensure_schema(store.engine)
    with store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_name": lambda name, kind, _: name != VERSION_TABLE}
        )
        assert compare_metadata(context, Base.metadata) == []
        version = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one()
    assert version == ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert {t.name for t in Base.metadata.sorted_tables} >= SERVICE_TABLES


def test_a_deployment_from_before_the_move_keeps_its_service_tables(store: Store) -> None:
    """Its service tables were made by the ledger's migrations of the time, and it has no
    `alembic_version_api`: they are kept as they are, rows and all."""
    ensure_schema(store.engine)
    with store.transaction() as conn:
        conn.execute(
            insert(ParticipantRow).values(id="acme", name="ACME", roles="supplier", created_us=1)
        )
        conn.execute(
            insert(ApiKeyRow).values(
                key_hash=b"k" * 32, id="k_1", participant="acme", role="supplier", label="x",
                created_us=1,
            )
        )  # fmt: skip
        conn.execute(text(f"DROP TABLE {VERSION_TABLE}"))
    again = Store.open(store.engine.url.render_as_string(hide_password=False))
    try:
        ensure_schema(again.engine)
        with again.reading() as conn:
            assert conn.execute(select(ApiKeyRow.id)).scalars().all() == ["k_1"]
            assert conn.execute(text(f"SELECT count(*) FROM {VERSION_TABLE}")).scalar_one() == 1
    finally:
        again.close()
