"""The CBV 2.0 pre-hash string without a JSON-LD round trip, for the events it can vouch for.

`ledger.epcis.hashid` hashes with GS1's reference package `epcis-event-hash-generator`, whose
cost (~1 ms an event) is mostly JSON-LD expansion: it expands the whole document only to
learn which bare strings (`"shipping"`) stand for CBV web-vocabulary URIs
(`https://ref.gs1.org/cbv/BizStep-shipping`), then rewrites them. `fast_prehash` computes the
same string directly, and returns None (the caller then runs the reference) for anything it
does not cover.

How it stays the reference's string, byte for byte:

- the pre-hash itself is a port of the package's `json_to_py._json_to_py`,
  `json_xml_model_mismatch_correction.deep_structure_correction` and
  `hash_generator.derive_prehashes_from_events` (property order `PROP_ORDER` is the package's
  own object), with `JOIN_BY = ""` as `hashid` uses it, line by line but for two unrollings
  (a scalar under a key converted in place, `_child_to_pre_hash_string` inlined) that give
  the same tuples and strings. Its quirks are kept: the sorts, the
  mutation that re-emits half-consumed elements, `bizTransactionList` / `sourceList` /
  `destinationList` entries hashed in the key order given, time stamps normalised only under
  `PROP_ORDER`, `str()` of numbers and booleans, namespaces from the context's prefix maps;
- value canonicalisation is the package's own `_canonize_value` (web vocabulary, numbers,
  GS1 Digital Link), memoised: it is a pure function of the string. Its Digital Link
  normaliser tries ~25 patterns anchored at distinct `urn:epc:<scheme>:` prefixes or `http`;
  values with neither prefix skip it (it returns None for them), and LGTIN class URIs take
  the package's LGTIN branch directly (the only pattern they can match). Time stamps of the
  strict RFC 3339 form `YYYY-MM-DDThh:mm:ss[.f{1,6}](Z|+hh:mm|-hh:mm)` (years 1900-8999) are
  parsed directly, then normalised by the package's own steps (UTC, `round(us, -3)`,
  millisecond ISO form; ASCII `...ss.fffZ` is already that form); any other spelling goes to
  the package's `_fix_time_stamp_format`. tests/ledger/epcis/test_capture_speed.py checks
  these steps against the package's functions value by value;
- the bare-string replacement (the unique candidate ending in `-value` or `/value`) is a table
  per candidate set: value -> replacement;
- JSON-LD expansion is replaced by what it contributes for the covered events: the set of
  expanded strings starting with `https://ref.gs1.org/cbv` or `https://gs1.org/voc`, from
  the term tables of the shipped `epcis-context.jsonld` (read from the file, not copied), and
  the package's bare-string heuristic (a string value is replaced by the unique candidate
  ending in `-value` or `/value`) applied to every string of the document, as it does.

Covered (anything else returns None, and the reference decides, errors included):

- `@context`: GS1's full EPCIS 2.0 context (any of the URLs `hashid.CONTEXTS` maps to
  `epcis-context.jsonld`), alone or in a list with prefix maps `{"prefix": "namespace"}` for
  user extensions: prefixes are plain names that are neither GS1 context terms nor `http`,
  `https`, `urn`, and namespaces are strings outside the CBV / GS1 vocabularies. The
  `epcis-context-simple.jsonld` context (a top-level `@vocab`, different expansion rules),
  `@`-keywords in prefix maps and remote contexts other than GS1's are not covered;
- the event types of `validate.EVENT_TYPES`, with the standard fields at the places the
  context defines them (`eventTime` ... `sensorElementList`, `errorDeclaration`, `ilmd`,
  `persistentDisposition`), string / number / boolean values, no `null`;
- `bizTransactionList` / `sourceList` / `destinationList` entries of exactly two keys, the
  value and its `type` (in either order);
- `sensorElementList` entries with only `sensorMetadata` and `sensorReport`, and only the
  fields the context defines inside them;
- identifier and vocabulary values that are bare names, absolute URIs (`urn:`, `https:`,
  `ni:`, ... any scheme that is not a context term), compact IRIs with a GS1 prefix
  (`gs1:Temperature`, `cbv:BizStep-holding`) or a user prefix; a vocabulary value that is a
  GS1 context term name (`"cbv"`, `"epcis"`...) is not covered;
- user extensions (`prefix:name` keys, and GS1's `cbvmda:` master data) at the top level of
  the event, in `ilmd` and in `errorDeclaration`, holding scalars, lists and objects whose
  keys are extension keys too (no lists of lists). Extensions inside `readPoint`,
  `bizLocation`, sensor elements or list entries are not covered (the reference's
  `_gather_user_extensions` handles those).

tests/ledger/epcis/test_fasthash.py checks the fast string against the reference on every
official example (rewritten to the full context, and as published, where the fallback is
taken), on thousands of generated plant events, and on hypothesis-generated events.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping
from functools import cache, lru_cache
from typing import Any

from epcis_event_hash_generator import PROP_ORDER
from epcis_event_hash_generator import dl_normaliser as _dl
from epcis_event_hash_generator import hash_generator as _ref

from ledger.epcis.validate import EVENT_TYPES, schema_text

FULL_CONTEXT_FILE = "epcis-context.jsonld"
_VOCABS = ("https://ref.gs1.org/cbv", "https://gs1.org/voc")
_RESERVED_PREFIXES = frozenset({"http", "https", "urn", "_"})
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")


class _NotCovered(Exception):
    """The event is outside what the fast path vouches for."""


# ----------------------------------------------------------------------------------------
# The GS1 context, as far as the covered events need it.


@cache
def _gs1_context() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(schema_text(FULL_CONTEXT_FILE))["@context"]
    return loaded


@cache
def _terms() -> frozenset[str]:
    """Every term the full context defines at its top level (prefixes included)."""
    return frozenset(k for k in _gs1_context() if not k.startswith("@"))


@cache
def _gs1_prefixes() -> dict[str, str]:
    """The context's prefixes (terms that are IRIs ending in a gen-delim): cbv, gs1, ..."""
    return {
        k: v
        for k, v in _gs1_context().items()
        if not k.startswith("@") and isinstance(v, str) and v.endswith(("/", "#", ":"))
    }


