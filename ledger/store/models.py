"""SQLAlchemy 2.0 schema: records, log nodes, checkpoints, the registry mirror, EPCIS index.

Times are stored as integer microseconds since the Unix epoch (UTC): they compare and index the
same way on SQLite and PostgreSQL, and round-trip exactly to RFC 3339.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# On SQLite an INTEGER PRIMARY KEY is the rowid itself: one b-tree instead of two.
RowKey = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class LogState(Base):
    """One row: the committed size of the log, bumped with optimistic concurrency."""

    __tablename__ = "log_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)


class RecordRow(Base):
    """A logged record. `canonical` is NULL once erased; the leaf hash stays forever."""

    __tablename__ = "records"

    leaf_index: Mapped[int] = mapped_column(RowKey, primary_key=True, autoincrement=False)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    participant: Mapped[str] = mapped_column(String(128), nullable=False)
    signer: Mapped[str] = mapped_column(String(42), nullable=False)
    created_us: Mapped[int] = mapped_column(BigInteger, nullable=False)
    appended_us: Mapped[int] = mapped_column(BigInteger, nullable=False)
    canonical: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    signature: Mapped[bytes] = mapped_column(LargeBinary(65), nullable=False)
    erased_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (
        Index(None, "kind", "leaf_index"),
        Index(None, "participant", "leaf_index"),
        Index(None, "created_us"),
    )


class Node(Base):
    """A perfect subtree root of the Merkle tree, keyed by `NodeID.key`."""

    __tablename__ = "nodes"

    key: Mapped[int] = mapped_column(RowKey, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)


class CheckpointRow(Base):
    """A signed-off (size, root) and, once on chain, where it was anchored."""

    __tablename__ = "checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    created_us: Mapped[int] = mapped_column(BigInteger, nullable=False)
    chain_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    contract: Mapped[str | None] = mapped_column(String(42), nullable=True)
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    anchored_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class LeaseRow(Base):
    """Who may act alone for the deployment (the sequencer): `term` grows with every change of
    holder and fences the holder's writes; `beat` grows while the holder is alive."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200), nullable=True)
    term: Mapped[int] = mapped_column(BigInteger, nullable=False)
    beat: Mapped[int] = mapped_column(BigInteger, nullable=False)
    renewed_us: Mapped[int] = mapped_column(BigInteger, nullable=False)


class ParticipantRow(Base):
    """A participant as the registry mirror last saw it: what other tables refer to.

    Written by `Registry.sync` only and never decided from: the registry is folded from
    `registry_events`, which are checked against the chain.
    """

    __tablename__ = "participants"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(256), nullable=False)
    roles: Mapped[str] = mapped_column(String(256), nullable=False)  # comma-separated
    created_us: Mapped[int] = mapped_column(BigInteger, nullable=False)


class RegistryEventRow(Base):
    """The mirror of the ProvenanceLedger registry: its events, in chain order.

    Participants, roles over time and keys with their validity are folded from these rows
    (`ledger.registry.fold`); `Registry.sync` appends what the chain adds and refuses a
    mirror whose rows the chain does not have.
    """

    __tablename__ = "registry_events"

    block_number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    log_index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(32), nullable=False)
    participant: Mapped[str | None] = mapped_column(String(128), nullable=True)
    id_hash: Mapped[str] = mapped_column(String(66), nullable=False)
    display_name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    roles: Mapped[int | None] = mapped_column(Integer, nullable=True)
    key: Mapped[str | None] = mapped_column(String(42), nullable=True)
    authorized_by: Mapped[str | None] = mapped_column(String(42), nullable=True)
    tx_hash: Mapped[str] = mapped_column(String(66), nullable=False)
    block_hash: Mapped[str] = mapped_column(String(66), nullable=False)
    timestamp: Mapped[int] = mapped_column(BigInteger, nullable=False)  # Unix seconds


# EPC URIs are compared byte by byte: pattern queries (`urn:epc:idpat:...`) become range scans
# over the index, which match prefixes only in code-point order. SQLite compares TEXT that way
# by default; PostgreSQL follows the database collation unless told otherwise.
EpcText = String(512).with_variant(String(512, collation="C"), "postgresql")


