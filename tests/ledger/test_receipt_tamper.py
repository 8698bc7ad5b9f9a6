"""A tamper run: every single-field mutation of real, anchored receipts is refused.

Receipts of a deployment on the embedded chain (three kinds of record, two checkpoints, leaves
at both ends of the trees) are mutated one field at a time: every string (a hex digit changed,
upper case, cut short, lengthened, emptied), every number (plus and minus one, as a string, as a
float), every object (a field dropped, a field added, a duplicate key) and every list (an item
dropped, repeated, swapped). Each mutation must be refused offline (format, canonical,
signature, inclusion) or, for what only the chain authenticates (the anchor's claims, and the
tree size a proof also fits), by the chain checks `forgeproof verify --rpc` runs. Run with `-s`
to print the counts per class (docs/receipt.md quotes them).
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import rfc8785

from ledger.chain import ChainClient
from ledger.deployment import Deployment
from ledger.ingest import check_record
from ledger.receipts import (
    _validator,
    build_receipt,
    chain_anchor_source,
    chain_key_source,
    conforms,
    loads_strict,
    verify_receipt,
)
from ledger.records import Record
from ledger.sequencer import Sequencer
from tests.ledger.testonly.enrol import enrol

Path_ = tuple[Any, ...]


@pytest.fixture(scope="module")
def receipts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[dict], ChainClient]]:
    home = tmp_path_factory.mktemp("tamper") / "home"
    dep = Deployment.init(home)
    chain = dep.open_chain()
    acme = enrol(dep, "acme", ["supplier"], chain=chain)
    line = enrol(dep, "line-3", ["manufacturer"], chain=chain)
    keys = dep.registry.snapshot()

    def append(n: int) -> None:
        items = []
        for i in range(n):
            who, signer, kind = (("acme", acme, "supplier_record"), ("line-3", line, "note"))[i % 2]
            payload = {"lot": f"LOT-{i}", "qty": i, "nested": {"ok": True, "list": [1, "two"]}}
            rec = Record.new(kind, payload, participant=who, address=signer.address)
            items.append(check_record(rec, signer.sign(dep.domain, rec), dep.domain, keys))
        dep.log.append(items)

    append(5)
    Sequencer(dep.log, chain).step(force=True)
    append(8)
    Sequencer(dep.log, chain).step(force=True)
    out = [
        json.loads(json.dumps(build_receipt(dep.log, i, dep.domain)))
        for i in (0, 1, 3, 4, 5, 7, 9, 12)
    ]
    yield out, chain
    chain.close()
    dep.close()


def leaves(value: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    """Every node of a JSON value with its path, containers included."""
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, (*path, i))


def get(doc: Any, path: Path_) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def put(doc: Any, path: Path_, value: Any) -> Any:
    out = copy.deepcopy(doc)
    if not path:
        return value
    get(out, path[:-1])[path[-1]] = value
    return out


def flip_hex(s: str) -> str:
    i = len(s) - 1
    return s[:i] + ("0" if s[i] != "0" else "1")


def mutations(receipt: dict) -> Iterator[tuple[str, Path_, Any]]:
    """(what, where, the mutated receipt), one field changed each."""
    for path, value in leaves(receipt):
        if isinstance(value, bool):
            yield "bool flipped", path, put(receipt, path, not value)
        elif isinstance(value, int):
            yield "number +1", path, put(receipt, path, value + 1)
            if value > 0:
                yield "number -1", path, put(receipt, path, value - 1)
            yield "number as string", path, put(receipt, path, str(value))
            yield "number as float", path, put(receipt, path, float(value))
        elif isinstance(value, str):
            yield "newline appended", path, put(receipt, path, value + "\n")
            if value.startswith("0x") and len(value) > 2:
                yield "hex digit changed", path, put(receipt, path, flip_hex(value))
                yield "hex upper case", path, put(receipt, path, "0x" + value[2:].upper())
                yield "hex cut short", path, put(receipt, path, value[:-2])
                yield "hex lengthened", path, put(receipt, path, value + "00")
            else:
                yield "text changed", path, put(receipt, path, value + "x")
                yield "text emptied", path, put(receipt, path, "")
        elif value is None:
            yield "null as object", path, put(receipt, path, {})
        elif isinstance(value, dict):
            for k in value:
                trimmed = {x: v for x, v in value.items() if x != k}
                yield "field dropped", (*path, k), put(receipt, path, trimmed)
            yield "field added", path, put(receipt, path, {**value, "extra": 0})
            yield "duplicate key", path, None  # built as text below
        elif isinstance(value, list):
            if value:
                yield "item dropped", path, put(receipt, path, value[:-1])
                yield "item repeated", path, put(receipt, path, [*value, value[-1]])
            if len(value) > 1 and value[0] != value[1]:
                yield "items swapped", path, put(receipt, path, [value[1], value[0], *value[2:]])


def with_duplicate_key(receipt: dict, path: Path_) -> str:
    """The receipt as JSON text with the object at `path` holding its first key twice."""
    marker = "__duplicate_marker__"
    target = get(receipt, path)
    first = next(iter(target))
    doc = put(receipt, path, {marker: None, **target})
    text = json.dumps(doc)
    return text.replace(f'"{marker}": null', f"{json.dumps(first)}: {json.dumps(target[first])}", 1)


def verdict_of(mutated: Any, chain: ChainClient) -> tuple[str, str]:
    """('offline' | 'chain' | 'accepted', the first failing check)."""
    try:
        data = loads_strict(mutated) if isinstance(mutated, str) else mutated
    except Exception as exc:
        return "offline", f"read: {type(exc).__name__}"
    offline = verify_receipt(data)
    if not offline.ok:
        return "offline", offline.failed[0].name if offline.failed else "format"
    online = verify_receipt(
        data, key_source=chain_key_source(chain), anchor_source=chain_anchor_source(chain)
    )
    if not online.ok:
        return "chain", online.failed[0].name
    return "accepted", ""


def test_every_single_field_mutation_is_refused(
    receipts: tuple[list[dict], ChainClient], capsys: pytest.CaptureFixture[str]
) -> None:
    originals, chain = receipts
    for r in originals:  # the originals hold everywhere
        assert verdict_of(r, chain) == ("accepted", ""), r["leaf_index"]
    classes: Counter[tuple[str, str]] = Counter()
    kinds: Counter[str] = Counter()
    accepted = []
    total = 0
    for receipt in originals:
        for what, path, mutated in mutations(receipt):
            if what == "duplicate key":
                mutated = with_duplicate_key(receipt, path)
            elif json.dumps(mutated) == json.dumps(receipt):
                continue  # no change at all (1.0 == 1 in Python, not in JSON text)
            total += 1
            kinds[what] += 1
            if not isinstance(mutated, str) and what != "newline appended":
                # The hand-written schema check and jsonschema agree (newlines aside: Python's
                # `$` lets one through where JSON Schema's ECMA-262 `$` does not).
                assert conforms(mutated) == _validator().is_valid(mutated), (what, path)
            where, check = verdict_of(mutated, chain)
            if where == "accepted" and rfc8785.dumps(mutated) == rfc8785.dumps(receipt):
                # The same receipt to RFC 8785 (a payload number written 1.0 instead of 1):
                # the same record, commitment and signature, so nothing to refuse.
                where, check = "same", "RFC 8785 reads it as the same"
            classes[(where, check)] += 1
            if where == "accepted":
                accepted.append((receipt["leaf_index"], what, path))
    assert total >= 1000
    assert not accepted, accepted[:10]
    # What only the chain can see: anchor claims, and tree sizes a proof also fits.
    assert classes[("chain", "anchor")] > 0
    with capsys.disabled():
        print(f"\n{total} mutations of {len(originals)} receipts")
        for (where, check), n in sorted(classes.items()):
            label = "same meaning" if where == "same" else f"refused {where}"
            print(f"  {label:<16} {check:<30} {n:>5}")
        for what, n in sorted(kinds.items()):
            print(f"  kind {what:<20} {n:>5}")