def _expand_compact(value: str) -> str:
    prefix, _, suffix = value.partition(":")
    ns = _gs1_context().get(prefix)
    if not isinstance(ns, str):
        raise _NotCovered(value)
    return ns + suffix


def _scoped(*path: str) -> dict[str, str]:
    """The term table of a `@type: @vocab` property: term -> expanded IRI."""
    node: Any = _gs1_context()
    for key in path:
        node = node[key]
        if key != path[-1]:
            node = node["@context"]
    scoped = node.get("@context", {})
    out: dict[str, str] = {}
    for table in scoped if isinstance(scoped, list) else [scoped]:
        out.update(
            (k, _expand_compact(v))
            for k, v in table.items()
            if isinstance(v, str) and ":" in v and not k.startswith("@") and k != "epcis"
        )
    return out


@cache
def _vocab_tables() -> dict[str, dict[str, str]]:
    return {
        "bizStep": _scoped("bizStep"),
        "disposition": _scoped("disposition"),
        # persistentDisposition's context (a list): the dispositions, and set / unset as
        # @vocab properties under them.
        "persistent": _scoped("persistentDisposition"),
        "btt": _scoped("bizTransactionList", "type"),
        "sdt": _scoped("sourceList", "type"),
        "measurement": _scoped("sensorElementList", "sensorReport", "type"),
        "exception": _scoped("sensorElementList", "sensorReport", "exception"),
        "component": _scoped("sensorElementList", "sensorReport", "component"),
        "reason": _scoped("errorDeclaration", "reason"),
    }