class EpcisEventRow(Base):
    """An EPCIS event in the log: its CBV 2.0 hash ID and the fields queries filter on.

    The event itself is the payload of the record at `leaf_index` (kind `epcis_event`).
    Vocabulary values are stored in one form: CBV values by their bare name (`shipping`),
    anything else as the URI given.
    """

    __tablename__ = "epcis_events"

    leaf_index: Mapped[int] = mapped_column(
        RowKey, ForeignKey("records.leaf_index"), primary_key=True, autoincrement=False
    )
    # The reference implementation's hash ID of the event as captured, and of the event as
    # stored (keys sorted): they differ when the order of keys mattered (ledger.epcis.hashid).
    # Duplicates are found by the second, which does not depend on how the JSON was written.
    event_id: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    stored_event_id: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    event_type: Mapped[str] = mapped_column(String(32), nullable=False)
    event_time_us: Mapped[int] = mapped_column(BigInteger, nullable=False)
    action: Mapped[str | None] = mapped_column(String(8), nullable=True)
    biz_step: Mapped[str | None] = mapped_column(String(256), nullable=True)
    disposition: Mapped[str | None] = mapped_column(String(256), nullable=True)
    read_point: Mapped[str | None] = mapped_column(String(512), nullable=True)
    biz_location: Mapped[str | None] = mapped_column(String(512), nullable=True)
    # forgeproof extension: the model manifest that judged (inspections, predictions).
    model_digest: Mapped[str | None] = mapped_column(String(66), nullable=True)
    # The record that declared this event in error (EPCIS 2.0 section 7.4.1.4): the same
    # event with an `errorDeclaration`, hence the same hash ID. Queries return that record.
    error_declared_by: Mapped[int | None] = mapped_column(
        RowKey, ForeignKey("records.leaf_index"), nullable=True
    )

    __table_args__ = (
        Index(None, "event_time_us"),
        Index(None, "biz_step"),
        Index(None, "disposition"),
        Index(None, "model_digest"),
        # Genealogy reads the (few) events declared in error through it, once per query.
        Index(None, "error_declared_by"),
    )


class EpcisLinkRow(Base):
    """An identifier an event mentions, and in which role.

    Roles: `epc` (epcList), `epc_class` (quantityList), `parent` (parentID), `child`
    (childEPCs), `child_class` (childQuantityList), `input` / `input_class`, `output` /
    `output_class`, `xform` (transformationID). Genealogy follows input -> output and
    child -> parent; the primary key serves lookups by identifier, the second index the
    other identifiers of an event.
    """

    __tablename__ = "epcis_links"

    epc: Mapped[str] = mapped_column(EpcText, primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    leaf_index: Mapped[int] = mapped_column(
        RowKey, ForeignKey("epcis_events.leaf_index"), primary_key=True, autoincrement=False
    )

    __table_args__ = (
        Index(None, "leaf_index", "role", "epc"),
        # The primary key is the only access path by identifier: no rowid b-tree beside it.
        {"sqlite_with_rowid": False},
    )


class EpcisEdgeRow(Base):
    """A genealogy edge, derived at capture from the links (ledger.epcis.edges): `source`
    went into `target` through the event at `leaf_index` and, for two events joined by a
    transformationID, the event at `other` (else `other` = `leaf_index`).

    Edges of events later declared in error stay; readers leave them out. The primary key,
    by source, is the whole row: a recall walks it index-only.
    """

    __tablename__ = "epcis_edges"

    source: Mapped[str] = mapped_column(EpcText, primary_key=True)
    target: Mapped[str] = mapped_column(EpcText, primary_key=True)
    relation: Mapped[str] = mapped_column(String(16), primary_key=True)
    leaf_index: Mapped[int] = mapped_column(
        RowKey, ForeignKey("epcis_events.leaf_index"), primary_key=True, autoincrement=False
    )
    other: Mapped[int] = mapped_column(
        RowKey, ForeignKey("epcis_events.leaf_index"), primary_key=True, autoincrement=False
    )

    __table_args__ = ({"sqlite_with_rowid": False},)
