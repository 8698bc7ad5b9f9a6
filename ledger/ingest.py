"""From submitted bytes to records the log may append: parse, canonicalise, verify, append.

A submission is one JSON object `{"record": {...}, "signature": "0x..."}`. Checking it costs a
canonicalisation (RFC 8785), a SHA-256, a few Keccak-256 and one secp256k1 recovery; the result
carries everything the log stores, so nothing is computed twice. `check_lines` spreads the work
over processes for bulk input and keeps the input order; `append_lines` appends what they pass
while they go on checking, in one transaction.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import BaseModel, ConfigDict, ValidationError

from ledger.errors import InputError, InvalidLines, LedgerError, SignatureError
from ledger.merkle import hash_leaf
from ledger.records import Record, commitment, parse_time, unhex
from ledger.registry import KeySnapshot, now_us
from ledger.signing import Domain, Signer, record_digest, recover_digest

if TYPE_CHECKING:
    from ledger.log import Log

# Records stamped further in the future than this are refused: clocks drift, but not by hours.
MAX_CLOCK_SKEW_US = 5 * 60 * 1_000_000


# Named tuples rather than dataclasses: bulk checking ships them between processes, and a tuple
# pickles in a fraction of the time (bench/ledger.py).
class Accepted(NamedTuple):
    """A verified record, ready to append."""

    canonical: bytes
    leaf_hash: bytes
    signature: bytes
    kind: str
    participant: str
    signer: str
    created_us: int


class Rejected(NamedTuple):
    line: int
    error: str


def submission_json(record: Record, signature: bytes) -> dict[str, Any]:
    return {"record": record.to_json(), "signature": "0x" + signature.hex()}


def parse_submission(obj: Any) -> tuple[Record, bytes]:
    """Split a decoded submission into its record and signature, naming what is wrong."""
    if not isinstance(obj, dict):
        raise InputError(
            f"expected a JSON object with record and signature, got {type(obj).__name__}"
        )
    missing = [k for k in ("record", "signature") if k not in obj]
    if missing:
        raise InputError(f"missing {' and '.join(missing)}")
    extra = sorted(set(obj) - {"record", "signature"})
    if extra:
        raise InputError(f"unexpected field(s) {', '.join(extra)}")
    record = Record.parse(obj["record"])
    signature = unhex(obj["signature"], size=65, what="signature")
    return record, signature


def check_record(
    record: Record, signature: bytes, domain: Domain, keys: KeySnapshot, now: int | None = None
) -> Accepted:
    """Verify a record's signature and key, and compute what the log stores.

    Raises:
        InputError: the record cannot be canonicalised or is stamped in the future.
        SignatureError: the signature is malformed or not by the producer's key.
        KeyNotAuthorized: the key is not the participant's, or was revoked.
        NotPermitted: the participant holds no role that may sign this kind of record.
    """
    now = now_us() if now is None else now
    canonical, data, digest, created_us = _prepare(record, domain, now)
    signer = recover_digest(digest, signature)
    return _conclude(record, signature, signer, canonical, data, created_us, keys)


def sign_and_check(
    records: Sequence[Record],
    signer: Signer,
    domain: Domain,
    keys: KeySnapshot,
    now: int | None = None,
) -> list[Accepted]:
    """`check_record(r, signer.sign(domain, r), ...)` for records this process signs, a stage
    at a time: each record is canonicalised once (not once to sign and again to check), and
    all are signed in one stretch.

    Every record gets every check of `check_record` but one: the signature recovery runs on
    the first record only. It proves that `signer`'s key is the key of `signer.address`; the
    other signatures are by the same key, over digests computed by the same code as the
    first's, so recovering them would repeat that proof (~50 us a record, a quarter of what
    capturing an EPCIS event costs). Signatures made elsewhere go through `check_record` /
    `check_batch`, which recover each one.

    Raises:
        what `check_record` raises, for the first record (in order) that fails.
    """
    now = now_us() if now is None else now
    prepared = [_prepare(r, domain, now) for r in records]
    signatures = [signer.sign_digest(digest) for _, _, digest, _ in prepared]
    address = recover_digest(prepared[0][2], signatures[0]) if prepared else signer.address
    return [
        _conclude(record, signature, address, canonical, data, created_us, keys)
        for record, signature, (canonical, data, _, created_us) in zip(
            records, signatures, prepared, strict=True
        )
    ]


# check_record in two halves around the signature recovery, so that `check_batch` can recover a
# whole batch of signatures in one stretch.


def _prepare(record: Record, domain: Domain, now: int) -> tuple[bytes, bytes, bytes, int]:
    """(canonical bytes, commitment, EIP-712 digest, created_us) of a record."""
    canonical = record.canonical_bytes()
    created = parse_time(record.created_at)
    created_us = int(created.timestamp()) * 1_000_000 + created.microsecond
    if created_us > now + MAX_CLOCK_SKEW_US:
        raise InputError(f"created_at {record.created_at} is in the future")
    data = commitment(canonical)
    producer = record.producer
    digest = record_digest(domain, record.kind, producer.participant, record.created_at, data)
    return canonical, data, digest, created_us


def _conclude(
    record: Record,
    signature: bytes,
    signer: str,
    canonical: bytes,
    data: bytes,
    created_us: int,
    keys: KeySnapshot,
) -> Accepted:
    producer = record.producer
    if signer != producer.address:
        raise SignatureError(
            f"signature was made by {signer}, record claims producer {producer.address}"
        )
    keys.check(producer.participant, signer, record.kind)
    return Accepted(
        canonical=canonical,
        leaf_hash=hash_leaf(data),
        signature=signature,
        kind=record.kind,
        participant=producer.participant,
        signer=signer,
        created_us=created_us,
    )


class _Submission(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    record: Record
    signature: str


def parse_line(line: bytes | str) -> tuple[Record, bytes]:
    """Parse and validate one submitted JSON line, naming what is wrong.

    Fast path: pydantic parses and validates the line in one pass. Its JSON reader and
    `json.loads` give the same values for every document both accept (duplicate keys: the last
    wins in both; numbers are correctly rounded in both; tests/ledger/test_ingest.py checks), and
    it accepts less (no byte-order mark, no lone surrogates), so whatever it refuses goes to
    the slow path: `json.loads` and `parse_submission`, which decide and word the complaint.

    Raises:
        InputError: malformed JSON, a missing or unexpected field, a bad record or signature.
    """
    try:
        sub = _Submission.model_validate_json(line)
    except ValidationError:
        pass
    else:
        return sub.record, unhex(sub.signature, size=65, what="signature")
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"malformed JSON: {exc}") from None
    return parse_submission(obj)


def check_line(
    line: bytes | str, domain: Domain, keys: KeySnapshot, now: int | None = None
) -> Accepted:
    record, signature = parse_line(line)
    return check_record(record, signature, domain, keys, now)


# --- bulk checking over processes -------------------------------------------------------------

_worker_ctx: tuple[Domain, KeySnapshot, int] | None = None


def _init_worker(domain: Domain, keys: KeySnapshot, now: int, parent: int) -> None:
    global _worker_ctx
    _worker_ctx = (domain, keys, now)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    # A parent killed outright (kill -9, out of memory) cannot shut its pool down, and the
    # workers would wait on the task queue for ever.
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _check_chunk(chunk: list[tuple[int, bytes]]) -> list[tuple[Any, ...]]:
    assert _worker_ctx is not None
    domain, keys, now = _worker_ctx
    # Bare tuples on the wire: a named tuple pickles through a Python-level __getnewargs__,
    # at three times the cost; `_revive` names them again in the parent.
    return [tuple(r) for r in check_batch(chunk, domain, keys, now)]


def _revive(t: tuple[Any, ...]) -> Accepted | Rejected:
    return Accepted._make(t) if len(t) == len(Accepted._fields) else Rejected._make(t)


def check_batch(
    lines: Sequence[tuple[int, bytes]], domain: Domain, keys: KeySnapshot, now: int
) -> list[Accepted | Rejected]:
    """`check_line` over numbered lines, with the same verdict for each, a stage at a time.

    Each line goes through the same checks in the same order as in `check_line`; only the
    interleaving between lines differs. All signatures of the batch are recovered in one
    stretch: interleaved with the Python stages, libsecp256k1's tables and the interpreter's
    working set evict each other from the CPU caches, which costs 10 to 15% more CPU per
    record (bench/ledger.py).
    """
    verdicts: dict[int, Accepted | Rejected] = {}  # by position in `lines`
    prepared: list[tuple[int, Record, bytes, bytes, bytes, bytes, int]] = []
    for i, (n, line) in enumerate(lines):
        try:
            record, signature = parse_line(line)
            prepared.append((i, record, signature, *_prepare(record, domain, now)))
        except LedgerError as exc:
            verdicts[i] = Rejected(n, str(exc))
    signers: list[str | LedgerError] = []
    for _, _, signature, _, _, digest, _ in prepared:
        try:
            signers.append(recover_digest(digest, signature))
        except LedgerError as exc:
            signers.append(exc)
    for (i, record, signature, canonical, data, _, created_us), signer in zip(
        prepared, signers, strict=True
    ):
        try:
            if isinstance(signer, LedgerError):
                raise signer
            verdicts[i] = _conclude(record, signature, signer, canonical, data, created_us, keys)
        except LedgerError as exc:
            verdicts[i] = Rejected(lines[i][0], str(exc))
    return [verdicts[i] for i in range(len(lines))]


def check_lines(
    lines: Iterable[bytes],
    domain: Domain,
    keys: KeySnapshot,
    *,
    workers: int | None = None,
    chunk: int = 512,
) -> Iterator[Accepted | Rejected]:
    """Check JSON lines in order; blank lines are skipped, line numbers start at 1.

    `workers=None` uses one process per core when there is enough input to pay for them.
    """
    numbered = ((n, ln) for n, ln in enumerate(lines, start=1) if ln.strip())
    now = now_us()
    workers = workers if workers is not None else (os.cpu_count() or 1)
    head = list(islice(numbered, chunk))

    def chunks() -> Iterator[list[tuple[int, bytes]]]:
        yield head
        while batch := list(islice(numbered, chunk)):
            yield batch

    if workers <= 1 or len(head) < chunk:
        for batch in chunks():
            yield from check_batch(batch, domain, keys, now)
        return

    # A bounded window of chunks in flight: order kept, memory flat however long the input.
    pool = ProcessPoolExecutor(
        workers, initializer=_init_worker, initargs=(domain, keys, now, os.getpid())
    )
    try:
        pending: deque[Future[list[tuple[Any, ...]]]] = deque()
        for batch in chunks():
            pending.append(pool.submit(_check_chunk, batch))
            if len(pending) >= 4 * workers:
                for t in pending.popleft().result():
                    yield _revive(t)
        while pending:
            for t in pending.popleft().result():
                yield _revive(t)
    finally:
        # A caller that stops early (too many bad lines) should not wait for the rest.
        pool.shutdown(wait=True, cancel_futures=True)


# --- bulk appending ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BulkAppend:
    """What `append_lines` did."""

    appended: int
    duplicates: int  # already in the log: not logged twice
    rejected: list[Rejected]  # skipped lines (only with skip_invalid)
    size: int  # the log's size after the append


def append_lines(
    log: Log,
    lines: Iterable[bytes],
    domain: Domain,
    keys: KeySnapshot,
    *,
    workers: int | None = None,
    skip_invalid: bool = False,
    max_rejected: int = 20,
    batch: int = 2000,
    cache_mib: int = 256,
    progress: Callable[[int], object] | None = None,
) -> BulkAppend:
    """Check signed JSON lines and append the valid ones in one transaction: all or nothing.

    Worker processes check while this one appends (see `check_lines`); `batch` records go to
    the store at a time, all inside the one transaction, with a `cache_mib` page cache on
    SQLite (see `Log.appending`). `progress(n)` hears of every `n` lines checked.

    Raises:
        InvalidLines: some lines were refused and `skip_invalid` is off; nothing was appended.
            Checking stops at `max_rejected` refused lines.
        StorageError: the database failed; nothing was appended.
    """
    rejected: list[Rejected] = []
    appended = duplicates = 0
    pending: list[Accepted] = []
    seen = 0
    with log.appending(cache_mib=cache_mib) as app:

        def flush() -> None:
            nonlocal appended, duplicates, seen
            done = app.add(pending)
            dup = sum(a.duplicate for a in done)
            duplicates += dup
            appended += len(done) - dup
            if progress is not None:
                progress(seen)
            seen = 0
            pending.clear()

        for item in check_lines(lines, domain, keys, workers=workers):
            seen += 1
            if isinstance(item, Accepted):
                pending.append(item)
                if len(pending) >= batch:
                    flush()
            else:
                rejected.append(item)
                if not skip_invalid and len(rejected) >= max_rejected:
                    break
        if rejected and not skip_invalid:
            # Raising inside `appending` rolls the whole transaction back.
            raise InvalidLines(
                [(r.line, r.error) for r in rejected], stopped=len(rejected) >= max_rejected
            )
        flush()
    return BulkAppend(appended, duplicates, rejected, log.size)