# Field kinds: "id" (IRI, `@type: @id`), ("vocab", table) (`@type: @vocab`), "lit" (a
# literal), "dropped" (not a term of the context: JSON-LD expansion drops it).
_ID = "id"
_LIT = "lit"
_METADATA = {
    "time": _LIT,
    "startTime": _LIT,
    "endTime": _LIT,
    "deviceID": _ID,
    "deviceMetadata": _ID,
    "rawData": _ID,
    "dataProcessingMethod": _ID,
    "bizRules": _ID,
}
_REPORT: dict[str, Any] = {
    "type": ("vocab", "measurement"),
    "exception": ("vocab", "exception"),
    "deviceID": _ID,
    "deviceMetadata": _ID,
    "rawData": _ID,
    "dataProcessingMethod": _ID,
    "time": _LIT,
    "microorganism": _ID,
    "chemicalSubstance": _ID,
    "value": _LIT,
    "component": ("vocab", "component"),
    "stringValue": _LIT,
    "booleanValue": _LIT,
    "hexBinaryValue": _LIT,
    "uriValue": _ID,
    "minValue": _LIT,
    "maxValue": _LIT,
    "meanValue": _LIT,
    "sDev": _LIT,
    "percRank": _LIT,
    "percValue": _LIT,
    "uom": _LIT,
    "coordinateReferenceSystem": _ID,
}
_QUANTITY = {"epcClass": _ID, "quantity": _LIT, "uom": _LIT}
_ID_LISTS = frozenset({"epcList", "childEPCs", "inputEPCList", "outputEPCList"})
_QUANTITY_LISTS = frozenset(
    {"quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList"}
)
_PAIR_LISTS = {
    "bizTransactionList": ("bizTransaction", "btt"),
    "sourceList": ("source", "sdt"),
    "destinationList": ("destination", "sdt"),
}
_SCALARS = (str, int, float, bool)


class _Scan:
    """Checks an event is covered and collects the strings JSON-LD expansion would give that
    start with a CBV / GS1 vocabulary URI (the package's replacement candidates)."""

    def __init__(self, prefixes: Mapping[str, str]) -> None:
        self.prefixes = prefixes
        self.candidates: set[str] = set()
        self.tables = _vocab_tables()
        self.terms = _terms()

    def _absolute(self, value: str) -> None:
        # An IRI-valued string: absolute (any scheme that is not a term), a user compact IRI
        # (namespace checked when the context was), or relative (no scheme): only absolute
        # ones can be vocabulary URIs.
        head, sep, tail = value.partition(":")
        if not sep:
            return
        if head in _gs1_prefixes() and not tail.startswith("//"):
            value = _gs1_prefixes()[head] + tail  # a compact IRI: cbv:..., gs1:...
        elif head in self.terms or head == "_":
            raise _NotCovered(value)
        if head in self.prefixes:
            return
        if value.startswith(_VOCABS):
            self.candidates.add(value)

    def iri(self, value: Any) -> None:
        if type(value) is not str:
            raise _NotCovered(value)
        self._absolute(value)

    def vocab(self, value: Any, table: str) -> None:
        if type(value) is not str:
            raise _NotCovered(value)
        mapped = self.tables[table].get(value)
        if mapped is not None:
            if mapped.startswith(_VOCABS):
                self.candidates.add(mapped)
            return
        if value in self.terms or value in self.prefixes or value.startswith("@"):
            raise _NotCovered(value)
        self._absolute(value)

    def literal(self, value: Any) -> None:
        if type(value) not in _SCALARS:
            raise _NotCovered(value)
        if type(value) is str and value.startswith(_VOCABS):
            self.candidates.add(value)

    def field(self, kind: Any, value: Any) -> None:
        if kind == _ID:
            self.iri(value)
        elif kind == _LIT:
            self.literal(value)
        else:
            self.vocab(value, kind[1])

    def node(self, value: Any, fields: Mapping[str, Any], extensions: bool = False) -> None:
        if type(value) is not dict:
            raise _NotCovered(value)
        for k, v in value.items():
            kind = fields.get(k)
            if kind is not None:
                self.field(kind, v)
            elif extensions and self.is_extension(k):
                self.extension(v)
            else:
                raise _NotCovered(k)

    def is_extension(self, key: str) -> bool:
        head, sep, tail = key.partition(":")
        return (
            bool(sep)
            and (head in self.prefixes or head == "cbvmda")
            and bool(tail)
            and not tail.startswith("//")
        )

    def extension(self, value: Any, depth: int = 0) -> None:
        t = type(value)
        if t is list:
            if depth:
                raise _NotCovered(value)  # lists of lists
            for v in value:
                self.extension(v, 1)
        elif t is dict:
            for k, v in value.items():
                if not self.is_extension(k):
                    raise _NotCovered(k)
                self.extension(v)
        else:
            self.literal(value)

    def event(self, event: Mapping[str, Any]) -> None:
        if event.get("type") not in EVENT_TYPES:
            raise _NotCovered("type")
        for k, v in event.items():
            if k == "type":
                continue
            if k in ("eventTime", "recordTime", "eventTimeZoneOffset", "action"):
                self.literal(v)
            elif k in ("eventID", "parentID", "transformationID"):
                self.iri(v)
            elif k in ("bizStep", "disposition"):
                self.vocab(v, k)
            elif k in ("readPoint", "bizLocation"):
                self.node(v, {"id": _ID})
            elif k in _ID_LISTS or k == "certificationInfo":
                for e in v if type(v) is list else [v]:
                    self.iri(e)
            elif k in _QUANTITY_LISTS:
                for e in _list(v):
                    self.node(e, _QUANTITY)
            elif k in _PAIR_LISTS:
                name, table = _PAIR_LISTS[k]
                for e in _list(v):
                    if type(e) is not dict or set(e) != {name, "type"}:
                        raise _NotCovered(k)
                    self.iri(e[name])
                    self.vocab(e["type"], table)
            elif k == "persistentDisposition":
                if type(v) is not dict or not set(v) <= {"set", "unset"}:
                    raise _NotCovered(k)
                for e in v.values():
                    for x in e if type(e) is list else [e]:
                        self.vocab(x, "persistent")
            elif k == "sensorElementList":
                for e in _list(v):
                    if type(e) is not dict or not set(e) <= {"sensorMetadata", "sensorReport"}:
                        raise _NotCovered(k)
                    if "sensorMetadata" in e:
                        self.node(e["sensorMetadata"], _METADATA)
                    for r in _list(e.get("sensorReport", [])):
                        self.node(r, _REPORT)
            elif k == "errorDeclaration":
                fields = {"declarationTime": _LIT, "reason": ("vocab", "reason")}
                if type(v) is not dict:
                    raise _NotCovered(k)
                for ek, ev in v.items():
                    if ek == "correctiveEventIDs":
                        for e in _list(ev):
                            self.iri(e)
                    elif ek in fields:
                        self.field(fields[ek], ev)
                    elif self.is_extension(ek):
                        self.extension(ev)
                    else:
                        raise _NotCovered(ek)
            elif k == "ilmd":
                self.node(v, {}, extensions=True)
            elif self.is_extension(k):
                self.extension(v)
            else:
                raise _NotCovered(k)


