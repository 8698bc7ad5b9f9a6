"""The append-only log: records and Merkle nodes in the store, proofs from stored nodes.

Appends are O(log n): an in-memory `Frontier` yields the perfect subtrees each leaf completes,
and only those are written. Proofs read the O(log n) nodes they need in one query. Every
append happens under the `log_state` row lock, so several processes can share one database: a
writer that finds the log grown under it reloads the frontier before appending.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from ledger.errors import Conflict, NotFound, ProofError
from ledger.ingest import Accepted
from ledger.merkle import (
    EMPTY_ROOT,
    Frontier,
    NodeID,
    consistency_plan,
    fold_right,
    inclusion_plan,
    materialize,
    range_nodes,
)
from ledger.records import Record
from ledger.registry import now_us
from ledger.store import Store
from ledger.store.models import CheckpointRow, LogState, Node, RecordRow

# A check run inside a write transaction that may refuse it (the sequencer's lease).
Fence = Callable[[Connection], None]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A commitment to the first `size` leaves; anchored once on chain."""

    size: int
    root: bytes
    created_us: int = 0
    chain_id: int | None = None
    contract: str | None = None
    tx_hash: str | None = None
    block_number: int | None = None

    @property
    def anchored(self) -> bool:
        return self.tx_hash is not None

    def anchor_json(self) -> dict[str, object] | None:
        """Where it is on chain, as receipts carry it; None until anchored."""
        if not self.anchored:
            return None
        return {
            "chain_id": self.chain_id,
            "contract": self.contract,
            "tx_hash": self.tx_hash,
            "block_number": self.block_number,
        }


@dataclass(frozen=True, slots=True)
class InclusionProof:
    index: int
    size: int
    hashes: list[bytes]


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    size1: int
    size2: int
    hashes: list[bytes]


@dataclass(frozen=True, slots=True)
class StoredRecord:
    index: int
    leaf_hash: bytes
    kind: str
    participant: str
    signer: str
    created_us: int
    appended_us: int
    canonical: bytes | None  # None once erased
    signature: bytes

    def record(self) -> Record:
        if self.canonical is None:
            raise NotFound(f"record {self.index} has been erased; only its leaf hash remains")
        return Record.parse(json.loads(self.canonical))


@dataclass(frozen=True, slots=True)
class Appended:
    index: int
    leaf_hash: bytes
    duplicate: bool  # already in the log: the earlier index is returned, nothing is written


# Built once: proofs are hot, and building the statement costs more than running it.
_NODES = select(Node.key, Node.hash).where(Node.key.in_(bindparam("keys", expanding=True)))


def _read_nodes(conn: Connection, ids: Sequence[NodeID]) -> list[bytes]:
    keys = [n.key for n in ids]
    found: dict[int, bytes] = {}
    for i in range(0, len(keys), 500):
        found.update(conn.execute(_NODES, {"keys": keys[i : i + 500]}).all())
    missing = [ids[i] for i, k in enumerate(keys) if k not in found]
    if missing:
        raise ProofError(f"{len(missing)} node(s) missing from the store, first {missing[0]}")
    return [found[k] for k in keys]


_INSERT_RECORDS = (
    "INSERT INTO records (leaf_index, leaf_hash, kind, participant, signer, created_us,"
    " appended_us, canonical, signature) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})"
)
_INSERT_NODES = "INSERT INTO nodes (key, hash) VALUES ({p}, {p})"
_SELECT_EXISTING = "SELECT leaf_hash, leaf_index FROM records WHERE leaf_hash IN ({})"
_LOOKUP = 1000  # hashes per lookup: well under SQLite's and PostgreSQL's parameter limits


