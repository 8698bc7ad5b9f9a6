"""RFC 8785 (JCS) canonical JSON, with a fast path for the values records carry.

`canonical_json` returns exactly the bytes of `rfc8785.dumps` (the reference, checked against
the RFC's vectors) and raises what it raises. The fast path writes the common case, plain JSON
types with ordinary numbers, straight from C-level string escaping; anything it cannot vouch for
goes to `rfc8785` whole. Why the fast path gives the same bytes, value by value:

- strings: `json.encoder.encode_basestring` escapes `"`, `\\`, `\\b \\f \\n \\r \\t` with
  their short forms and the other controls below U+0020 as lower-case `\\u00xx`, and writes
  every other character as is: JCS section 3.2.2.2 to the letter. Lone surrogates fail the
  final UTF-8 encoding, and `rfc8785` then refuses them.
- integers: decimal digits; outside +/-(2**53 - 1) `rfc8785` refuses them.
- floats: Python's `repr` and ECMAScript's Number-to-String both write the shortest digits that
  round-trip; for 1e-4 <= |x| < 1e16 both use plain decimal notation and differ only in the
  `.0` Python puts after integral values; zero is `0`, as `rfc8785` writes -0.0 too. Exponent
  forms, NaN and infinities go to `rfc8785`.
- object keys: sorted by UTF-16 code units. For ASCII keys code-point order is the same; other
  keys are sorted by their UTF-16 encoding exactly as `rfc8785` sorts them.
- only exact `dict`, `list`, `str`, `int`, `float`, `bool` and `None` take the fast path:
  subclasses (enums, ...) and other containers keep `rfc8785`'s own rules.
"""

from __future__ import annotations

from json.encoder import encode_basestring
from typing import Any

import rfc8785

# The largest integer an IEEE 754 double holds exactly, which is all JCS numbers can carry.
_INT_MAX = 2**53 - 1


class _Unusual(Exception):
    """The fast path cannot vouch for this value; `rfc8785` decides."""


def _utf16(key: str) -> bytes:
    return key.encode("utf-16-be")


def _write(value: Any, out: list[str]) -> None:
    t = type(value)
    if t is str:
        out.append(encode_basestring(value))
    elif t is dict:
        if not value:
            out.append("{}")
            return
        keys = list(value)
        for k in keys:
            if type(k) is not str:
                raise _Unusual
        if "".join(keys).isascii():
            keys.sort()
        else:
            keys.sort(key=_utf16)
        sep = "{"
        for k in keys:
            out.append(sep)
            out.append(encode_basestring(k))
            out.append(":")
            _write(value[k], out)
            sep = ","
        out.append("}")
    elif t is list:
        if not value:
            out.append("[]")
            return
        sep = "["
        for v in value:
            out.append(sep)
            _write(v, out)
            sep = ","
        out.append("]")
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif t is int:
        if not -_INT_MAX <= value <= _INT_MAX:
            raise _Unusual
        out.append(int.__repr__(value))
    elif t is float:
        r = float.__repr__(value)
        # "e": exponent notation; "n": nan and inf.
        if "e" in r or "n" in r:
            raise _Unusual
        if value == 0:
            out.append("0")  # -0.0 too, as rfc8785 writes it
        else:
            out.append(r[:-2] if r.endswith(".0") else r)
    else:
        raise _Unusual


def fast_canonical_json(value: Any) -> bytes | None:
    """The JCS bytes of `value` if the fast path can vouch for them, else None."""
    out: list[str] = []
    try:
        _write(value, out)
        return "".join(out).encode("utf-8")
    except (_Unusual, UnicodeEncodeError, RecursionError):
        return None


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON of `value`: byte for byte what `rfc8785.dumps` returns.

    Raises:
        rfc8785.CanonicalizationError, ValueError, TypeError: as `rfc8785.dumps` does, for
            values JCS cannot carry (NaN, infinities, integers beyond 2**53, non-string keys,
            lone surrogates, other types).
    """
    fast = fast_canonical_json(value)
    return fast if fast is not None else rfc8785.dumps(value)
