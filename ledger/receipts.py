"""Receipts: a record with everything needed to check it offline, and the checker.

A receipt holds the record, its EIP-712 signature and domain, the leaf index and hash, an
inclusion proof to a checkpoint (size, root) and, once the checkpoint is on chain, where it was
anchored. `docs/receipt.md` specifies the format for third-party verifiers.

`verify_receipt` runs every check it can and names each one; a check that needs something not
at hand (the chain's key registry, the log, the chain's checkpoints) is reported as skipped,
never as passed.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, NoReturn

from jsonschema import validators as jsonschema_validators
from jsonschema.exceptions import best_match

from ledger.errors import InputError, LedgerError, NotFound, VerificationError
from ledger.log import Checkpoint, Log
from ledger.merkle import hash_leaf, verify_inclusion
from ledger.records import Record, commitment, hex0x, unhex
from ledger.registry import check_kind
from ledger.signing import Domain, verify_record_signature

FORMAT = "forgeproof-receipt/1"


def build_receipt(
    log: Log, index: int, domain: Domain, checkpoint: Checkpoint | None = None
) -> dict[str, Any]:
    """The receipt of record `index` against `checkpoint` (default: the best covering one).

    Raises:
        NotFound: no such record, it was erased, or no checkpoint covers it yet.
    """
    stored = log.get(index)
    record = stored.record()
    cp = checkpoint or log.covering_checkpoint(index)
    proof = log.inclusion_proof(index, cp.size)
    anchor = cp.anchor_json()
    return {
        "format": FORMAT,
        "record": record.to_json(),
        "signature": hex0x(stored.signature),
        "domain": domain.to_json(),
        "leaf_index": index,
        "leaf_hash": hex0x(stored.leaf_hash),
        "inclusion_proof": [hex0x(h) for h in proof.hashes],
        "checkpoint": {"size": cp.size, "root": hex0x(cp.root)},
        "anchor": anchor,
    }


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that `path` holds either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


Status = Literal["ok", "failed", "skipped"]


@dataclass
class Check:
    name: str
    status: Status
    detail: str


@dataclass
class Verdict:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True only when no check failed and the essential ones ran."""
        ran = {c.name for c in self.checks if c.status == "ok"}
        return not self.failed and {"canonical", "signature", "inclusion"} <= ran

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == "failed"]

    @property
    def skipped(self) -> list[Check]:
        return [c for c in self.checks if c.status == "skipped"]

    def add(self, name: str, status: Status, detail: str) -> None:
        self.checks.append(Check(name, status, detail))


@dataclass(frozen=True)
class ParsedReceipt:
    record: Record
    signature: bytes
    domain: Domain
    leaf_index: int
    leaf_hash: bytes
    proof: list[bytes]
    size: int
    root: bytes
    anchor: dict[str, Any] | None


@cache
def receipt_schema() -> dict[str, Any]:
    """The receipt's JSON Schema (draft 2020-12), as published in docs/receipt.schema.json."""
    text = resources.files("ledger").joinpath("receipt.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    # JSON integers only: 1.0 and true are not integers here, though jsonschema would take them.
    checker = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, v: isinstance(v, int) and not isinstance(v, bool)
    )
    strict = jsonschema_validators.extend(Draft202012Validator, type_checker=checker)
    return strict(receipt_schema())


