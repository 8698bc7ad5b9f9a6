"""EPCIS events: the hash ID of the stored form beside the one of the captured document

Events were indexed under the hash ID of their keys sorted. They are now indexed under the
reference implementation's ID of the event as captured (what other repositories compute), with
the ID of the stored form beside it; for the events indexed before, both are the old ID.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("epcis_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stored_event_id", sa.String(length=128), nullable=True))
    op.execute("UPDATE epcis_events SET stored_event_id = event_id")
    with op.batch_alter_table("epcis_events", schema=None) as batch_op:
        batch_op.alter_column(
            "stored_event_id", existing_type=sa.String(length=128), nullable=False
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_epcis_events_stored_event_id"), ["stored_event_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("epcis_events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_epcis_events_stored_event_id"), type_="unique")
        batch_op.drop_column("stored_event_id")
