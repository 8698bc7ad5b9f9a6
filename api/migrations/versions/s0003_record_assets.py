"""the assets an alarm on a model's broken promises is about

Revision ID: s0003
Revises: s0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s0003"
down_revision = "s0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Created only where missing, like s0001 and s0002.
    if "record_assets" in set(sa.inspect(op.get_bind()).get_table_names()):
        return
    op.create_table(
        "record_assets",
        sa.Column(
            "leaf_index",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("asset", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("leaf_index", "asset", name=op.f("pk_record_assets")),
    )
    with op.batch_alter_table("record_assets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_record_assets_asset"), ["asset"], unique=False)


def downgrade() -> None:
    op.drop_table("record_assets")
