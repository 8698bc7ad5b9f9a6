"""CBV 2.0 event hash IDs (`ni:///sha-256;...?ver=CBV2.0`), computed offline.

The algorithm (CBV 2.0 section 8.9) is implemented by GS1's reference package
`epcis-event-hash-generator`, used here as is. Two things are added around it:

- a JSON-LD document loader that maps the GS1 context URLs to the copies shipped in
  `schema/`. The package's own loader falls back to the internet for any other URL (the
  `epcis-context-simple.jsonld` of every official example among them); ours refuses instead,
  so nothing here ever touches the network;
- one event per call. The package expands a whole document and rewrites bare strings using
  values found anywhere in it, and it keeps namespace prefixes in a module-level dict across
  calls; hashing each event alone, with its own context and a fresh prefix table, makes the ID
  a property of the event, not of the document it arrived in or of what was hashed before.
  For every official example the per-event IDs equal the package's document-level ones
  (tests/ledger/epcis/test_hashid.py);
- two IDs where the package depends on key order. It keeps the order it is given inside the
  entries of `bizTransactionList`, `sourceList` and `destinationList`, so
  `{"type": t, "source": s}` and `{"source": s, "type": t}` hash differently. `event_hash_id`
  is the package's output on the event as given, byte for byte: the ID any other repository
  running it on the same document computes, under which the event is captured and found.
  `stored_hash_id` is its output on the keys sorted, as the log stores events (RFC 8785
  canonical JSON): what anyone recomputes from a stored event or an export, the same however
  the JSON was written, and with the value before its type as CBV 2.0 rule 13 wants ("the
  type key-value pair SHALL follow the actual key-value"). The two differ only for events
  with those lists whose entries put the type first (GS1's own examples do).

The package keeps global state (the pyld loader, the prefix table, the join string), so calls
are serialised by a lock.

Most events never reach it: `ledger.epcis.fasthash` builds the same pre-hash string directly
(no JSON-LD expansion, ~10 times faster) for the events it covers (GS1's full context plus
user prefix maps, the standard fields, top-level / ILMD extensions: see its docstring) and
returns None for the rest, which go to the package as before. `reference_path()` turns the
fast path off (the benchmark's baseline, the cross-checks).
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from typing import Any

from pyld import jsonld
from pyld.jsonld import JsonLdError

from ledger.epcis.errors import UnsupportedEpcis
from ledger.epcis.fasthash import fast_prehash
from ledger.epcis.validate import schema_text

# Imported after pyld: the package installs its own (networked) loader at import time, which
# `_offline` replaces for the duration of each call.
from epcis_event_hash_generator import hash_generator, json_to_py  # isort: skip

HASH_VERSION = "CBV2.0"
HASH_ALGORITHM = "sha-256"

CONTEXTS: dict[str, str] = {
    "https://ref.gs1.org/standards/epcis/epcis-context.jsonld": "epcis-context.jsonld",
    "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld": "epcis-context.jsonld",
    "https://gs1.github.io/EPCIS/epcis-context.jsonld": "epcis-context.jsonld",
    "https://gs1.github.io/EPCIS/epcis-context-simple.jsonld": "epcis-context-simple.jsonld",
}
"""Context URLs resolved from the shipped copies; any other remote context is refused."""

DEFAULT_CONTEXT = "https://ref.gs1.org/standards/epcis/epcis-context.jsonld"

_LOCK = threading.Lock()

_FAST = ContextVar("forgeproof_epcis_fast_hash", default=True)


@contextmanager
def reference_path() -> Iterator[None]:
    """Within this block, every hash ID of this context comes from the reference package."""
    token = _FAST.set(False)
    try:
        yield
    finally:
        _FAST.reset(token)


@cache
def _context_text(name: str) -> str:
    return schema_text(name)


def load_document(url: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A pyld document loader over the shipped contexts; it never opens a connection.

    Raises:
        JsonLdError: `url` is not one of `CONTEXTS` (pyld reports it as a loading failure).
    """
    name = CONTEXTS.get(url)
    if name is None:
        raise JsonLdError(
            f"context {url} is not available offline",
            "jsonld.LoadDocumentError",
            code="loading document failed",
        )
    return {
        "contentType": "application/ld+json",
        "contextUrl": None,
        "documentUrl": url,
        # A fresh object each time: pyld may keep references to what it is given.
        "document": json.loads(_context_text(name)),
        # "static": the content never changes, so pyld keeps the processed context in its
        # shared cache by URL. Without it pyld reprocesses (and canonicalises) the 20 KB
        # GS1 context on every call, nearly half the cost of a hash ID.
        "tag": "static",
    }


def remote_contexts(context: Any) -> list[str]:
    """The context URLs a `@context` value refers to at its top level."""
    items = context if isinstance(context, list) else [context]
    return [c for c in items if isinstance(c, str)]


