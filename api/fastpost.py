"""Submissions and verifications answered before FastAPI's routing, when that gives the route's
answer: `POST /v1/records` and `POST /v1/verify`.

FastAPI's routing, dependency injection, body validation and thread-pool hop cost several times
the work of checking a record (bench/api.py, docs/api-performance.md). `PostFastPath` reads the
body itself and runs the route's own steps, calling the same functions in the same order
(`parse_submission`, `Service.check_submission`, `Service.append`; `loads_strict`,
`verdict_of`), and serializes the answer with the route's own response model. It answers only
the plain success: a known API key of a role the route lets in, a JSON body of the shape the
route's model takes, a record the caller produced that passes every check, a receipt whose
chain checks are remembered. Anything else (no key, an unknown or revoked key, a wrong role, a
body FastAPI would refuse or parse differently, any refusal, an outcome record, a chain call
still to make) goes to the route with the body replayed exactly as it was received, so every
refusal is the route's own answer, status, headers and problem document alike. Nothing is
appended before every check passed, so falling through after a refusal changes nothing.

Appends are group-committed as the route's are (`Service.append`), from the event loop: records
checked while a transaction runs are appended together by the next one, and only that
transaction runs on a thread.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable, Container
from typing import Any

from starlette._exception_handler import _lookup_exception_handler
from starlette._utils import is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from api.deps import WRITER_ROLES
from api.metrics import FAST_POST
from api.outcomes import OUTCOME_KIND
from api.receipts import CachedAnchors
from api.schemas import RecordAccepted, VerifyRequest
from api.service import Service
from ledger.ingest import Accepted, parse_submission
from ledger.log import Appended
from ledger.receipts import loads_strict
from ledger.records import hex0x

RECORDS, VERIFY = "/v1/records", "/v1/verify"
_JSON = b"application/json"


class _Batcher:
    """Group commit from the event loop: records wait while a transaction runs, and the next
    one appends them all (`Service.append`, one call, one transaction, the append lock held
    as for every other append). A failed transaction fails each record in it, as group commit
    does for the route's callers."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._waiting: list[tuple[Accepted, dict[str, Any], asyncio.Future[Appended]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def append(self, accepted: Accepted, payload: dict[str, Any]) -> Appended:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Appended] = loop.create_future()
        self._waiting.append((accepted, payload, done))
        drainer = self._drainer
        if drainer is None or drainer.done() or drainer.get_loop() is not loop:
            self._drainer = loop.create_task(self._drain())
        return await done

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                results = await loop.run_in_executor(
                    None, self.service.append, [b[0] for b in batch], [b[1] for b in batch]
                )
            except BaseException as exc:  # handed to every waiter, as group commit does
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, _, done), result in zip(batch, results, strict=True):
                if not done.done():
                    done.set_result(result)


