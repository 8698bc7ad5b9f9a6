"""Receipts served from memory: a bounded cache of encoded responses and a fast path to it.

A receipt is a pure function of (leaf index, covering checkpoint size, that checkpoint's anchor
transaction): records never change (erasure aside, which is checked on every request) and a
checkpoint's anchor, once written, never changes either. So the encoded response is cached
under that triple, and the triple is read from the database on every request: when a newer
checkpoint covers the record, or its checkpoint gets anchored, the key changes and the client
gets the new receipt, never a stale one. Each encoded response carries a strong ETag, so a
client that already has it gets 304 Not Modified.

`ReceiptFastPath` answers `GET /v1/records/{id}/receipt` before FastAPI's routing and
dependency injection, which cost several times the work of a cache hit. It answers only when
it can prove the route would give the same answer (a known API key, a visible record, a cached
receipt); anything else (no key, a key it does not know, an invisible or erased record, a
pending receipt, a cache miss, a database error) goes to the route unchanged, which applies
the same access rules and fills the cache.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from fastapi import Response
from sqlalchemy import Engine, Select, bindparam, select

from api.access import may_see
from api.auth import KeyCache
from api.metrics import RECEIPTS
from ledger.cache import Cache
from ledger.errors import LedgerError, NotFound
from ledger.log import Log, StoredRecord
from ledger.receipts import AnchorSource, ParsedReceipt, build_receipt, parse_receipt
from ledger.signing import Domain
from ledger.store import Store
from ledger.store.models import CheckpointRow, RecordRow

Key = tuple[int, int, str | None]  # (leaf index, checkpoint size, anchor tx hash)
_SERVED, _HIT, _MISS = (RECEIPTS.labels(o) for o in ("served", "hit", "miss"))


@dataclass(frozen=True)
class Encoded:
    """A receipt response as sent: the JSON body and its strong ETag (quoted)."""

    body: bytes
    etag: str

    def matches(self, if_none_match: str | None) -> bool:
        """True when an If-None-Match header names this body (RFC 9110 weak comparison)."""
        if not if_none_match:
            return False
        if if_none_match.strip() == "*":
            return True
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return self.etag in tags

    def response(self, if_none_match: str | None) -> Response:
        if self.matches(if_none_match):
            return Response(status_code=304, headers=self.headers())
        return Response(self.body, media_type="application/json", headers=self.headers())

    def headers(self) -> dict[str, str]:
        # no-cache: the body for this URL changes when a newer checkpoint covers the record,
        # so caches must revalidate (cheaply, with the ETag) before reusing it.
        return {"ETag": self.etag, "Cache-Control": "no-cache"}

    @cached_property
    def raw_200(self) -> list[tuple[bytes, bytes]]:
        """The 200 response's headers as ASGI sends them (what `response` would send)."""
        return [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in self.response(None).headers.items()
        ]

    @cached_property
    def raw_304(self) -> list[tuple[bytes, bytes]]:
        return [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in self.response(self.etag).headers.items()
        ]


