"""registry mirror: the chain's registry events replace the keys table; API key ids and expiry

The contract became the registry of record: keys and roles over time are folded from its
events, mirrored in `registry_events` and checked against the chain on every sync. The old
`keys` table (validity in local microseconds, written by the operator's database alone) is
dropped; `forgeproof registry sync` fills the mirror from the chain.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registry_events",
        sa.Column("block_number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("log_index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("participant", sa.String(length=128), nullable=True),
        sa.Column("id_hash", sa.String(length=66), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=True),
        sa.Column("roles", sa.Integer(), nullable=True),
        sa.Column("key", sa.String(length=42), nullable=True),
        sa.Column("authorized_by", sa.String(length=42), nullable=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("block_number", "log_index", name=op.f("pk_registry_events")),
    )
    with op.batch_alter_table("keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_keys_participant"))
    op.drop_table("keys")

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("expires_us", sa.BigInteger(), nullable=True))
    conn = op.get_bind()
    table = sa.table("api_keys", sa.column("key_hash", sa.LargeBinary), sa.column("id", sa.String))
    for (key_hash,) in conn.execute(sa.select(table.c.key_hash)).all():
        # Existing keys get an id derived from their hash's hash: stable, and no help in
        # guessing the key.
        key_id = "k_" + hashlib.sha256(bytes(key_hash)).hexdigest()[:16]
        conn.execute(table.update().where(table.c.key_hash == key_hash).values(id=key_id))
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.alter_column("id", existing_type=sa.String(length=32), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_api_keys_id"), ["id"])


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_api_keys_id"), type_="unique")
        batch_op.drop_column("expires_us")
        batch_op.drop_column("id")
    op.create_table(
        "keys",
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("participant", sa.String(length=128), nullable=False),
        sa.Column("valid_from_us", sa.BigInteger(), nullable=False),
        sa.Column("revoked_us", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(length=256), nullable=True),
        sa.ForeignKeyConstraint(
            ["participant"], ["participants.id"], name=op.f("fk_keys_participant_participants")
        ),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_keys")),
    )
    with op.batch_alter_table("keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_keys_participant"), ["participant"], unique=False)
    op.drop_table("registry_events")