def loads_strict(text: str | bytes) -> Any:
    """JSON as a receipt is read: duplicate object keys refused (a parser that keeps the last
    and one that keeps the first would read two different receipts).

    Raises:
        InputError: not JSON, or a duplicate key (named, with its object's path).
    """

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise InputError(f"duplicate key {key!r} in a JSON object")
            seen[key] = value
        return seen

    try:
        return json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON (truncated?): {exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not JSON: not UTF-8 text ({exc.reason})") from None
    except RecursionError:
        raise InputError("not JSON this verifier reads: nested too deeply") from None


def unwrap_receipt(data: Any) -> Any:
    """The receipt in `data`: a receipt as is, or the one inside a receipt response
    (`{"status": ..., "receipt": {...}}`, as GET /v1/records/{id}/receipt answers and
    POST /v1/verify takes), so a verifier accepts what the API hands out without editing it.
    Anything else is returned unchanged for `parse_receipt` to name what is wrong.

    Raises:
        InputError: a response whose receipt is not there yet (`"receipt": null`, pending).
    """
    if not isinstance(data, dict) or "format" in data or "receipt" not in data:
        return data
    inner = data["receipt"]
    if inner is None:
        status = data.get("status", "pending")
        raise InputError(
            f"the response holds no receipt yet (status {status!r}): the record is not covered "
            "by a checkpoint; fetch it again once it is"
        )
    return inner


# The schema, checked by hand: a receipt that conforms (the common case) costs microseconds
# instead of jsonschema's ~0.3 ms, and patterns are matched whole, as JSON Schema's ECMA-262
# regular expressions are (Python's `$` would let a trailing newline through). jsonschema runs
# only to name what is wrong; tests check the two agree on every tampered receipt.
_HASH = re.compile(r"0x[0-9a-f]{64}")
_ADDRESS = re.compile(r"0x[0-9a-f]{40}")
_SIGNATURE = re.compile(r"0x[0-9a-f]{128}(1b|1c)")
_KIND = re.compile(r"[a-z][a-z0-9_]{0,63}")
_PARTICIPANT = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z")
_U64 = 2**64 - 1
_SAFE = 2**53 - 1
_TOP = {"format", "record", "signature", "domain", "leaf_index", "leaf_hash",
        "inclusion_proof", "checkpoint", "anchor"}  # fmt: skip


def _is(pattern: re.Pattern[str], v: Any) -> bool:
    return type(v) is str and pattern.fullmatch(v) is not None


def _int(v: Any, low: int, high: int) -> bool:
    return type(v) is int and low <= v <= high


def conforms(d: Any) -> bool:
    """Whether `d` is valid under docs/receipt.schema.json (duplicate keys aside)."""
    if type(d) is not dict or d.keys() != _TOP or d["format"] != FORMAT:
        return False
    r, dom, cp, anchor = d["record"], d["domain"], d["checkpoint"], d["anchor"]
    producer = r.get("producer") if type(r) is dict else None
    return (
        type(r) is dict
        and r.keys() == {"kind", "payload", "producer", "created_at", "salt"}
        and _is(_KIND, r["kind"])
        and type(r["payload"]) is dict
        and type(producer) is dict
        and producer.keys() == {"participant", "address"}
        and _is(_PARTICIPANT, producer["participant"])
        and _is(_ADDRESS, producer["address"])
        and _is(_TIME, r["created_at"])
        and _is(_HASH, r["salt"])
        and _is(_SIGNATURE, d["signature"])
        and type(dom) is dict
        and dom.keys() == {"name", "version", "chainId", "verifyingContract"}
        and dom["name"] == "forgeproof"
        and dom["version"] == "1"
        and _int(dom["chainId"], 1, _SAFE)
        and _is(_ADDRESS, dom["verifyingContract"])
        and _int(d["leaf_index"], 0, _U64)
        and _is(_HASH, d["leaf_hash"])
        and type(d["inclusion_proof"]) is list
        and len(d["inclusion_proof"]) <= 64
        and all(_is(_HASH, h) for h in d["inclusion_proof"])
        and type(cp) is dict
        and cp.keys() == {"size", "root"}
        and _int(cp["size"], 1, _U64)
        and _is(_HASH, cp["root"])
        and (
            anchor is None
            or (
                type(anchor) is dict
                and anchor.keys() == {"chain_id", "contract", "tx_hash", "block_number"}
                and _int(anchor["chain_id"], 1, _SAFE)
                and _is(_ADDRESS, anchor["contract"])
                and _is(_HASH, anchor["tx_hash"])
                and _int(anchor["block_number"], 0, _U64)
            )
        )
    )


def _where(path: Any) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def parse_receipt(data: Any) -> ParsedReceipt:
    """Validate a receipt against its JSON Schema (docs/receipt.schema.json), naming the first
    field that is missing, extra or malformed.

    Raises:
        InputError: not a forgeproof receipt, or a field is missing, extra or of the wrong shape.
    """
    if not isinstance(data, dict):
        raise InputError("a receipt is a JSON object")
    if data.get("format") != FORMAT:
        raise InputError(f"format is {data.get('format')!r}, expected {FORMAT!r}")
    if not conforms(data):
        _refuse(data)
    cp = data["checkpoint"]
    return ParsedReceipt(
        record=Record.parse(data["record"]),
        signature=unhex(data["signature"], size=65, what="signature"),
        domain=Domain.from_json(data["domain"]),
        leaf_index=data["leaf_index"],
        leaf_hash=unhex(data["leaf_hash"], size=32, what="leaf_hash"),
        proof=[unhex(h, size=32, what="inclusion_proof") for h in data["inclusion_proof"]],
        size=cp["size"],
        root=unhex(cp["root"], size=32, what="checkpoint.root"),
        anchor=data["anchor"],
    )


def _refuse(data: dict[str, Any]) -> NoReturn:
    """Name the first thing that keeps `data` from the schema.

    Raises:
        InputError: always.
    """
    errors = sorted(_validator().iter_errors(data), key=lambda e: (len(e.path), list(e.path)))
    if not errors:
        # jsonschema's Python patterns let through what ECMA-262's refuse (a trailing newline
        # before `$`); the hand check above matched whole.
        raise InputError("receipt: a value does not match its pattern exactly (a stray newline?)")
    missing = [e for e in errors if e.validator == "required" and not e.path]
    if missing:
        names = sorted(k for k in receipt_schema()["required"] if k not in data)
        raise InputError(f"receipt is missing {', '.join(names)} (truncated?)")
    first = best_match(errors) or errors[0]
    where = _where(first.absolute_path) or "receipt"
    raise InputError(f"{where}: {_complaint(first)}")


def _complaint(error: Any) -> str:
    """A schema error as a sentence that says what was expected."""
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"unexpected field(s) {', '.join(extra)}"
    if error.validator == "required":
        return str(error.message)
    if error.validator == "pattern":
        return f"{error.instance!r:.80} is not lower-case hex of the expected length or form"
    if error.validator == "type":
        return f"{error.instance!r:.80} is not of type {error.validator_value}"
    if error.validator == "oneOf" and error.instance is not None:
        # Not null, so what the object branch said.
        options = [e for e in error.context or [] if e.validator_value != "null"]
        inner = best_match(options) if options else None
        if inner is not None:
            return f"{_where(inner.relative_path) + ': ' if inner.relative_path else ''}" + (
                _complaint(inner)
            )
    return str(error.message)


# Checks the caller can plug in: each raises LedgerError when the claim does not hold.
CheckpointSource = Callable[[int, bytes], str]  # (size, root) -> description of what matched
AnchorSource = Callable[[ParsedReceipt], str]
KeySource = Callable[[ParsedReceipt], str]

KEY_CHECK = "key (chain)"


def verify_receipt(
    data: Any,
    *,
    key_source: KeySource | None = None,
    checkpoint_source: CheckpointSource | None = None,
    anchor_source: AnchorSource | None = None,
    expected_domain: Domain | None = None,
) -> Verdict:
    """Run every check on a receipt and report each by name.

    Checks: format, canonical (leaf hash from the record), signature (EIP-712 by the producer),
    key (chain) (the signer could sign this kind of record for its participant at the block
    of the first checkpoint that covered it, needs `key_source`), inclusion (proof to the
    checkpoint root), checkpoint (the root is the log's at that size, needs
    `checkpoint_source`), anchor (the checkpoint is on chain, needs `anchor_source`).
    """
    v = Verdict()
    try:
        r = parse_receipt(data)
        # A payload RFC 8785 cannot write (an integer past 2^53, a lone surrogate, NaN) is no
        # record of this format: refused here, as a failed check, not raised.
        canonical = r.record.canonical_bytes()
    except LedgerError as exc:
        v.add("format", "failed", str(exc))
        return v
    v.add("format", "ok", FORMAT)

    if expected_domain is not None and r.domain != expected_domain:
        v.add(
            "domain",
            "failed",
            f"receipt is for {r.domain.to_json()}, expected {expected_domain.to_json()}",
        )

    data_hash = commitment(canonical)
    leaf = hash_leaf(data_hash)
    if leaf == r.leaf_hash:
        v.add("canonical", "ok", f"leaf hash {hex0x(leaf)}")
    else:
        v.add(
            "canonical",
            "failed",
            f"record hashes to leaf {hex0x(leaf)}, receipt says {hex0x(r.leaf_hash)}",
        )

    try:
        verify_record_signature(r.domain, r.record, r.signature, data_hash)
        v.add("signature", "ok", f"EIP-712 signature by {r.record.producer.address}")
    except LedgerError as exc:
        v.add("signature", "failed", str(exc))

    if key_source is None:
        v.add(
            KEY_CHECK,
            "skipped",
            "needs the chain: whether the signer was a key of its participant, allowed to sign "
            "this kind of record, when the record was first anchored",
        )
    else:
        _run(v, KEY_CHECK, lambda: key_source(r))

    try:
        verify_inclusion(leaf, r.leaf_index, r.size, r.proof, r.root)
        detail = f"leaf {r.leaf_index} in tree of size {r.size}"
        if anchor_source is None and checkpoint_source is None:
            # A proof fits more than one size (a leaf near the end of a tree of 231 leaves has
            # the same path in one of 232): without the anchor, size and root are a claim.
            detail += " (size and root as the receipt claims them: only the anchor check "
            detail += "authenticates them)"
        v.add("inclusion", "ok", detail)
    except LedgerError as exc:
        v.add("inclusion", "failed", str(exc))

    if checkpoint_source is None:
        v.add("checkpoint", "skipped", "needs the log: whether its root at this size is this root")
    else:
        _run(v, "checkpoint", lambda: checkpoint_source(r.size, r.root))
    if anchor_source is None:
        v.add(
            "anchor",
            "skipped",
            "needs the chain: whether this size and root are anchored (until then the tree "
            "size and root are the receipt's word)",
        )
    else:
        _run(v, "anchor", lambda: anchor_source(r))
    return v


class NotYetAnchored(LedgerError):
    """A chain check that cannot be made yet: the receipt claims no anchor, and the chain has
    none for it. Reported as skipped, with the reason."""


def _run(v: Verdict, name: str, check: Callable[[], str]) -> None:
    try:
        v.add(name, "ok", check())
    except NotYetAnchored as exc:
        v.add(name, "skipped", str(exc))
    except LedgerError as exc:
        v.add(name, "failed", str(exc))


def log_checkpoint_source(log: Log) -> CheckpointSource:
    """Check a (size, root) against the local log."""

    def check(size: int, root: bytes) -> str:
        try:
            have = log.root(size)
        except LedgerError as exc:
            raise NotFound(f"the local log cannot confirm size {size}: {exc}") from None
        if have != root:
            raise VerificationError(
                f"the log's root at size {size} is {hex0x(have)}, receipt says {hex0x(root)}"
            )
        return f"root matches the local log at size {size}"

    return check


def chain_key_source(chain: Any) -> KeySource:
    """Check a receipt's signer against the contract's registry (a `ChainClient`): at the block
    of the first checkpoint that covered the record, the signer was a valid key of its
    participant, and the participant held a role that may sign the record's kind."""

    def check(r: ParsedReceipt) -> str:
        producer = r.record.producer
        try:
            first = chain.covering_checkpoint(r.leaf_index, r.size)
        except NotFound:
            # The receipt's checkpoint is not (yet) on chain: ask from the latest one.
            try:
                first = chain.covering_checkpoint(r.leaf_index)
            except NotFound as exc:
                if r.anchor is None:
                    raise NotYetAnchored(
                        f"{exc}: the chain judges the key at the block of the first checkpoint "
                        "that covers the record"
                    ) from None
                raise
        block = first.block_number
        chain.require_key(producer.participant, producer.address, block=block)
        roles = chain.roles_at(producer.participant, block)
        check_kind(producer.participant, roles, r.record.kind)
        return (
            f"{producer.address} was a key of {producer.participant} "
            f"({', '.join(sorted(roles))}) at block {block}, where checkpoint {first.size} "
            "first covered the record"
        )

    return check


def chain_anchor_source(chain: Any) -> AnchorSource:
    """Check a receipt's checkpoint (and its anchor claims) against a `ChainClient`."""

    def check(r: ParsedReceipt) -> str:
        claims = r.anchor or {}
        if r.anchor is None and chain.find_checkpoint(r.size) is None:
            raise NotYetAnchored(
                f"the receipt claims no anchor and the chain has none at size {r.size} yet"
            )
        anchor = chain.check_anchor(
            r.size,
            r.root,
            chain_id=claims.get("chain_id", r.domain.chain_id),
            contract=claims.get("contract", r.domain.verifying_contract),
            tx_hash=claims.get("tx_hash"),
            block_number=claims.get("block_number"),
        )
        return (
            f"root anchored at size {r.size} on chain {anchor.chain_id} in block "
            f"{anchor.block_number} (tx {anchor.tx_hash})"
        )

    return check
