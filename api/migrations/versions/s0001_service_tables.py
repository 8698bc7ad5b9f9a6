"""the provenance service's tables, in their own migrations (they were the ledger's 0003,
0004, 0006 and 0007 before the service's schema moved to api)

A deployment made before the move has them already, created by the ledger's migrations of
that time: each is created only where it is missing.

Revision ID: s0001
Revises:
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "s0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "models" not in existing:
        op.create_table(
            "models",
            sa.Column("digest", sa.String(length=66), nullable=False),
            sa.Column("name", sa.String(length=128), nullable=False),
            sa.Column("task", sa.String(length=32), nullable=False),
            sa.Column("leaf_index", sa.BigInteger(), nullable=False),
            sa.Column("publisher", sa.String(length=128), nullable=False),
            sa.Column("registered_us", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("digest", name=op.f("pk_models")),
        )
        with op.batch_alter_table("models", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_models_task"), ["task"], unique=False)

    if "record_tags" not in existing:
        op.create_table(
            "record_tags",
            sa.Column(
                "leaf_index",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                autoincrement=False,
                nullable=False,
            ),
            sa.Column("asset", sa.String(length=128), nullable=True),
            sa.Column("model", sa.String(length=66), nullable=True),
            sa.PrimaryKeyConstraint("leaf_index", name=op.f("pk_record_tags")),
        )
        with op.batch_alter_table("record_tags", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_record_tags_asset"), ["asset"], unique=False)
            batch_op.create_index(batch_op.f("ix_record_tags_model"), ["model"], unique=False)

    if "api_keys" not in existing:
        op.create_table(
            "api_keys",
            sa.Column("key_hash", sa.LargeBinary(length=32), nullable=False),
            sa.Column("id", sa.String(length=32), nullable=False),
            sa.Column("participant", sa.String(length=128), nullable=False),
            sa.Column("role", sa.String(length=32), nullable=False),
            sa.Column("label", sa.String(length=128), nullable=False),
            sa.Column("created_us", sa.BigInteger(), nullable=False),
            sa.Column("expires_us", sa.BigInteger(), nullable=True),
            sa.Column("revoked_us", sa.BigInteger(), nullable=True),
            sa.ForeignKeyConstraint(
                ["participant"],
                ["participants.id"],
                name=op.f("fk_api_keys_participant_participants"),
            ),
            sa.PrimaryKeyConstraint("key_hash", name=op.f("pk_api_keys")),
            sa.UniqueConstraint("id", name=op.f("uq_api_keys_id")),
        )
        with op.batch_alter_table("api_keys", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_api_keys_participant"), ["participant"], unique=False
            )

    if "asset_assignments" not in existing:
        op.create_table(
            "asset_assignments",
            sa.Column("asset", sa.String(length=128), nullable=False),
            sa.Column("maintainer", sa.String(length=128), nullable=False),
            sa.ForeignKeyConstraint(
                ["maintainer"],
                ["participants.id"],
                name=op.f("fk_asset_assignments_maintainer_participants"),
            ),
            sa.PrimaryKeyConstraint("asset", "maintainer", name=op.f("pk_asset_assignments")),
        )
        op.create_table(
            "subscriptions",
            sa.Column("id", sa.String(length=36), nullable=False),
            sa.Column("participant", sa.String(length=128), nullable=False),
            sa.Column("url", sa.String(length=2048), nullable=False),
            sa.Column("secret", sa.String(length=512), nullable=False),
            sa.Column("created_us", sa.BigInteger(), nullable=False),
            sa.Column("active", sa.Boolean(), nullable=False),
            sa.ForeignKeyConstraint(
                ["participant"],
                ["participants.id"],
                name=op.f("fk_subscriptions_participant_participants"),
            ),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        )
        with op.batch_alter_table("subscriptions", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_subscriptions_participant"), ["participant"], unique=False
            )

    if "deliveries" not in existing:
        op.create_table(
            "deliveries",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("subscription", sa.String(length=36), nullable=False),
            sa.Column("leaf_index", sa.BigInteger(), nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("next_attempt_us", sa.BigInteger(), nullable=False),
            sa.Column("last_error", sa.String(length=512), nullable=True),
            sa.Column("delivered_us", sa.BigInteger(), nullable=True),
            sa.ForeignKeyConstraint(
                ["subscription"],
                ["subscriptions.id"],
                name=op.f("fk_deliveries_subscription_subscriptions"),
            ),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
            sa.UniqueConstraint(
                "subscription", "leaf_index", name=op.f("uq_deliveries_subscription_leaf_index")
            ),
        )
        with op.batch_alter_table("deliveries", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_deliveries_status_next_attempt_us"),
                ["status", "next_attempt_us"],
                unique=False,
            )

    if "alarms" not in existing:
        op.create_table(
            "alarms",
            sa.Column("name", sa.String(length=64), nullable=False),
            sa.Column("raised_by", sa.BigInteger(), nullable=True),
            sa.Column("changed_us", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("name", name=op.f("pk_alarms")),
        )


def downgrade() -> None:
    for table in ("alarms", "deliveries", "subscriptions", "asset_assignments", "api_keys"):
        op.drop_table(table)
    op.drop_table("record_tags")
    op.drop_table("models")