class PostFastPath:
    """ASGI middleware: answers plain successful submissions and verifications itself, passes
    everything else to the routes with the body replayed.

    Args:
        app: the application behind it.
        service: the service the routes use.
        routes: the two routes (`POST /v1/records`, `POST /v1/verify`), by path: put in the
            scope so metrics label the fast path's answers like the route's, and whose
            response models serialize them.
        handlers: the application's exception handlers (an append that fails is answered as
            the route's failure would be).
        routed_kinds: the record kinds POST /v1/records refuses (`records.ROUTED_KINDS`).
        verdict: the verify route's verdict (`verify.verdict_of`).

    The app factory hands it the routes' own pieces: nothing but the factory imports routes.
    """

    def __init__(
        self,
        app: Any,
        *,
        service: Service,
        routes: dict[str, Any],
        handlers: dict[Any, Any],
        routed_kinds: Container[str],
        verdict: Callable[..., dict[str, Any]],
    ) -> None:
        self.app = app
        self.service = service
        self.routed_kinds = routed_kinds
        self.verdict = verdict
        self.keys = service.api_keys
        self.routes = routes
        self.batcher = _Batcher(service)
        # As Starlette's ExceptionMiddleware splits them (the 500 handler is the outermost
        # middleware's, and sees what escapes from here as it sees what escapes the route).
        self.status_handlers = {k: v for k, v in handlers.items() if isinstance(k, int)}
        self.type_handlers = {
            k: v for k, v in handlers.items() if not isinstance(k, int) and k is not Exception
        }
        self.status_handlers.pop(500, None)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path != RECORDS and path != VERIFY:
            await self.app(scope, receive, send)
            return
        caller = self._caller(scope, path)
        if caller is None:
            FAST_POST.labels(path, "passed").inc()
            await self.app(scope, receive, send)
            return
        # The body, read as the route would read it; replayed to the route if it answers.
        messages: list[dict[str, Any]] = []
        chunks: list[bytes] = []
        error: BaseException | None = None
        try:
            while True:
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request":
                    break  # a disconnect: the route meets it
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
        except Exception as exc:  # too large, or the server's own failure: the route's to meet
            error = exc
        if error is None and messages[-1]["type"] == "http.request":
            body = b"".join(chunks)
            if path == RECORDS:
                answered = await self._submit(scope, receive, send, caller, body)
            else:
                answered = await self._verify(scope, receive, send, body)
            if answered:
                FAST_POST.labels(path, "served").inc()
                return
        FAST_POST.labels(path, "passed").inc()
        await self.app(scope, _replay(messages, error, receive), send)

    def _caller(self, scope: dict[str, Any], path: str) -> Any:
        """The caller of a live API key the route would let in, or None (the route answers)."""
        authorization = content_type = None
        for name, value in scope["headers"]:
            # The first of repeated headers counts, as in Starlette's `Headers.get`.
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"content-type" and content_type is None:
                content_type = value
        if not authorization:
            return None
        if path == RECORDS and content_type != _JSON:
            return None  # FastAPI decides what other media types mean
        try:
            caller = self.keys.lookup_bearer(authorization)
        except Exception:
            return None  # the route meets the same failure and answers it
        if caller is None or (path == RECORDS and caller.role not in WRITER_ROLES):
            return None
        return caller

    async def _submit(
        self, scope: dict[str, Any], receive: Any, send: Any, caller: Any, body: bytes
    ) -> bool:
        """`submit_record`'s steps, in its order; False (nothing done) where the route must
        answer."""
        service = self.service
        try:
            obj = json.loads(body)  # as Starlette's `Request.json`, which FastAPI calls
            if type(obj) is not dict:
                return False
            record_json, signature_hex = obj.get("record"), obj.get("signature")
            if type(record_json) is not dict or type(signature_hex) is not str:
                return False  # RecordCreate would refuse it, or coerce it
            # What `RecordCreate.model_dump()` hands the route: the two fields, extras dropped.
            record, signature = parse_submission(
                {"record": record_json, "signature": signature_hex}
            )
            if record.producer.participant != caller.participant:
                return False
            if record.kind in self.routed_kinds or record.kind == OUTCOME_KIND:
                return False  # refused, or settled against promises: the route does it
            accepted = service.check_submission(record, signature)
        except Exception:
            return False  # a refusal: the route makes it again and words it
        scope["route"] = self.routes[RECORDS]
        try:
            result = await self.batcher.append(accepted, record.payload)
        except Exception as exc:
            await self._fail(scope, receive, send, exc)
            return True
        model = RecordAccepted(
            status="duplicate" if result.duplicate else "accepted",
            id=hex0x(result.leaf_hash),
            index=result.index,
        )
        await self._respond(scope, receive, send, model, 200 if result.duplicate else 201)
        return True

    async def _verify(self, scope: dict[str, Any], receive: Any, send: Any, body: bytes) -> bool:
        """`verify`'s steps when every chain answer is remembered; False where the route must
        answer (a refusal, or a chain call to make on its thread pool)."""
        service = self.service
        try:
            parsed = loads_strict(body)
            if not isinstance(parsed, dict) or not isinstance(parsed.get("receipt"), dict):
                return False
            request = VerifyRequest(receipt=parsed["receipt"])
            anchors, keys = service.anchor_source, service.key_source
            if not (isinstance(anchors, CachedAnchors) and isinstance(keys, CachedAnchors)):
                return False  # no chain: rare enough for the route
            # The route asks `chain_known` first, which parses the receipt once more than
            # verifying does; here each chain check looks at the receipt verification parsed,
            # and one the chain would have to answer stops everything: the route answers it.
            verdict = self.verdict(
                request, service, key_source=_remembered(keys), anchor_source=_remembered(anchors)
            )
        except Exception:  # a refusal, or _NeedsChain
            return False
        scope["route"] = self.routes[VERIFY]
        await self._respond(scope, receive, send, verdict, 200)
        return True

    async def _respond(
        self, scope: dict[str, Any], receive: Any, send: Any, content: Any, status: int
    ) -> None:
        """As FastAPI answers a route's return value: validated and serialized by the route's
        response model, sent as JSON."""
        field = self.routes[scope["path"]].response_field
        value, errors = field.validate(content, {}, loc=("response",))
        if errors:  # cannot happen for these models; the route would say the same
            raise RuntimeError(f"response does not fit its model: {errors}")
        response = Response(
            content=field.serialize_json(value, by_alias=True),
            media_type="application/json",
            status_code=status,
        )
        await response(scope, receive, send)

    async def _fail(self, scope: dict[str, Any], receive: Any, send: Any, exc: Exception) -> None:
        """An exception, answered by the handler the route's would have met (Starlette's
        lookup), or raised to the outermost middleware as the route's would be."""
        handler = None
        if isinstance(exc, StarletteHTTPException):
            handler = self.status_handlers.get(exc.status_code)
        if handler is None:
            handler = _lookup_exception_handler(self.type_handlers, exc)
        if handler is None:
            raise exc
        request = Request(scope, receive)
        call: Any = handler
        if is_async_callable(call):
            response = await call(request, exc)
        else:
            response = await run_in_threadpool(call, request, exc)
        await response(scope, receive, send)


class _NeedsChain(Exception):
    """A chain check the cache cannot answer (not a LedgerError: verification does not catch
    it)."""


def _remembered(source: CachedAnchors) -> Any:
    """`source`, answering only from what it remembers; raises _NeedsChain otherwise."""

    def check(r: Any) -> str:
        if not source.knows_parsed(r):
            raise _NeedsChain
        return source(r)

    return check


def _replay(messages: list[dict[str, Any]], error: BaseException | None, receive: Any) -> Any:
    """A `receive` that gives the route what the fast path read, then raises what reading
    raised, then reads on."""
    pending = deque(messages)
    failed = [error]

    async def replay() -> dict[str, Any]:
        if pending:
            return pending.popleft()
        if failed[0] is not None:
            exc, failed[0] = failed[0], None
            raise exc
        message: dict[str, Any] = await receive()
        return message

    return replay


__all__ = ["PostFastPath"]