class Appender:
    """Appends within one transaction; see `Log.appending`."""

    def __init__(self, conn: Connection, frontier: Frontier) -> None:
        self.conn = conn
        self.frontier = frontier
        self._seen: dict[bytes, int] = {}

    def add(self, items: Sequence[Accepted]) -> list[Appended]:
        """Append verified records in order; a record already logged is not logged twice."""
        if not items:
            return []
        # Straight to the driver: SQLAlchemy's per-value type processing cost more than
        # the statements themselves (bench/ledger.py). Plain ints and bytes need none.
        p = "?" if self.conn.dialect.paramstyle == "qmark" else "%s"
        hashes = [a.leaf_hash for a in items]
        existing: dict[bytes, int] = {}
        for i in range(0, len(hashes), _LOOKUP):
            part = tuple(hashes[i : i + _LOOKUP])
            sql = _SELECT_EXISTING.format(",".join([p] * len(part)))
            existing.update(self.conn.exec_driver_sql(sql, part).all())
        now = now_us()
        out: list[Appended] = []
        rows: list[tuple[object, ...]] = []
        nodes: list[tuple[int, bytes]] = []
        frontier, seen = self.frontier, self._seen
        for a in items:
            leaf = a.leaf_hash
            earlier = existing.get(leaf)
            if earlier is None:
                earlier = seen.get(leaf)
            if earlier is not None:
                out.append(Appended(earlier, leaf, True))
                continue
            index = frontier.size
            frontier.push(leaf, nodes)
            rows.append(
                (
                    index,
                    leaf,
                    a.kind,
                    a.participant,
                    a.signer,
                    a.created_us,
                    now,
                    a.canonical,
                    a.signature,
                )
            )
            seen[leaf] = index
            out.append(Appended(index, leaf, False))
        if rows:
            self.conn.exec_driver_sql(_INSERT_RECORDS.format(p=p), rows)
            self.conn.exec_driver_sql(_INSERT_NODES.format(p=p), nodes)
        return out


