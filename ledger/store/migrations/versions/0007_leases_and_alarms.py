"""leases: one sequencer, one webhook deliverer at a time (the alarms table is the service's:
api/migrations, s0001)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    leases = op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=True),
        sa.Column("term", sa.BigInteger(), nullable=False),
        sa.Column("beat", sa.BigInteger(), nullable=False),
        sa.Column("renewed_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )
    # The rows exist from the start, so that taking a lease is always an update of one row.
    op.bulk_insert(
        leases,
        [
            {"name": name, "holder": None, "term": 0, "beat": 0, "renewed_us": 0}
            for name in ("sequencer", "delivery")
        ],
    )


def downgrade() -> None:
    op.drop_table("leases")
