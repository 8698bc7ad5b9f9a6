"""Alembic environment: runs on the connection that `ledger.store.migrate` hands over."""

from __future__ import annotations

from alembic import context

from ledger.store.models import Base

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