def _list(value: Any) -> list[Any]:
    if type(value) is not list:
        raise _NotCovered(value)
    return value


@cache
def _full_urls() -> frozenset[str]:
    from ledger.epcis.hashid import CONTEXTS

    return frozenset(url for url, name in CONTEXTS.items() if name == FULL_CONTEXT_FILE)


def _prefixes(context: Any) -> dict[str, str]:
    """The user prefix maps of a covered context, in order (later maps win, as in the
    package); raises `_NotCovered` for any other context."""
    items = context if type(context) is list else [context]
    full = False
    prefixes: dict[str, str] = {}
    for item in items:
        if type(item) is str:
            if item not in _full_urls():
                raise _NotCovered(item)
            full = True
        elif type(item) is dict:
            for k, v in item.items():
                if (
                    type(v) is not str
                    or not _PREFIX.match(k)
                    or k in _RESERVED_PREFIXES
                    or k in _terms()
                    or v.startswith(_VOCABS)
                    or ":" not in v
                ):
                    raise _NotCovered(k)
                prefixes[k] = v
        else:
            raise _NotCovered(item)
    if not full:
        raise _NotCovered(context)
    return prefixes


# ----------------------------------------------------------------------------------------
# The package's bare-string replacement, with the candidates found above.


def _replacement(candidates: frozenset[str], value: str) -> str:
    """The package's rule, literally: the unique candidate ending in `-value` or `/value`."""
    dash, slash = "-" + value, "/" + value
    matches = [x for x in candidates if x.endswith(dash) or x.endswith(slash)]
    return matches[0] if len(matches) == 1 else value


@lru_cache(maxsize=1 << 10)
def _replacements(candidates: frozenset[str]) -> dict[str, str]:
    """`_replacement` for a candidate set as a table: value -> its replacement, for the values
    that have one (every other value stays as it is).

    A candidate `x` ends in `-value` or `/value` exactly when `value` is what follows one of
    the `-` or `/` in `x` (one position per value: the one before its last len(value)
    characters). So the values with exactly one matching candidate are the suffixes after a
    `-` or `/` that exactly one candidate has."""
    owners: dict[str, list[str]] = {}
    for x in candidates:
        for suffix in {x[i + 1 :] for i, c in enumerate(x) if c == "-" or c == "/"}:
            owners.setdefault(suffix, []).append(x)
    return {suffix: xs[0] for suffix, xs in owners.items() if len(xs) == 1}