def encode(status: str, receipt: dict[str, Any]) -> Encoded:
    """The response body of a checkpointed or anchored receipt, as the route's model dumps it."""
    body = json.dumps(
        {"status": status, "receipt": receipt}, ensure_ascii=False, separators=(",", ":")
    ).encode()
    return Encoded(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


class ReceiptCache:
    """A thread-safe LRU of encoded receipts, at most `max_entries` of them."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._items: Cache[Key, Encoded] = Cache(max_entries)
        self.max_entries = max_entries
        self.get = self._items.get
        self.put = self._items.put
        self.clear = self._items.clear

    def __len__(self) -> int:
        return len(self._items)

    def receipt(self, log: Log, domain: Domain, stored: StoredRecord) -> Encoded | None:
        """The encoded receipt of `stored` against its covering checkpoint; None while pending.

        Raises:
            NotFound: the record was erased.
        """
        if stored.canonical is None:
            stored.record()  # raises NotFound with the reason
        try:
            cp = log.covering_checkpoint(stored.index)
        except NotFound:
            return None
        # The key is taken from the checkpoint the receipt is built against, so a body is
        # never filed under a key it does not belong to, even if a checkpoint lands meanwhile.
        key = (stored.index, cp.size, cp.tx_hash)
        hit = self.get(key)
        if hit is not None:
            _HIT.inc()
            return hit
        _MISS.inc()
        receipt = build_receipt(log, stored.index, domain, cp)
        return self.put(key, encode("anchored" if cp.anchored else "checkpointed", receipt))


def _covering(column: Any) -> Any:
    """`column` of the checkpoint `Log.covering_checkpoint` picks for the outer record."""
    return (
        select(column)
        .where(CheckpointRow.size > RecordRow.leaf_index)
        .order_by(CheckpointRow.tx_hash.is_(None), CheckpointRow.size.desc())
        .limit(1)
        .correlate(RecordRow)
        .scalar_subquery()
    )


_COLUMNS = (
    RecordRow.leaf_index,
    RecordRow.leaf_hash,
    RecordRow.kind,
    RecordRow.participant,
    RecordRow.signer,
    RecordRow.created_us,
    RecordRow.appended_us,
    RecordRow.canonical,
    RecordRow.signature,
    _covering(CheckpointRow.size),
    _covering(CheckpointRow.tx_hash),
)
_ID = re.compile(r"(?:0x(?P<leaf>[0-9a-fA-F]{64})|(?P<index>[0-9]{1,18}))")


class _Statement:
    """A SELECT compiled once for the engine's dialect and run on a bare DBAPI cursor.

    SQLAlchemy's execution and result layers cost ~150 us a query here, five times what
    SQLite takes to answer it; on the fast path that was a third of a request.
    """

    def __init__(self, engine: Engine, statement: Select[Any]) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        self.engine = engine
        self.sql = str(compiled)
        self.defaults = compiled.construct_params()  # LIMIT and friends are parameters too
        self.order = compiled.positiontup if compiled.positional else None

    def first(self, **params: Any) -> Sequence[Any] | None:
        values = {**self.defaults, **params}
        args = tuple(values[k] for k in self.order) if self.order is not None else values
        conn = self.engine.raw_connection()
        try:
            cursor = conn.cursor()
            try:
                cursor.execute(self.sql, args)
                row: Sequence[Any] | None = cursor.fetchone()
                return row
            finally:
                cursor.close()
        finally:
            conn.close()  # back to the pool, rolled back


class ReceiptFacts:
    """What the fast path needs to know about a record, in one query."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._by_index = _Statement(
            store.engine, select(*_COLUMNS).where(RecordRow.leaf_index == bindparam("index", None))
        )
        self._by_hash = _Statement(
            store.engine, select(*_COLUMNS).where(RecordRow.leaf_hash == bindparam("leaf", None))
        )

    def of(self, id: str) -> tuple[StoredRecord, Key | None] | None:
        """The record `id` names and the cache key of its receipt now (None while pending).

        None when `id` is not a well-formed id or names no record.
        """
        m = _ID.fullmatch(id)
        if m is None:
            return None
        if m["leaf"]:
            row = self._by_hash.first(leaf=bytes.fromhex(m["leaf"]))
        else:
            row = self._by_index.first(index=int(m["index"]))
        if row is None:
            return None
        stored = StoredRecord(*row[:9])
        cp_size, cp_tx = row[9], row[10]
        return stored, None if cp_size is None else (stored.index, cp_size, cp_tx)


_PATH = re.compile(r"/v1/records/(?P<id>[^/]+)/receipt")


class ReceiptFastPath:
    """ASGI middleware: answers cached receipts itself, passes everything else through.

    Args:
        app: the application behind it.
        cache: where the route files encoded receipts.
        keys: the API keys the route's authentication dependency reads.
        store: the deployment's database.
        route: the receipt route, put in the scope so metrics label hits like the route.
    """

    def __init__(
        self, app: Any, *, cache: ReceiptCache, keys: KeyCache, store: Store, route: Any
    ) -> None:
        self.app = app
        self.cache = cache
        self.keys = keys
        self.store = store
        self.facts = ReceiptFacts(store)
        self.route = route

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            m = _PATH.fullmatch(scope["path"])
            if m is not None:
                found = self._lookup(scope, m["id"])
                if found is not None:
                    hit, not_modified = found
                    scope["route"] = self.route
                    if not_modified:
                        await send(
                            {"type": "http.response.start", "status": 304, "headers": hit.raw_304}
                        )
                        await send({"type": "http.response.body", "body": b""})
                    else:
                        await send(
                            {"type": "http.response.start", "status": 200, "headers": hit.raw_200}
                        )
                        await send({"type": "http.response.body", "body": hit.body})
                    return
        await self.app(scope, receive, send)

    def _lookup(self, scope: dict[str, Any], id: str) -> tuple[Encoded, bool] | None:
        """(the cached receipt, whether If-None-Match names it), or None to let the route answer."""
        authorization = inm = None
        for name, value in scope["headers"]:
            # The first of repeated headers counts, as in Starlette's `Headers.get`.
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"if-none-match" and inm is None:
                inm = value.decode("latin-1")
        if not authorization:
            return None
        try:
            # A token is accepted only if its hash is a live key, so parsing more loosely
            # could only pass more requests to the route.
            caller = self.keys.lookup_bearer(authorization)
            if caller is None:
                return None
            # The query blocks the loop for tens of microseconds on SQLite; a hop to the
            # thread pool costs more than that under load.
            found = self.facts.of(id)
            if found is None:
                return None
            stored, key = found
            if key is None or stored.canonical is None:
                return None
            if not caller.reads_everything:
                with self.store.reading() as conn:
                    if not may_see(conn, caller, stored):
                        return None
        except Exception:
            # The route meets the same failure and answers it as the API does (503, ...).
            return None
        hit = self.cache.get(key)
        if hit is None:
            return None
        _SERVED.inc()
        return hit, hit.matches(inm)


