"""Capture: EPCIS 2.0 documents and events become signed `epcis_event` records in the log.

    validate (schema, once per document) -> split into events -> CBV 2.0 hash IDs
        -> records -> sign all, check all (one stretch) -> one transaction: append the new
        records + index rows in bulk

Everything that can refuse a document runs before the transaction, and the transaction takes
all events or none. An event whose hash ID is already in the index is not logged again: the
result points at the record that holds it (`duplicate=True`).

An error declaration (EPCIS 2.0 section 7.4.1.4) repeats an event with `errorDeclaration`
added, so it has the event's hash ID. It is a new statement and is logged once; the event's
index row then points at it (`error_declared_by`), queries return it in place of the
original, and genealogy no longer follows the event. Only the participant that submitted the
original event, or an operator, may declare it in error (`NotPermitted` otherwise): nobody
retracts another party's statement.

Two ways in:

- `capture`: plain EPCIS JSON, as EPCIS tools send it. The repository signs each event's
  record with its own key (`signer`, registered to `participant`): the operator's events only,
  since whoever signs is who the log says asserted the event. Each stored event carries
  the document's `@context` (events must be readable alone) and, when the producer gave none,
  its hash ID as `eventID`.
- `capture_signed`: records of kind `epcis_event` signed by their producers (the payload is
  one event with its `@context`). The payload is stored exactly as signed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select, update

from ledger import collector
from ledger.epcis.errors import Complaint, SchemaViolation
from ledger.epcis.hashid import hash_ids, is_hash_id, split_context
from ledger.epcis.index import IndexEntry, index_entry, write_index
from ledger.epcis.validate import validate_capture
from ledger.errors import InputError, NotPermitted
from ledger.ingest import Accepted, check_record, sign_and_check
from ledger.log import Log
from ledger.records import Record
from ledger.registry import KeySnapshot
from ledger.signing import Domain, Signer
from ledger.store.models import EpcisEventRow, RecordRow

KIND = "epcis_event"


@dataclass(frozen=True, slots=True)
class PreparedEvent:
    """A validated event with its hash IDs, in the form it will be stored.

    `event_id` is the reference implementation's ID of the event as captured; `stored_id` the
    ID of the stored form (keys sorted), which duplicates are found by (see
    ledger.epcis.hashid)."""

    event_id: str
    payload: dict[str, Any]
    entry: IndexEntry
    stored_id: str = ""

    @property
    def key(self) -> str:
        return self.stored_id or self.event_id


@dataclass(frozen=True, slots=True)
class CapturedEvent:
    """Where one captured event lives in the log."""

    event_id: str  # CBV 2.0 hash ID
    leaf_index: int  # build_receipt(log, leaf_index, domain) gives its receipt
    leaf_hash: bytes
    duplicate: bool  # captured before: nothing new was logged

    def to_json(self) -> dict[str, Any]:
        return {
            "eventID": self.event_id,
            "leaf_index": self.leaf_index,
            "leaf_hash": "0x" + self.leaf_hash.hex(),
            "duplicate": self.duplicate,
        }


@dataclass(frozen=True)
class CaptureResult:
    events: list[CapturedEvent]
    warnings: list[str] = field(default_factory=list)

    @property
    def new(self) -> int:
        return sum(not e.duplicate for e in self.events)

    def to_json(self) -> dict[str, Any]:
        return {
            "captured": self.new,
            "duplicates": len(self.events) - self.new,
            "events": [e.to_json() for e in self.events],
            "warnings": self.warnings,
        }


def prepare(document: Any) -> tuple[list[PreparedEvent], list[str]]:
    """Validate a capture request and hash its events; no I/O.

    Returns the events in document order and warnings (an `eventID` that looks like a hash
    ID but is not this event's).

    Raises:
        SchemaViolation: the schema's complaints; nothing may be stored.
        UnsupportedEpcis: valid EPCIS this repository cannot hash (unknown remote context...).
    """
    validate_capture(document)
    if document["type"] == "EPCISDocument":
        context = document["@context"]
        events = document["epcisBody"]["eventList"]
        where = "$.epcisBody.eventList[{}]"
    else:
        context, events, where = None, [document], "$"
    out: list[PreparedEvent] = []
    warnings: list[str] = []
    for i, event in enumerate(events):
        body, ctx = split_context(event, context)
        event_id, stored_id = hash_ids(body, ctx)
        given = body.get("eventID")
        if given is not None and given not in (event_id, stored_id) and is_hash_id(given):
            warnings.append(
                f"{where.format(i)}: eventID {given} is not this event's CBV 2.0 hash ID; "
                f"it is kept in the event and the event is indexed under {event_id}"
            )
        payload = {"@context": ctx, **body}
        if given is None:
            payload["eventID"] = event_id
        out.append(PreparedEvent(event_id, payload, index_entry(payload), stored_id))
    return out, warnings


def capture(
    log: Log,
    document: Any,
    *,
    signer: Signer,
    participant: str,
    domain: Domain,
    keys: KeySnapshot,
    created_at: str | None = None,
) -> CaptureResult:
    """Capture an EPCISDocument or a single event, signing each record as `participant`.

    Args:
        log: the deployment's log (its store holds the index).
        document: decoded JSON of an EPCISDocument (`eventList`) or one event with `@context`.
        signer: the repository's key, registered to `participant` in `keys`.
        created_at: the records' time (default: now).

    Raises:
        SchemaViolation, UnsupportedEpcis: see `prepare`; nothing is stored.
        KeyNotAuthorized: `signer` is not a valid key of `participant`.
        StorageError: the database failed; nothing is stored.
    """
    with collector.paused():
        prepared, warnings = prepare(document)
        records = [
            Record.new(
                KIND,
                p.payload,
                participant=participant,
                address=signer.address,
                created_at=created_at,
            )
            for p in prepared
        ]
        # One signing stretch for the document: canonicalise, sign all, check all.
        accepted = sign_and_check(records, signer, domain, keys)
        return CaptureResult(_append(log, prepared, accepted, keys), warnings)


@collector.paused()
def capture_signed(
    log: Log,
    submissions: Sequence[tuple[Record, bytes]],
    *,
    domain: Domain,
    keys: KeySnapshot,
) -> CaptureResult:
    """Capture events that their producers signed: records of kind `epcis_event` whose
    payload is one event with its `@context`. All or none are captured.

    Raises:
        InputError: a record of another kind. SchemaViolation, UnsupportedEpcis: a payload
            is not a capturable event (the message names which submission).
        SignatureError, KeyNotAuthorized: a signature does not hold.
        NotPermitted: an error declaration of another participant's event.
        StorageError: the database failed; nothing is stored.
    """
    prepared: list[PreparedEvent] = []
    accepted: list[Accepted] = []
    warnings: list[str] = []
    for n, (record, signature) in enumerate(submissions):
        if record.kind != KIND:
            raise InputError(f"submission {n}: record kind is {record.kind!r}, expected {KIND!r}")
        try:
            (p,), warned = prepare(record.payload)
        except SchemaViolation as exc:
            raise SchemaViolation([_under(c, n) for c in exc.complaints]) from None
        except InputError as exc:
            raise type(exc)(f"submission {n}: {exc}") from None
        prepared.append(p)
        warnings.extend(f"submission {n}: {w}" for w in warned)
        accepted.append(check_record(record, signature, domain, keys))
    return CaptureResult(_append(log, prepared, accepted, keys), warnings)


def _under(c: Complaint, n: int) -> Complaint:
    """A complaint about submission `n`'s payload, with its path from the submission list."""
    return Complaint(f"$[{n}].record.payload{c.path[1:]}", c.message, c.rule)


@dataclass
class _Slot:
    """What the index holds (or will hold) for one event during a capture."""

    leaf: int  # leaf index, or -1 - position in this capture's new records
    declared_by: int | None  # same encoding
    event_id: str  # the hash ID it is indexed under


def _append(
    log: Log,
    prepared: Sequence[PreparedEvent],
    accepted: Sequence[Accepted],
    keys: KeySnapshot,
) -> list[CapturedEvent]:
    if not prepared:
        return []
    with log.appending() as app:
        conn = app.conn
        # Slots by stored ID: the same event in another key order is the same event.
        slots, hashes, producers = _known(conn, sorted({p.key for p in prepared}))

        existing = set(slots)
        declared_before = {eid for eid, s in slots.items() if s.declared_by is not None}
        new: list[int] = []  # positions in `prepared` whose record is appended

        def producer(leaf: int) -> str:
            return producers[leaf] if leaf >= 0 else accepted[new[-1 - leaf]].participant

        where: list[tuple[int, bool, str]] = []  # per event: (leaf, duplicate, ID), leaf encoded
        for n, p in enumerate(prepared):
            slot = slots.get(p.key)
            declares = "errorDeclaration" in p.payload
            if slot is None:
                # First sight of this event; a declaration arriving first stands for it.
                leaf = -1 - len(new)
                new.append(n)
                slots[p.key] = _Slot(leaf, leaf if declares else None, p.event_id)
                where.append((leaf, False, p.event_id))
            elif declares and slot.declared_by is None:
                declarer, original = accepted[n].participant, producer(slot.leaf)
                if declarer != original and "operator" not in keys.roles(declarer):
                    # Raised inside the transaction: nothing of this capture is stored.
                    raise NotPermitted(
                        f"{declarer} may not declare {slot.event_id} in error: {original} "
                        "asserted it (only its submitter or an operator may)"
                    )
                leaf = -1 - len(new)
                new.append(n)
                slot.declared_by = leaf
                where.append((leaf, False, slot.event_id))
            elif declares:
                where.append((slot.declared_by, True, slot.event_id))  # type: ignore[arg-type]
            else:
                where.append((slot.leaf, True, slot.event_id))
        appended = app.add([accepted[n] for n in new])

        def resolve(leaf: int) -> int:
            return leaf if leaf >= 0 else appended[-1 - leaf].index

        for a in appended:
            hashes[a.index] = a.leaf_hash
        entries = []
        for key, slot in slots.items():
            if key not in existing:
                n = new[-1 - slot.leaf]
                declared = None if slot.declared_by is None else resolve(slot.declared_by)
                entries.append(
                    (resolve(slot.leaf), slot.event_id, key, prepared[n].entry, declared)
                )
        write_index(conn, entries)
        for key in existing - declared_before:
            if slots[key].declared_by is not None:
                conn.execute(
                    update(EpcisEventRow)
                    .where(EpcisEventRow.stored_event_id == key)
                    .values(error_declared_by=resolve(slots[key].declared_by))  # type: ignore[arg-type]
                )
    out = []
    for leaf, duplicate, event_id in where:
        index = resolve(leaf)
        # A record logged earlier by another path (a plain record append) is a duplicate too.
        logged = not duplicate and not appended[-1 - leaf].duplicate
        out.append(CapturedEvent(event_id, index, hashes[index], duplicate=not logged))
    return out


def _known(
    conn: Connection, ids: list[str]
) -> tuple[dict[str, _Slot], dict[int, bytes], dict[int, str]]:
    """The index's slots for these stored hash IDs, and the leaf hashes and producers of their
    records."""
    slots: dict[str, _Slot] = {}
    for i in range(0, len(ids), 500):
        rows = conn.execute(
            select(
                EpcisEventRow.stored_event_id,
                EpcisEventRow.leaf_index,
                EpcisEventRow.error_declared_by,
                EpcisEventRow.event_id,
            ).where(EpcisEventRow.stored_event_id.in_(ids[i : i + 500]))
        ).all()
        slots.update((key, _Slot(leaf, declared, eid)) for key, leaf, declared, eid in rows)
    leaves = sorted(
        {s.leaf for s in slots.values()}
        | {s.declared_by for s in slots.values() if s.declared_by is not None}
    )
    hashes: dict[int, bytes] = {}
    producers: dict[int, str] = {}
    for i in range(0, len(leaves), 500):
        for leaf, leaf_hash, participant in conn.execute(
            select(RecordRow.leaf_index, RecordRow.leaf_hash, RecordRow.participant).where(
                RecordRow.leaf_index.in_(leaves[i : i + 500])
            )
        ).all():
            hashes[leaf] = leaf_hash
            producers[leaf] = participant
    return slots, hashes, producers
