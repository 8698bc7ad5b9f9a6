"""EPCIS genealogy edges as a table (recall walks it set-based), and an index on the events
declared in error

The edges are derived from the links already indexed (ledger.epcis.edges.rebuild_edges, the
statements capture runs for new events).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.epcis.edges import rebuild_edges

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ROW_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_EPC = sa.String(length=512).with_variant(sa.String(length=512, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "epcis_edges",
        sa.Column("source", _EPC, nullable=False),
        sa.Column("target", _EPC, nullable=False),
        sa.Column("relation", sa.String(length=16), nullable=False),
        sa.Column("leaf_index", _ROW_KEY, autoincrement=False, nullable=False),
        sa.Column("other", _ROW_KEY, autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(
            ["leaf_index"],
            ["epcis_events.leaf_index"],
            name=op.f("fk_epcis_edges_leaf_index_epcis_events"),
        ),
        sa.ForeignKeyConstraint(
            ["other"], ["epcis_events.leaf_index"], name=op.f("fk_epcis_edges_other_epcis_events")
        ),
        sa.PrimaryKeyConstraint(
            "source", "target", "relation", "leaf_index", "other", name=op.f("pk_epcis_edges")
        ),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("epcis_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_epcis_events_error_declared_by"), ["error_declared_by"]
        )
    rebuild_edges(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("epcis_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_epcis_events_error_declared_by"))
    op.drop_table("epcis_edges")
