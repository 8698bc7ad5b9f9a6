"""provenance service tables

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # the service's tables moved to api's own migrations (api/migrations, s0001)


def downgrade() -> None:
    pass