class Log:
    """The deployment's one append-only log."""

    def __init__(self, store: Store) -> None:
        self.store = store
        with store.reading() as conn:
            self._frontier = self._load_frontier(conn)

    @staticmethod
    def _load_frontier(conn: Connection) -> Frontier:
        size = conn.execute(select(LogState.size).where(LogState.id == 1)).scalar_one()
        return Frontier(size, _read_nodes(conn, Frontier.nodes_for(size)))

    @property
    def size(self) -> int:
        """The committed size, as of this process's last append or `refresh`."""
        return self._frontier.size

    def refresh(self) -> int:
        with self.store.reading() as conn:
            self._frontier = self._load_frontier(conn)
        return self._frontier.size

    @contextmanager
    def appending(self, *, cache_mib: int | None = None) -> Iterator[Appender]:
        """One atomic append: all records added inside are logged, or none are.

        The `log_state` row is locked first, so concurrent writers take turns; the in-memory
        frontier is replaced only after the commit succeeds. `cache_mib` widens SQLite's page
        cache for this append: bulk appends insert random leaf hashes into a unique index, and
        once that index outgrows the default 2 MiB cache every insert goes to the OS for its
        pages (bench/ledger.py: twice the time per record at a million records).
        """
        with self.store.transaction() as conn:
            restore = None
            if cache_mib is not None and conn.dialect.name == "sqlite":
                # Per connection, and pooled connections live on: put it back afterwards.
                restore = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
                conn.exec_driver_sql(f"PRAGMA cache_size=-{int(cache_mib) * 1024}")
            try:
                size = _lock_log(conn)
                frontier = (
                    Frontier(self._frontier.size, self._frontier.hashes)
                    if size == self._frontier.size
                    else self._load_frontier(conn)
                )
                appender = Appender(conn, frontier)
                yield appender
                if frontier.size != size:
                    conn.execute(
                        update(LogState).where(LogState.id == 1).values(size=frontier.size)
                    )
            finally:
                if restore is not None:
                    with suppress(SQLAlchemyError):  # a broken connection is discarded anyway
                        conn.exec_driver_sql(f"PRAGMA cache_size={int(restore)}")
        self._frontier = frontier

    def append(self, items: Sequence[Accepted]) -> list[Appended]:
        with self.appending() as app:
            return app.add(items)

    # --- reading -------------------------------------------------------------------------

    def committed_size(self, conn: Connection | None = None) -> int:
        if conn is None:
            with self.store.reading() as c:
                return self.committed_size(c)
        return int(conn.execute(select(LogState.size).where(LogState.id == 1)).scalar_one())

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first `size` leaves (default: the committed size)."""
        with self.store.reading() as conn:
            size = self.committed_size(conn) if size is None else size
            self._check_size(conn, size)
            if size == 0:
                return EMPTY_ROOT
            return fold_right(_read_nodes(conn, range_nodes(0, size)))

    def inclusion_proof(self, index: int, size: int) -> InclusionProof:
        with self.store.reading() as conn:
            self._check_size(conn, size)
            plan = inclusion_plan(index, size)
            return InclusionProof(
                index, size, materialize(plan, lambda ids: _read_nodes(conn, ids))
            )

    def consistency_proof(self, size1: int, size2: int) -> ConsistencyProof:
        with self.store.reading() as conn:
            self._check_size(conn, size2)
            plan = consistency_plan(size1, size2)
            hashes = materialize(plan, lambda ids: _read_nodes(conn, ids))
            return ConsistencyProof(size1, size2, hashes)

    def _check_size(self, conn: Connection, size: int) -> None:
        # The log only grows: a size this process has seen committed needs no query.
        if 0 <= size <= self._frontier.size:
            return
        have = self.committed_size(conn)
        if not 0 <= size <= have:
            raise ProofError(f"the log has {have} leaves; no tree of size {size}")

    def get(self, index: int) -> StoredRecord:
        with self.store.reading() as conn:
            row = conn.execute(select(RecordRow).where(RecordRow.leaf_index == index)).first()
        if row is None:
            raise NotFound(f"no record at index {index}")
        return stored_from_row(row)

    def find(self, leaf_hash: bytes) -> StoredRecord:
        with self.store.reading() as conn:
            row = conn.execute(select(RecordRow).where(RecordRow.leaf_hash == leaf_hash)).first()
        if row is None:
            raise NotFound(f"no record with leaf hash 0x{leaf_hash.hex()}")
        return stored_from_row(row)

    def erase(self, index: int) -> None:
        """Delete a record's content and salt; its leaf (and so every proof) remains."""
        with self.store.transaction() as conn:
            done = conn.execute(
                update(RecordRow)
                .where(RecordRow.leaf_index == index, RecordRow.canonical.is_not(None))
                .values(canonical=None, erased_us=now_us())
            ).rowcount
        if not done:
            self.get(index)  # raises NotFound for a missing record
            raise Conflict(f"record {index} is already erased")

    # --- checkpoints ---------------------------------------------------------------------

    def checkpoint(self, *, fence: Fence | None = None) -> Checkpoint:
        """Commit to the whole log as it stands; returns the existing checkpoint if unchanged.

        Race-free across processes: the log's row lock is taken first, so the size cannot move
        and no other process can insert the same checkpoint meanwhile. `fence` runs in the same
        transaction (the sequencer's lease check) and may refuse it.
        """
        with self.store.transaction() as conn:
            size = _lock_log(conn)
            if fence is not None:
                fence(conn)
            if size == 0:
                raise Conflict("the log is empty: nothing to checkpoint")
            row = conn.execute(select(CheckpointRow).where(CheckpointRow.size == size)).first()
            if row is not None:
                return checkpoint_from_row(row)
            root = fold_right(_read_nodes(conn, range_nodes(0, size)))
            cp = Checkpoint(size, root, now_us())
            conn.execute(
                insert(CheckpointRow).values(size=size, root=root, created_us=cp.created_us)
            )
        return cp

    def checkpoints(self, *, limit: int | None = None) -> list[Checkpoint]:
        q = select(CheckpointRow).order_by(CheckpointRow.size.desc()).limit(limit)
        with self.store.reading() as conn:
            return [checkpoint_from_row(r) for r in conn.execute(q).all()]

    def latest_checkpoint(self) -> Checkpoint | None:
        found = self.checkpoints(limit=1)
        return found[0] if found else None

    def checkpoint_at(self, size: int) -> Checkpoint:
        with self.store.reading() as conn:
            row = conn.execute(select(CheckpointRow).where(CheckpointRow.size == size)).first()
        if row is None:
            raise NotFound(f"no checkpoint at size {size}")
        return checkpoint_from_row(row)

    def covering_checkpoint(self, index: int) -> Checkpoint:
        """The newest checkpoint that includes leaf `index`, preferring anchored ones."""
        q = (
            select(CheckpointRow)
            .where(CheckpointRow.size > index)
            .order_by(CheckpointRow.tx_hash.is_(None), CheckpointRow.size.desc())
            .limit(1)
        )
        with self.store.reading() as conn:
            row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"record {index} is not covered by a checkpoint yet")
        return checkpoint_from_row(row)

    def mark_anchored(
        self,
        size: int,
        *,
        chain_id: int,
        contract: str,
        tx_hash: str,
        block_number: int,
        fence: Fence | None = None,
    ) -> None:
        with self.store.transaction() as conn:
            if fence is not None:
                fence(conn)
            done = conn.execute(
                update(CheckpointRow)
                .where(CheckpointRow.size == size)
                .values(
                    chain_id=chain_id,
                    contract=contract,
                    tx_hash=tx_hash,
                    block_number=block_number,
                    anchored_us=now_us(),
                )
            ).rowcount
        if not done:
            raise NotFound(f"no checkpoint at size {size}")

    def unanchor(self, size: int, *, fence: Fence | None = None) -> None:
        """Forget where the checkpoint at `size` was anchored: the chain no longer holds it (a
        node that lost blocks). Its receipts are pending again until it is anchored anew."""
        with self.store.transaction() as conn:
            if fence is not None:
                fence(conn)
            conn.execute(
                update(CheckpointRow)
                .where(CheckpointRow.size == size)
                .values(chain_id=None, contract=None, tx_hash=None, block_number=None,
                        anchored_us=None)
            )  # fmt: skip

    def anchoring(self) -> Anchoring:
        """How far anchoring lags behind the log, in records and in seconds."""
        with self.store.reading() as conn:
            size = self.committed_size(conn)
            anchored = (
                conn.execute(
                    select(func.max(CheckpointRow.size)).where(CheckpointRow.tx_hash.is_not(None))
                ).scalar_one()
                or 0
            )
            oldest = None
            if size > anchored:
                oldest = conn.execute(
                    select(RecordRow.appended_us).where(RecordRow.leaf_index == anchored)
                ).scalar_one_or_none()
        lag_s = max(0.0, (now_us() - oldest) / 1e6) if oldest is not None else 0.0
        return Anchoring(size, anchored, size - anchored, lag_s)