def _replacer(candidates: set[str]) -> Any:
    # Memoised across events: a plant's events share a handful of candidate sets.
    get = _replacements(frozenset(candidates)).get
    return lambda value: get(value, value)


# ----------------------------------------------------------------------------------------
# json_to_py._json_to_py and json_xml_model_mismatch_correction, ported.

_IGNORED_KEYS = ("#text", "rdfs:comment", "comment")
_UNSORTED_MARKERS = ("bizTransaction", "source", "destination")


class _Converter:
    def __init__(self, namespaces: Mapping[str, str], replace: Any) -> None:
        self.namespaces = namespaces
        self.replace = replace

    def key(self, text: str) -> str:
        head, sep, tail = text.partition(":")
        if sep and head in self.namespaces:
            return self.namespaces[head] + tail
        return text

    def value(self, value: Any) -> str:
        if type(value) is str:
            value = self.replace(value)
            head, sep, tail = value.partition(":")
            if sep and head in self.namespaces:
                return self.namespaces[head].replace("{", "").replace("}", "") + tail
            return value
        return str(value)

    def convert(self, obj: Any) -> tuple[Any, str, list[Any]]:
        """`_json_to_py` (the `@xmlns` and `#text` branches cannot occur when covered).

        Unrolled: a scalar under a key becomes `(key, value, [])` directly, where the package
        converts it to `("", value, [])` first and then copies the value under the key."""
        children: list[Any] = []
        if type(obj) is dict:
            name: Any = ""
            if "type" in obj:
                name = obj["type"]
                if type(name) is str:
                    name = self.replace(name)
            namespaces, value, convert = self.namespaces, self.value, self.convert
            for key, val in obj.items():
                if key in _IGNORED_KEYS:
                    continue
                head, sep, tail = key.partition(":")
                if sep and head in namespaces:
                    key = namespaces[head] + tail
                t = type(val)
                if t is list:
                    sub = [
                        convert(e) if type(e) is dict or type(e) is list else ("", value(e), [])
                        for e in val
                    ]
                    if not ("bizTransaction" in val or "source" in val or "destination" in val):
                        sub.sort()
                    for c in sub:
                        children.append((key, c[1], c[2]))
                elif t is dict:
                    c = convert(val)
                    children.append((key, c[1], c[2]))
                else:
                    children.append((key, value(val), []))
            if not ("bizTransaction" in obj or "source" in obj or "destination" in obj):
                children.sort()
            return name, "", children
        if type(obj) is list:
            for child in obj:
                children.append(self.convert(child))
            if not ("bizTransaction" in obj or "source" in obj or "destination" in obj):
                children.sort()
            return "", "", children
        return "", self.value(obj), []


def _mismatch(py: tuple[Any, str, list[Any]]) -> tuple[Any, str, list[Any]]:
    name = py[0]
    if name == "inputEPC" or name == "outputEPC":
        return "epc", py[1], py[2]
    if (
        name == "inputQuantity"
        or name == "outputQuantity"
        or name == "childQuantity"
        or (name == "quantity" and len(py[2]) > 0)
    ):
        return "quantityElement", py[1], py[2]
    return py


def _deep_structure_correction(py: Any) -> Any:
    children: list[Any] = py[2] if len(py) > 2 else []
    if not children:  # a leaf: what the steps below come to (its empty list is its own)
        return _mismatch(py)
    lists: dict[str, list[Any]] = {}
    for element in [e for e in children if not isinstance(e[0], tuple) and e[0].endswith("List")]:
        lists.setdefault(element[0], []).append((element[0][:-4], element[1], element[2]))
        children.remove(element)
    for list_name, elements in lists.items():
        if list_name in ("sourceList", "destinationList", "bizTransactionList"):
            children.append((list_name, "", [(e[2][0], e[2][1]) for e in elements]))
        else:
            children.append((list_name, "", elements))
    child_epcs: list[Any] = []
    for element in [e for e in children if e[0] == "childEPCs"]:
        child_epcs.append(("epc", element[1], []))
        children.remove(element)
    if child_epcs:
        children.append(("childEPCs", "", child_epcs))
    corrected = []
    for element in children:
        if element[0] in ("sourceList", "destinationList", "bizTransactionList"):
            corrected.append(element)
        else:
            corrected.append(_deep_structure_correction(element))
    return _mismatch((py[0], py[1], corrected))