def anchor_facts(r: ParsedReceipt) -> tuple[Any, ...]:
    """What `chain_anchor_source` asks the chain about a receipt: receipts with equal facts
    check the same way."""
    anchor = json.dumps(r.anchor, sort_keys=True, default=repr)
    return (r.size, r.root, r.domain.chain_id, r.domain.verifying_contract, anchor)


def key_facts(r: ParsedReceipt) -> tuple[Any, ...]:
    """What `chain_key_source` asks the chain about a receipt."""
    producer = r.record.producer
    return (
        r.leaf_index,
        r.size,
        producer.participant,
        producer.address,
        r.record.kind,
        r.domain.chain_id,
        r.domain.verifying_contract,
    )


class CachedAnchors:
    """A chain check (anchor or key source) that remembers for `ttl_s` what it confirmed.

    A confirmed answer stays confirmed: the contract only appends checkpoints and key changes
    take effect forward in time, so the same facts (`facts`: anchor claims, or the signer and
    leaf) check the same way until a chain reorganisation drops a block, which the time limit
    bounds. Every receipt of a checkpoint shares its anchor entry, and a check costs ~25 ms of
    EVM calls on the embedded chain, most of a verify request. Failures are not remembered:
    they are asked again every time.
    """

    def __init__(
        self,
        source: AnchorSource,
        *,
        facts: Callable[[ParsedReceipt], tuple[Any, ...]] = anchor_facts,
        ttl_s: float = 60.0,
        max_entries: int = 1024,
    ):
        self.source = source
        self._key = facts
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._confirmed: Cache[tuple[Any, ...], str] = Cache(max_entries, ttl_s)
        self._gates: dict[tuple[Any, ...], threading.Lock] = {}
        self._lock = threading.Lock()

    def _remembered(self, key: tuple[Any, ...]) -> str | None:
        return self._confirmed.get(key)

    def knows(self, data: Any) -> bool:
        """True when checking receipt `data` asks nothing of the chain (or it is malformed)."""
        try:
            r = parse_receipt(data)
        except LedgerError:
            return True  # verification stops at the format check
        return self._remembered(self._key(r)) is not None

    def knows_parsed(self, r: ParsedReceipt) -> bool:
        """`knows` for a receipt already parsed."""
        return self._remembered(self._key(r)) is not None

    def forget(self) -> None:
        """Drop what was confirmed (this process's sequencer found anchors gone)."""
        self._confirmed.clear()

    def __call__(self, r: ParsedReceipt) -> str:
        key = self._key(r)
        detail = self._remembered(key)
        if detail is not None:
            return detail
        # One chain call per key at a time: 32 clients arriving together with a new
        # checkpoint's receipts would otherwise make 32 identical calls, ~1 s of EVM time.
        with self._lock:
            gate = self._gates.setdefault(key, threading.Lock())
        with gate:
            detail = self._remembered(key)
            if detail is None:
                detail = self._confirmed.put(key, self.source(r))
        with self._lock:
            self._gates.pop(key, None)
        return detail


def chain_known(sources: Sequence[AnchorSource | None], data: Any) -> bool:
    """True when verifying receipt `data` asks nothing of the chain: every source is absent or
    a `CachedAnchors` that remembers the answer (a malformed receipt: verification stops at
    the format check). The receipt is parsed once for all sources."""
    live = [s for s in sources if s is not None]
    cached = [s for s in live if isinstance(s, CachedAnchors)]
    if len(cached) != len(live):
        return False
    if not cached:
        return True
    try:
        r = parse_receipt(data)
    except LedgerError:
        return True
    return all(s.knows_parsed(r) for s in cached)


class CachedRoots:
    """The local log's checkpoint check (`log_checkpoint_source`), remembering for `ttl_s` the
    (size, root) pairs it confirmed.

    The log only grows and its leaves never change (erasure keeps the leaf hash), so the root
    at a size, once confirmed, stays that root; the time limit only bounds what a database
    restored to an older state could hide, as `CachedAnchors` does for the chain. Reading the
    root is O(log n) node reads, a third of a verify request's work. Failures are never
    remembered.
    """

    def __init__(self, source: Callable[[int, bytes], str], *, ttl_s: float = 60.0,
                 max_entries: int = 1024) -> None:  # fmt: skip
        self.source = source
        self._confirmed: Cache[tuple[int, bytes], str] = Cache(max_entries, ttl_s)

    def __call__(self, size: int, root: bytes) -> str:
        detail = self._confirmed.get((size, root))
        if detail is None:
            detail = self._confirmed.put((size, root), self.source(size, root))
        return detail

    def forget(self) -> None:
        self._confirmed.clear()


__all__ = [
    "CachedAnchors",
    "CachedRoots",
    "Encoded",
    "ReceiptCache",
    "ReceiptFacts",
    "ReceiptFastPath",
    "anchor_facts",
    "chain_known",
    "encode",
    "key_facts",
]
