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
    # (API key ids and expiry: the service's tables moved to api/migrations, s0001.)


def downgrade() -> None:
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
