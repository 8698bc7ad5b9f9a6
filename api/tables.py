"""The provenance service's own tables: API keys, asset and product assignments, record tags,
webhook subscriptions and their outbox, registered models, alarms. The ledger's tables (records,
nodes, checkpoints, the registry mirror, the EPCIS index, leases) are `ledger.store.models`;
these share its declarative base (their foreign keys name the ledger's `participants`) but
have migrations of their own (`api/migrations`, version table `alembic_version_api`), which
`ensure_schema` runs once per database and process.
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    BigInteger,
    Boolean,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ledger.store import take_turns
from ledger.store.models import Base, RowKey

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_api"

_migrated: weakref.WeakSet[Engine] = weakref.WeakSet()
_migrating = threading.Lock()


def ensure_schema(engine: Engine) -> None:
    """Create or upgrade the service's tables in `engine`'s database (once per engine;
    idempotent and safe from several processes at once)."""
    if engine in _migrated:
        return
    with _migrating:
        if engine in _migrated:
            return
        with engine.begin() as conn:
            take_turns(conn)
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        _migrated.add(engine)


class AlarmRow(Base):
    """An alarm condition and the record that raised it (None while it is clear)."""

    __tablename__ = "alarms"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    raised_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # leaf index
    changed_us: Mapped[int] = mapped_column(BigInteger, nullable=False)


class ApiKeyRow(Base):
    """An API key of the provenance service: only its SHA-256 is kept.

    `id` names the key in listings and revocations (it is not the secret, nor derived from it).
    """

    __tablename__ = "api_keys"

    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    id: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    participant: Mapped[str] = mapped_column(
        String(128), ForeignKey("participants.id"), nullable=False, index=True
    )
    role: Mapped[str] = mapped_column(String(32), nullable=False)
    label: Mapped[str] = mapped_column(String(128), nullable=False)
    created_us: Mapped[int] = mapped_column(BigInteger, nullable=False)
    expires_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class AssetAssignment(Base):
    """Which maintenance partner services which asset (an engine, a machine, a line)."""

    __tablename__ = "asset_assignments"

    asset: Mapped[str] = mapped_column(String(128), primary_key=True)
    maintainer: Mapped[str] = mapped_column(
        String(128), ForeignKey("participants.id"), primary_key=True
    )


class ProductAssignment(Base):
    """Which supplier supplies which product: it reads that product's demand forecasts.

    Each row indexes the operator-signed `product_assignment` record that made it (`leaf_index`,
    `api.products`): a demand scorecard counts a settled forecast for the suppliers assigned to
    its product before the forecast was logged, which anyone can recompute from receipts."""

    __tablename__ = "product_assignments"

    product: Mapped[str] = mapped_column(String(128), primary_key=True)
    supplier: Mapped[str] = mapped_column(
        String(128), ForeignKey("participants.id"), primary_key=True, index=True
    )
    leaf_index: Mapped[int] = mapped_column(BigInteger, nullable=False)


class RecordTag(Base):
    """Searchable facts about a record beyond its envelope: the asset and model it cites."""

    __tablename__ = "record_tags"

    leaf_index: Mapped[int] = mapped_column(RowKey, primary_key=True, autoincrement=False)
    asset: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    model: Mapped[str | None] = mapped_column(String(66), nullable=True, index=True)
    # The product a demand forecast, an outcome settling forecasts or a product assignment is
    # about (`api.forecasts.record_product`): suppliers read the forecasts of their products.
    product: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)


class Subscription(Base):
    """A maintenance partner's webhook: deliveries are signed with its secret."""

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    participant: Mapped[str] = mapped_column(
        String(128), ForeignKey("participants.id"), nullable=False, index=True
    )
    url: Mapped[str] = mapped_column(String(2048), nullable=False)
    # Sealed with the deployment secret (ledger.keystore.SecretBox); the plain secret is
    # shown to the subscriber once.
    secret: Mapped[str] = mapped_column(String(512), nullable=False)
    created_us: Mapped[int] = mapped_column(BigInteger, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class Delivery(Base):
    """The webhook outbox: one row per (subscription, record), retried until delivered."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscription: Mapped[str] = mapped_column(
        String(36), ForeignKey("subscriptions.id"), nullable=False
    )
    leaf_index: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # pending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_us: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_error: Mapped[str | None] = mapped_column(String(512), nullable=True)
    delivered_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (
        UniqueConstraint("subscription", "leaf_index"),
        Index(None, "status", "next_attempt_us"),
    )


class ModelRow(Base):
    """A registered model manifest; predictions cite its digest."""

    __tablename__ = "models"

    digest: Mapped[str] = mapped_column(String(66), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    task: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    leaf_index: Mapped[int] = mapped_column(BigInteger, nullable=False)
    publisher: Mapped[str] = mapped_column(String(128), nullable=False)
    registered_us: Mapped[int] = mapped_column(BigInteger, nullable=False)


class PortalSession(Base):
    """A browser's sign-in to the portal (api/portal/sessions.py): it acts as the API key it was
    opened with, so revoking that key (or its participant's role) ends the session too. Only
    the SHA-256 of the cookie's token is kept: a reader of the database cannot sign in."""

    __tablename__ = "portal_sessions"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    key_hash: Mapped[bytes] = mapped_column(
        LargeBinary(32), ForeignKey("api_keys.key_hash"), nullable=False, index=True
    )
    csrf: Mapped[str] = mapped_column(String(64), nullable=False)
    created_us: Mapped[int] = mapped_column(BigInteger, nullable=False)
    expires_us: Mapped[int] = mapped_column(BigInteger, nullable=False)
    ended_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Explanation(Base):
    """An inspection's Grad-CAM overlay (PNG), kept beside its record: the signed record holds
    the image's SHA-256 (`explanation.gradcam_sha256`), so whoever shows it can prove it is the
    one the model produced with the verdict."""

    __tablename__ = "explanations"

    leaf_index: Mapped[int] = mapped_column(RowKey, primary_key=True, autoincrement=False)
    png: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class RecordAsset(Base):
    """The assets a record is about beyond its one tag: an alarm on a model's broken promises
    names every asset whose outcomes showed it, and their maintainers read it (`api.access`)."""

    __tablename__ = "record_assets"

    leaf_index: Mapped[int] = mapped_column(RowKey, primary_key=True, autoincrement=False)
    asset: Mapped[str] = mapped_column(String(128), primary_key=True, index=True)