def split_context(event: Mapping[str, Any], context: Any = None) -> tuple[dict[str, Any], Any]:
    """The event without `@context`, and the context that applies to it.

    An event's own `@context` extends the document's, as nested contexts do in JSON-LD.
    """
    body = {k: v for k, v in event.items() if k != "@context"}
    own = event.get("@context")
    if own is None:
        merged = context
    elif context is None:
        merged = own
    else:
        outer = context if isinstance(context, list) else [context]
        inner = own if isinstance(own, list) else [own]
        merged = outer + [c for c in inner if c not in outer]
    if merged is None:
        raise UnsupportedEpcis("the event has no @context, and none was given with it")
    unknown = [u for u in remote_contexts(merged) if u not in CONTEXTS]
    if unknown:
        raise UnsupportedEpcis(
            f"JSON-LD context {unknown[0]} cannot be resolved offline; "
            f"known contexts: {', '.join(sorted(CONTEXTS))}"
        )
    return body, merged


def prehash(event: Mapping[str, Any], context: Any = None) -> str:
    """The CBV 2.0 pre-hash string of one event (what gets hashed), for inspection.

    Raises:
        UnsupportedEpcis: unknown remote context, invalid JSON-LD, or an event the reference
            implementation cannot canonicalise.
    """
    body, ctx = split_context(event, context)
    if _FAST.get():
        fast = fast_prehash(body, ctx)
        if fast is not None:
            return fast
    return reference_prehash(body, ctx)


def reference_prehash(body: Mapping[str, Any], ctx: Any) -> str:
    """`prehash` by GS1's package, always (`body` without `@context`, `ctx` resolved).

    Raises:
        UnsupportedEpcis: see `prehash`.
    """
    doc = {
        "@context": copy.deepcopy(ctx),
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "1970-01-01T00:00:00Z",
        # A deep copy: the package rewrites what it is given. Key order as given.
        "epcisBody": {"eventList": [copy.deepcopy(body)]},
    }
    with _LOCK:
        previous = jsonld.get_document_loader()
        jsonld.set_document_loader(load_document)
        json_to_py._namespaces.clear()
        try:
            events = json_to_py.event_list_from_epcis_document_json(doc)
            pre = hash_generator.derive_prehashes_from_events(events, join_by="")
        except JsonLdError as exc:
            raise UnsupportedEpcis(
                f"the event is not valid JSON-LD: {_jsonld_cause(exc)}"
            ) from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UnsupportedEpcis(f"the event hash generator failed: {exc!r}") from None
        finally:
            json_to_py._namespaces.clear()
            jsonld.set_document_loader(previous)
    if len(pre) != 1:
        # The package logs and skips events it cannot canonicalise instead of raising.
        raise UnsupportedEpcis("the event hash generator could not canonicalise this event")
    return str(pre[0])


def event_hash_id(event: Mapping[str, Any], context: Any = None) -> str:
    """The CBV 2.0 event hash ID of one event, `ni:///sha-256;<hex>?ver=CBV2.0`.

    Args:
        event: the event as JSON; `eventID`, `recordTime` and `errorDeclaration` do not enter
            the hash.
        context: the `@context` of the document the event came in, when it has none itself.

    Raises:
        UnsupportedEpcis: see `prehash`.
    """
    digest = hashlib.sha256(prehash(event, context).encode("utf-8")).hexdigest()
    return f"ni:///{HASH_ALGORITHM};{digest}?ver={HASH_VERSION}"


# The lists whose entries the package hashes in the key order it is given.
ORDER_SENSITIVE = ("bizTransactionList", "sourceList", "destinationList")


def stored_hash_id(event: Mapping[str, Any], context: Any = None) -> str:
    """The hash ID of the event as the log stores it (keys sorted): what `event_hash_id` gives
    on a stored event, an export or any canonical copy. Equal to `event_hash_id(event)` unless
    an entry of `ORDER_SENSITIVE` lists put its type before its value.

    Raises:
        UnsupportedEpcis: see `prehash`.
    """
    return event_hash_id(json.loads(json.dumps(dict(event), sort_keys=True)), context)


def hash_ids(event: Mapping[str, Any], context: Any = None) -> tuple[str, str]:
    """(`event_hash_id`, `stored_hash_id`) of an event, hashing twice only when they can differ.

    Raises:
        UnsupportedEpcis: see `prehash`.
    """
    given = event_hash_id(event, context)
    entries = [e for k in ORDER_SENSITIVE for e in event.get(k) or [] if isinstance(e, dict)]
    if all(list(e) == sorted(e) for e in entries):
        return given, given
    return given, stored_hash_id(event, context)


def is_hash_id(value: object) -> bool:
    return (
        isinstance(value, str)
        and value.startswith(f"ni:///{HASH_ALGORITHM};")
        and value.endswith(f"?ver={HASH_VERSION}")
        and len(value) == len(f"ni:///{HASH_ALGORITHM};?ver={HASH_VERSION}") + 64
    )


def _jsonld_cause(exc: JsonLdError) -> str:
    # pyld's first sentence is generic; its code and details (which URL, which term) are not.
    head = str(exc.args[0]) if exc.args else type(exc).__name__
    head = head.split(". ")[0].rstrip(".")
    code = getattr(exc, "code", None)
    details = getattr(exc, "details", None)
    extra = f" ({code}{f', {details}' if details else ''})" if code else ""
    return head + extra
