"""EPCIS event index: hash IDs, query fields and identifier links

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ROW_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_EPC = sa.String(length=512).with_variant(sa.String(length=512, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "epcis_events",
        sa.Column("leaf_index", _ROW_KEY, autoincrement=False, nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("event_time_us", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=True),
        sa.Column("biz_step", sa.String(length=256), nullable=True),
        sa.Column("disposition", sa.String(length=256), nullable=True),
        sa.Column("read_point", sa.String(length=512), nullable=True),
        sa.Column("biz_location", sa.String(length=512), nullable=True),
        sa.Column("model_digest", sa.String(length=66), nullable=True),
        sa.Column("error_declared_by", _ROW_KEY, nullable=True),
        sa.ForeignKeyConstraint(
            ["leaf_index"], ["records.leaf_index"], name=op.f("fk_epcis_events_leaf_index_records")
        ),
        sa.ForeignKeyConstraint(
            ["error_declared_by"],
            ["records.leaf_index"],
            name=op.f("fk_epcis_events_error_declared_by_records"),
        ),
        sa.PrimaryKeyConstraint("leaf_index", name=op.f("pk_epcis_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_epcis_events_event_id")),
    )
    with op.batch_alter_table("epcis_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_epcis_events_event_time_us"), ["event_time_us"])
        batch_op.create_index(batch_op.f("ix_epcis_events_biz_step"), ["biz_step"])
        batch_op.create_index(batch_op.f("ix_epcis_events_disposition"), ["disposition"])
        batch_op.create_index(batch_op.f("ix_epcis_events_model_digest"), ["model_digest"])

    op.create_table(
        "epcis_links",
        sa.Column("epc", _EPC, nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("leaf_index", _ROW_KEY, autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(
            ["leaf_index"],
            ["epcis_events.leaf_index"],
            name=op.f("fk_epcis_links_leaf_index_epcis_events"),
        ),
        sa.PrimaryKeyConstraint("epc", "role", "leaf_index", name=op.f("pk_epcis_links")),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("epcis_links", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_epcis_links_leaf_index_role_epc"), ["leaf_index", "role", "epc"]
        )


def downgrade() -> None:
    with op.batch_alter_table("epcis_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_epcis_links_leaf_index_role_epc"))
    op.drop_table("epcis_links")
    with op.batch_alter_table("epcis_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_epcis_events_model_digest"))
        batch_op.drop_index(batch_op.f("ix_epcis_events_disposition"))
        batch_op.drop_index(batch_op.f("ix_epcis_events_biz_step"))
        batch_op.drop_index(batch_op.f("ix_epcis_events_event_time_us"))
    op.drop_table("epcis_events")
