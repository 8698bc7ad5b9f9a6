"""the portal's sessions and the inspections' Grad-CAM overlays

Revision ID: s0002
Revises: s0001
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s0002"
down_revision = "s0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Like s0001, each is created only where missing: a database whose version table was lost
    # (see tests/api/test_tables.py) is upgraded from the start again.
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "portal_sessions" not in existing:
        _sessions()
    if "explanations" not in existing:
        _explanations()


def _sessions() -> None:
    op.create_table(
        "portal_sessions",
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
        sa.Column("ended_us", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["key_hash"], ["api_keys.key_hash"], name=op.f("fk_portal_sessions_key_hash_api_keys")
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_portal_sessions")),
    )
    with op.batch_alter_table("portal_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_portal_sessions_key_hash"), ["key_hash"], unique=False)


def _explanations() -> None:
    op.create_table(
        "explanations",
        sa.Column(
            "leaf_index",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("png", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("leaf_index", name=op.f("pk_explanations")),
    )


def downgrade() -> None:
    op.drop_table("explanations")
    op.drop_table("portal_sessions")
