"""subscriptions.secret holds a sealed secret (Fernet token), longer than the plain one

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # the service's tables moved to api's own migrations (api/migrations, s0001)


def downgrade() -> None:
    pass
