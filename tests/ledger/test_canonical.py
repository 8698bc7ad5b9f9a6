"""The fast canonicaliser against the reference: `rfc8785.dumps` and the RFC 8785 vectors."""

from __future__ import annotations

import enum
import math
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ledger.canonical import canonical_json, fast_canonical_json
from ledger.errors import InputError
from ledger.records import Record
from tests.ledger.conftest import rfc8785_vectors

ADDR = "0x" + "11" * 20


def reference(value: Any) -> tuple[str, bytes | str]:
    """What rfc8785 makes of `value`: ("ok", bytes) or ("error", exception type name)."""
    try:
        return "ok", rfc8785.dumps(value)
    except Exception as exc:  # the property is "same outcome", whatever it is
        return "error", type(exc).__name__


def ours(value: Any) -> tuple[str, bytes | str]:
    try:
        return "ok", canonical_json(value)
    except Exception as exc:
        return "error", type(exc).__name__


def test_rfc8785_vectors(vectors_dir: Path) -> None:
    vectors = rfc8785_vectors(vectors_dir)
    for v in vectors:
        assert canonical_json(v.value) == v.output, v.name
        # Where the fast path answers (no exponent floats), it answers the vector itself.
        fast = fast_canonical_json(v.value)
        assert fast is None or fast == v.output, v.name
        rec = Record.new("note", {"v": v.value}, participant="p", address=ADDR)
        assert b'"payload":{"v":' + v.output + b"}" in rec.canonical_bytes()
    # The vectors exercise both paths: string escapes and key order go fast, the number
    # formatting vector (1e+30, 4.5e-7, ...) goes to rfc8785.
    by_name = {v.name: v.value for v in vectors}
    assert fast_canonical_json(by_name["unicode"]) is not None
    assert fast_canonical_json(by_name["values"]) is None


# Characters chosen to break naive implementations: controls and the short escapes, quotes
# and backslashes, DEL, U+2028, BMP characters above the surrogates (which sort after astral
# ones in UTF-16), astral characters, lone surrogates (not encodable), and plain ASCII.
_tricky_chars = (
    st.sampled_from(
        list('\x00\x01\x08\t\n\x0b\x0c\r\x1f "\\/\x7f\u0080\u00e9\u2028\u2029\ud7ff\ud800\udfff')
        + list("\ue000\uffee\uffff\U00010000\U0001f600\U0010ffff")
    )
    | st.characters(codec="utf-8")
    | st.characters(min_codepoint=0x20, max_codepoint=0x7E)
)
_text = st.text(_tricky_chars, max_size=8)
_keys = _text | st.sampled_from(["a", "b", "\ue000", "\U0001f600", "\uffff", "\U00010000"])


class _Colour(enum.IntEnum):
    RED = 1


class _Label(enum.StrEnum):
    OK = "ok"


_scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # beyond 2**53 too: both must refuse
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats()  # NaN, infinities, -0.0, subnormals, exponent forms
    | st.floats(min_value=1e-4, max_value=1e16)
    | st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e16, 9999999999999998.0, 1e-4, 1e-5, 0.1, 1e21])
    | _text
    | st.sampled_from([_Colour.RED, _Label.OK, b"bytes", 1 + 2j])
)
_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(_keys, children, max_size=5)
        | st.dictionaries(st.integers(0, 3), children, min_size=1, max_size=2)
    ),
    max_leaves=25,
)


@settings(max_examples=1500)
@given(_values)
@example({"\ue000": 1, "\U0001f600": 2})  # code-point order and UTF-16 order disagree
@example({"a": "\ud800"})
@example([1e21, 1e-7, -0.0, 2**53, -(2**53) + 1])
def test_same_outcome_as_rfc8785(value: Any) -> None:
    assert ours(value) == reference(value)
    fast = fast_canonical_json(value)
    if fast is not None:
        assert fast == rfc8785.dumps(value)


# What records actually carry: plain JSON types, ordinary numbers, any valid text.
_plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(min_value=1e-4, max_value=1e15)
    | st.floats(min_value=-1e15, max_value=-1e-4)
    | st.just(0.0)
    | st.text(st.characters(codec="utf-8")),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(st.characters(codec="utf-8")), children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=500)
@given(_plain)
def test_fast_path_covers_plain_values(value: Any) -> None:
    fast = fast_canonical_json(value)
    assert fast is not None
    assert fast == rfc8785.dumps(value)


@settings(max_examples=300)
@given(st.dictionaries(_keys, _values, max_size=5))
def test_record_bytes_are_rfc8785_of_the_envelope(payload: dict[str, Any]) -> None:
    try:
        rec = Record.new("note", payload, participant="p", address=ADDR)
    except InputError as exc:
        assert "would not read back" in str(exc)  # refused before canonicalising
        return
    kind, want = reference(rec.model_dump())
    if kind == "ok":
        assert rec.canonical_bytes() == want
    else:
        with pytest.raises(Exception, match="canonicalised"):
            rec.canonical_bytes()


def test_float_edges() -> None:
    cases = {
        1.0: b"1",
        -0.0: b"0",
        0.5: b"0.5",
        1e-4: b"0.0001",
        9007199254740992.0: b"9007199254740992",
        1e16: b"10000000000000000",
        1e21: b"1e+21",
        1e-7: b"1e-7",
        123456789.125: b"123456789.125",
    }
    for f, want in cases.items():
        assert canonical_json(f) == want, f
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(rfc8785.CanonicalizationError):
            canonical_json(bad)