# ----------------------------------------------------------------------------------------
# hash_generator, ported (JOIN_BY = "").

_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(?:(Z)|([+-])(\d{2}):(\d{2}))$"
)


def _parse_time(text: str) -> datetime.datetime | None:
    m = _TIME.match(text)
    if m is None:
        return None
    y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
    year, off_h, off_m = int(y), 0 if z else int(oh), 0 if z else int(om)
    if not 1900 <= year <= 8999 or off_h > 23 or off_m > 59:
        return None
    offset = datetime.timedelta(hours=off_h, minutes=off_m)
    tz = datetime.UTC if z else datetime.timezone(-offset if sign == "-" else offset)
    try:
        return datetime.datetime(
            year, int(mo), int(d), int(h), int(mi), int(s),
            int(frac.ljust(6, "0")) if frac else 0, tz,
        )  # fmt: skip
    except ValueError:
        return None


@lru_cache(maxsize=1 << 14)
def _fix_time_stamp_format(timestamp: str) -> str:
    parsed = _parse_time(timestamp)
    if parsed is None:
        fixed: str = _ref._fix_time_stamp_format(timestamp)
        return fixed
    if len(timestamp) == 24 and timestamp[23] == "Z" and timestamp.isascii():
        # Already the form the steps below write (UTC, milliseconds; ASCII digits, as the
        # pattern's \d would take others): they would give it back unchanged.
        return timestamp
    # The package's own steps after `dateutil.parser.parse`, with one difference: rounding
    # .9995 s and up to milliseconds carries into the next second, where the package's
    # `replace(microsecond=1_000_000)` raises and it drops the event (no ID at all: a capture
    # of an event stamped at such a microsecond, 1 in 2,000, was refused). Everywhere else the
    # same value as the package's.
    t = parsed.astimezone(datetime.UTC)
    t += datetime.timedelta(microseconds=round(t.microsecond, -3) - t.microsecond)
    return t.isoformat(timespec="milliseconds")[:-6] + "Z"


# The GS1 Digital Link normaliser's pattern for EPC class URIs (LGTIN), as the package has it.
_LGTIN = re.compile(
    r"^urn:epc:class:lgtin:(([\d]{6}\.[\d]{7})|([\d]{7}\.[\d]{6})|([\d]{8}\.[\d]{5})|([\d]{9}\.[\d]{4})|([\d]{10}\.[\d]{3})|([\d]{11}\.[\d]{2})|([\d]{12}\.[\d]{1}))\.(\%2[125-9A-Fa-f]|\%3[0-9A-Fa-f]|\%4[1-9A-Fa-f]|\%5[0-9AaFf]|\%6[1-9A-Fa-f]|\%7[0-9Aa]|[!\')(*+,.0-9:;=A-Za-z_-]){1,20}$"
)
_percent_encode = getattr(_dl, "__web_uri_percent_encoder")


@lru_cache(maxsize=1 << 16)
def _canonize_value(text: str) -> str:
    """The package's `_canonize_value`: web vocabulary, numbers, then its GS1 Digital Link
    normaliser, which tries some 25 patterns in turn (~7 us a value). Every one of them is
    anchored at `urn:epc:<scheme>:` (schemes all different) or at `http`, so:

    - a value starting with neither gets None from it, and stays as formatted;
    - an LGTIN class URI (`urn:epc:class:lgtin:`, most of a plant's identifiers) can only
      match the LGTIN pattern: its branch is taken as the package writes it;
    - anything else goes to the package's own function.

    tests/ledger/epcis/test_fasthash.py checks this against the package's function."""
    value = _ref._try_format_numeric(_ref._try_format_web_vocabulary(text))
    if not value.startswith(("urn:epc:", "http")):
        return value
    if value.startswith("urn:epc:class:lgtin:") and "." in value:
        if _LGTIN.match(value) is None:
            return value  # no pattern matches: the normaliser gives None
        partition = value.index(".")
        prefix = value[20:partition]
        itemref = value[partition + 1 : partition + 1 + (13 - len(prefix))]
        raw_gtin = itemref[0:1] + prefix + itemref[1:]
        return (
            "https://id.gs1.org/01/" + raw_gtin + str(_dl.check_digit(raw_gtin)) + "/10/"
            + _percent_encode(value[35:])
        )  # fmt: skip
    out: str = _ref._canonize_value(text)
    return out


