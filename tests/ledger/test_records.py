"""Record envelope, canonical bytes (RFC 8785 vectors) and the salted commitment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import InputError
from ledger.merkle import hash_leaf
from ledger.records import Record, commitment
from tests.ledger.conftest import rfc8785_vectors

ADDR = "0x" + "11" * 20


def test_rfc8785_vectors(vectors_dir: Path) -> None:
    for v in rfc8785_vectors(vectors_dir):
        got = rfc8785.dumps(v.value)
        assert got == v.output, v.name
        assert got == v.output_hex, v.name
        # A record carrying the vector as its payload embeds exactly those bytes.
        rec = Record.new("note", {"v": v.value}, participant="p", address=ADDR)
        assert b'"payload":{"v":' + v.output + b"}" in rec.canonical_bytes()


def test_commitment_and_leaf() -> None:
    rec = Record.new("prediction", {"rul": 87.5}, participant="plant-1", address=ADDR)
    canonical = rec.canonical_bytes()
    assert rec.commitment() == commitment(canonical)
    assert rec.leaf_hash() == hash_leaf(rec.commitment())
    # The salt hides the payload: the same payload twice gives unrelated leaves.
    again = Record.new("prediction", {"rul": 87.5}, participant="plant-1", address=ADDR)
    assert again.leaf_hash() != rec.leaf_hash()
    # Round trip through JSON keeps the canonical bytes.
    assert Record.parse(json.loads(json.dumps(rec.to_json()))).canonical_bytes() == canonical


@pytest.mark.parametrize(
    ("patch", "complaint"),
    [
        ({"created_at": "2026-01-31 12:00:00"}, "created_at"),
        ({"created_at": "2026-02-30T12:00:00Z"}, "created_at"),
        ({"created_at": "2026-01-31T12:00:00+01:00"}, "created_at"),
        ({"salt": "0x1234"}, "salt"),
        ({"kind": "Bad Kind"}, "kind"),
        ({"payload": [1, 2]}, "payload"),
        ({"extra": 1}, "extra"),
        ({"producer": {"participant": "p", "address": "0xABC"}}, "producer.address"),
    ],
)
def test_bad_records_name_the_field(patch: dict, complaint: str) -> None:
    good = Record.new("note", {}, participant="p", address=ADDR).to_json()
    with pytest.raises(InputError, match=complaint):
        Record.parse({**good, **patch})


def test_trailing_newlines_are_refused() -> None:
    # `re.match` lets "$" match before a final newline; the validators match the whole value.
    good = Record.new("note", {}, participant="p", address=ADDR).to_json()
    with pytest.raises(InputError, match="salt"):
        Record.parse({**good, "salt": good["salt"] + "\n"})
    with pytest.raises(InputError, match=r"producer\.address"):
        Record.parse({**good, "producer": {"participant": "p", "address": ADDR + "\n"}})


def test_missing_field_named() -> None:
    good = Record.new("note", {}, participant="p", address=ADDR).to_json()
    del good["salt"]
    with pytest.raises(InputError, match="salt: Field required"):
        Record.parse(good)


def test_uncanonicalisable_payload_is_refused() -> None:
    rec = Record.new("note", {"x": float("nan")}, participant="p", address=ADDR)
    with pytest.raises(InputError, match="canonicalised"):
        rec.canonical_bytes()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values, max_size=5))
def test_canonical_bytes_are_stable_under_reordering(payload: dict) -> None:
    try:
        rec = Record.new("note", payload, participant="p", address=ADDR)
    except InputError as exc:
        # A float RFC 8785 writes as an integer beyond 2**53 is refused (it would not read
        # back as itself); nothing else is.
        assert "would not read back" in str(exc)
        return
    shuffled = dict(reversed(list(rec.to_json().items())))
    shuffled["payload"] = dict(reversed(list(payload.items())))
    assert Record.parse(shuffled).canonical_bytes() == rec.canonical_bytes()
    # Idempotent: canonical bytes read back as I-JSON numbers canonicalise to themselves.
    canonical = rec.canonical_bytes()
    assert rfc8785.dumps(json.loads(canonical)) == canonical