@dataclass(frozen=True)
class Anchoring:
    log_size: int
    anchored_size: int
    lag_records: int
    lag_seconds: float  # age of the oldest record no anchored checkpoint covers


def _lock_log(conn: Connection) -> int:
    """Take the log's row lock (a no-op UPDATE on SQLite takes the write lock; SELECT ... FOR
    UPDATE on PostgreSQL); returns the committed size."""
    if conn.dialect.name == "sqlite":
        conn.execute(update(LogState).where(LogState.id == 1).values(size=LogState.size))
    return int(
        conn.execute(select(LogState.size).where(LogState.id == 1).with_for_update()).scalar_one()
    )


def stored_from_row(row: object) -> StoredRecord:
    r = row._mapping  # type: ignore[attr-defined]
    return StoredRecord(
        index=r["leaf_index"],
        leaf_hash=r["leaf_hash"],
        kind=r["kind"],
        participant=r["participant"],
        signer=r["signer"],
        created_us=r["created_us"],
        appended_us=r["appended_us"],
        canonical=r["canonical"],
        signature=r["signature"],
    )


def checkpoint_from_row(row: object) -> Checkpoint:
    r = row._mapping  # type: ignore[attr-defined]
    return Checkpoint(
        size=r["size"],
        root=r["root"],
        created_us=r["created_us"],
        chain_id=r["chain_id"],
        contract=r["contract"],
        tx_hash=r["tx_hash"],
        block_number=r["block_number"],
    )