def _recurse_through_children_in_order(child_list: list[Any], child_order: Any) -> str:
    # `_child_to_pre_hash_string` inlined (a call per value was a fifth of the cost). The
    # package joins `[pre_hash, *sorted(values)]` when `"".join(values)` is not empty, that
    # is when some value is (empty ones are never kept): the same as appending them here.
    pre_hash = ""
    user_extensions = _gather_user_extensions(child_list)
    # Names absent add nothing: skipped. (Pair entries have tuples for names: never skipped.)
    present = {x[0] for x in child_list if type(x[0]) is str}
    for child_name, sub_child_order in child_order:
        if type(child_name) is str and child_name not in present:
            continue
        children = [x for x in child_list if x[0] == child_name]
        list_of_values = []
        for child in children:
            grand_child_text = (
                _recurse_through_children_in_order(child[2], sub_child_order)
                if sub_child_order
                else ""
            )
            text = ""
            if child[1]:
                text = child[1].strip()
                name = child[0].lower()
                if name.find("time") >= 0 and name.find("offset") < 0:
                    text = _fix_time_stamp_format(text)
                else:
                    text = _canonize_value(text)
                if text:
                    text = "=" + text
            if text or grand_child_text:
                list_of_values.append(str(child[0] + text + grand_child_text))
            if len(child[2]) == 0:
                child_list.remove(child)
        if list_of_values:
            list_of_values.sort()
            pre_hash += "".join(list_of_values)
    if len(user_extensions) > 0:
        pre_hash = pre_hash + _generic_child_list_to_prehash_string(user_extensions)
    return pre_hash


def _gather_user_extensions(child_list: list[Any]) -> list[Any]:
    user_extensions: list[Any] = []
    if len(child_list) <= 1:
        return user_extensions
    for child in child_list:
        if "eventTime" in child[0] or "action" in child[0]:
            return user_extensions
    for x in child_list:
        if isinstance(x, tuple) and ("{" in x[0] and "/}" in x[0]):
            user_extensions.append(x)
    for element in user_extensions:
        child_list.remove(element)
    return user_extensions


def _generic_child_list_to_prehash_string(children: Any) -> str:
    list_of_values = []
    for child in children:
        if isinstance(child, tuple) and len(child) == 2 and isinstance(child[0], tuple):
            list_of_values.append(_generic_child_list_to_prehash_string(child))
        else:
            text = child[1].strip()
            if text:
                text = "=" + _canonize_value(text)
            list_of_values.append(child[0] + text + _generic_child_list_to_prehash_string(child[2]))
    if len(children) > 1 and all(c[0] not in _UNSORTED_MARKERS for c in children):
        list_of_values.sort()
    return "".join(list_of_values)


_NOT_HASHED = ("recordTime", "eventID", "type", "errorDeclaration")


def _prehash_of(event: tuple[Any, str, list[Any]]) -> str:
    ordered = _recurse_through_children_in_order(event[2], PROP_ORDER)
    rest = [c for c in event[2] if c[0] not in _NOT_HASHED]
    generic = _generic_child_list_to_prehash_string(rest) if rest else ""
    return "eventType=" + event[0] + ordered + generic


# ----------------------------------------------------------------------------------------


def covered(event: Mapping[str, Any], context: Any) -> bool:
    """Whether `fast_prehash` vouches for this event (without `@context`) under `context`."""
    try:
        _Scan(_prefixes(context)).event(event)
    except _NotCovered:
        return False
    return True


def fast_prehash(event: Mapping[str, Any], context: Any) -> str | None:
    """The reference implementation's pre-hash string of `event` (without `@context`) under
    `context`, or None when the event is not covered (see the module docstring)."""
    try:
        prefixes = _prefixes(context)
        scan = _Scan(prefixes)
        scan.event(event)
        replace = _replacer(scan.candidates) if scan.candidates else _identity
        # The package collects namespaces from the (rewritten) context's prefix maps.
        namespaces = {k: "{" + replace(v) + "}" for k, v in prefixes.items()}
        py = _Converter(namespaces, replace).convert(event)
        return _prehash_of(_deep_structure_correction(py))
    except Exception:
        return None


def _identity(value: str) -> str:
    return value
