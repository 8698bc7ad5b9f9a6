"""Alembic environment of the service's tables: runs on the connection that
`api.tables.ensure_schema` hands over, with a version table of its own (the ledger's schema
has `alembic_version`)."""

from __future__ import annotations

from alembic import context

from api.tables import VERSION_TABLE, Base

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
