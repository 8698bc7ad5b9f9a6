"""products assigned to suppliers, and the product a record is about

Revision ID: s0004
Revises: s0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s0004"
down_revision = "s0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Created only where missing, like s0001-s0003.
    inspector = sa.inspect(op.get_bind())
    if "product_assignments" not in set(inspector.get_table_names()):
        op.create_table(
            "product_assignments",
            sa.Column("product", sa.String(length=128), nullable=False),
            sa.Column("supplier", sa.String(length=128), nullable=False),
            sa.Column("leaf_index", sa.BigInteger(), nullable=False),
            sa.ForeignKeyConstraint(
                ["supplier"],
                ["participants.id"],
                name=op.f("fk_product_assignments_supplier_participants"),
            ),
            sa.PrimaryKeyConstraint("product", "supplier", name=op.f("pk_product_assignments")),
        )
        with op.batch_alter_table("product_assignments", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_product_assignments_supplier"), ["supplier"], unique=False
            )
    if "product" not in {c["name"] for c in inspector.get_columns("record_tags")}:
        with op.batch_alter_table("record_tags", schema=None) as batch_op:
            batch_op.add_column(sa.Column("product", sa.String(length=128), nullable=True))
            batch_op.create_index(batch_op.f("ix_record_tags_product"), ["product"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("record_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_record_tags_product"))
        batch_op.drop_column("product")
    op.drop_table("product_assignments")
