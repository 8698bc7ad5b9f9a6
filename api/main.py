"""The FastAPI application: `create_app(service)` wires routes, errors, limits and metrics."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import errors, portal
from api.fastpost import RECORDS, VERIFY, PostFastPath
from api.metrics import LATENCY, REQUESTS
from api.receipts import ReceiptFastPath
from api.routes import (
    checkpoints,
    epcis,
    health,
    models,
    participants,
    predictions,
    records,
    subscriptions,
    verify,
)
from api.schemas import ErrorPublic
from api.service import Service

RECEIPT_PATH = "/v1/records/{id}/receipt"

DESCRIPTION = """
Verified provenance for manufacturing ML: signed records in an append-only RFC 6962 Merkle log
whose checkpoints are anchored on an EVM chain. Authenticate with `Authorization: Bearer <API
key>`; every error is RFC 9457 problem+json with a stable `code`.
"""


def create_app(service: Service, *, fast_post: bool | None = None) -> FastAPI:
    """The application over `service`; `fast_post` (default: the setting) answers plain
    submissions and verifications before routing (api/fastpost.py)."""
    fast_post = service.settings.fast_post if fast_post is None else fast_post
    # /docs and /redoc are the portal's, from vendored bundles: FastAPI's load from a CDN.
    app = FastAPI(
        title="forgeproof", version="1", description=DESCRIPTION, docs_url=None, redoc_url=None
    )
    app.state.service = service
    errors.install(app)
    routes = [records, verify, checkpoints, models, predictions, participants, subscriptions]
    routes += [epcis, health]
    for module in routes:
        app.include_router(module.router)
    app.include_router(participants.api_keys_router)
    portal.install(app)

    _document_problems(app)
    # Both fast paths sit inside Guard (added last, outermost): their answers are
    # size-checked, secured and counted too. The last added runs first: receipts, the
    # busiest, see requests before the POST fast path does.
    if fast_post:
        app.add_middleware(
            PostFastPath,
            service=service,
            routes={
                path: next(r for r in module.router.routes if getattr(r, "path", "") == path
                           and "POST" in getattr(r, "methods", ()))
                for path, module in ((RECORDS, records), (VERIFY, verify))
            },
            handlers=app.exception_handlers,
            routed_kinds=records.ROUTED_KINDS,
            verdict=verify.verdict_of,
        )  # fmt: skip
    app.add_middleware(
        ReceiptFastPath,
        cache=service.receipts,
        keys=service.api_keys,
        store=service.dep.store,
        route=next(r for r in records.router.routes if getattr(r, "path", "") == RECEIPT_PATH),
    )
    app.add_middleware(Guard, limit=service.settings.max_body_bytes)
    return app


class BodyTooLarge(StarletteHTTPException):
    """The request body grew past the limit while it was being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes")


class Guard:
    """Body-size limit, security headers and request metrics, as plain ASGI
    (BaseHTTPMiddleware costs ~3x here).

    The limit holds on the stream, whatever the transfer encoding: a declared Content-Length
    over it is refused before anything is read, and a body (chunked or not) is cut off as soon
    as the bytes read pass it, so at most `limit` plus one chunk is ever held.
    """

    def __init__(self, app: Any, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                response = errors.problem(413, "too_large", f"request body over {self.limit} bytes")
                await response(scope, receive, _secured(send))
                return
        start = time.perf_counter()
        status = 500
        started = False
        received = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        secured = _secured(send)

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
            await secured(message)

        try:
            await self.app(scope, limited_receive, send_wrapper)
        except BodyTooLarge as exc:
            # Raised where no exception handler saw it (a route reading the stream itself).
            if started:
                raise
            status = 413
            response = errors.problem(413, "too_large", str(exc.detail))
            await response(scope, receive, secured)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            LATENCY.labels(path).observe(time.perf_counter() - start)
            REQUESTS.labels(scope["method"], path, str(status)).inc()


# Every response: no MIME sniffing, no referrer, never framed. Non-HTML answers may load and
# run nothing at all; HTML pages get a policy naming exactly their own inline scripts and
# styles by hash (see `_html_policy`): no 'unsafe-inline' anywhere.
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_INLINE = re.compile(rb"<(script|style)(?P<attrs>[^>]*)>(?P<body>.*?)</\1>", re.S | re.I)
_SOURCES = re.compile(
    rb"""<(script|link|img)\b[^>]*\b(?:src|href)\s*=\s*["']?(https?://[^/"'\s>]+)""", re.I
)


def _html_policy(html: bytes) -> bytes:
    """A strict CSP for one HTML page: its inline scripts and styles by SHA-256, the origins it
    loads from, its own origin for fetches; nothing else."""
    scripts: list[bytes] = []
    styles: list[bytes] = []
    for m in _INLINE.finditer(html):
        if m.group(1).lower() == b"script" and b"src=" in m.group("attrs"):
            continue
        if m.group(1).lower() == b"script" and b"application/json" in m.group("attrs"):
            continue  # a data block: never executed
        digest = base64.b64encode(hashlib.sha256(m.group("body")).digest())
        (scripts if m.group(1).lower() == b"script" else styles).append(b"'sha256-" + digest + b"'")
    origins = sorted({m.group(2) for m in _SOURCES.finditer(html)})
    script_src = b" ".join([*scripts, *origins]) or b"'none'"
    style_src = b" ".join([*styles, *origins]) or b"'none'"
    return (
        b"default-src 'none'; script-src " + script_src + b"; style-src " + style_src
        + b"; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none';"
        + b" form-action 'none'"
    )  # fmt: skip


def _secured(send: Any) -> Any:
    """`send`, adding the security headers; an HTML page is held until its body is known, so
    that its policy can name its inline scripts and styles."""
    held: dict[str, Any] | None = None
    body: list[bytes] = []

    async def secured(message: dict[str, Any]) -> None:
        nonlocal held
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            names = {k.lower() for k, _ in headers}
            headers += [h for h in SECURITY_HEADERS if h[0] not in names]
            html = any(
                k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers
            )
            if b"content-security-policy" not in names and not html:
                headers.append((b"content-security-policy", API_CSP))
            message = {**message, "headers": headers}
            if html and b"content-security-policy" not in names:
                held = message
                return
        elif held is not None and message["type"] == "http.response.body":
            body.append(message.get("body", b""))
            if message.get("more_body"):
                return
            page = b"".join(body)
            start = {
                **held,
                "headers": [*held["headers"], (b"content-security-policy", _html_policy(page))],
            }
            held = None
            await send(start)
            await send({"type": "http.response.body", "body": page})
            return
        await send(message)

    return secured


_ERRORS = {
    "400": "not valid EPCIS 2.0, or an unknown EPCIS query parameter",
    "401": "missing or invalid API key",
    "403": "not allowed for this participant (or no such resource visible to it)",
    "404": "no such resource",
    "409": "conflicts with stored state",
    "413": "request body too large",
    "422": "invalid request, signature, key or proof",
    "429": "too many failed authentications from this address (Retry-After)",
    "503": "database or chain unavailable",
}


# Where what an operation creates can be read next (OpenAPI links): clients and stateful
# testing follow them. (method, path, status) -> link name -> (method, path, parameters).
LINKS: dict[tuple[str, str, str], dict[str, tuple[str, str, dict[str, str]]]] = {
    ("post", "/v1/records", "201"): {
        "GetRecord": ("get", "/v1/records/{id}", {"id": "$response.body#/id"}),
        "GetReceipt": ("get", "/v1/records/{id}/receipt", {"id": "$response.body#/id"}),
    },
    ("post", "/v1/predictions/rul", "201"): {
        "GetRecord": ("get", "/v1/records/{id}", {"id": "$response.body#/id"}),
    },
    ("post", "/v1/subscriptions", "201"): {
        "Deliveries": ("get", "/v1/subscriptions/{id}/deliveries", {"id": "$response.body#/id"}),
        "Unsubscribe": ("delete", "/v1/subscriptions/{id}", {"id": "$response.body#/id"}),
    },
    ("post", "/v1/participants", "201"): {
        "GetParticipant": (
            "get",
            "/v1/participants/{participant}",
            {"participant": "$response.body#/id"},
        ),
    },
    ("post", "/v1/api-keys", "201"): {
        "Revoke": ("post", "/v1/api-keys/{key_id}/revoke", {"key_id": "$response.body#/id"}),
    },
    ("post", "/v1/models", "201"): {
        "GetModel": ("get", "/v1/models/{digest}", {"digest": "$response.body#/digest"}),
    },
}


def _add_links(spec: dict[str, Any]) -> None:
    for (method, path, status), links in LINKS.items():
        response = spec["paths"][path][method]["responses"].setdefault(
            status, {"description": "created"}
        )
        response["links"] = {
            name: {
                "operationId": spec["paths"][to_path][to_method]["operationId"],
                "parameters": parameters,
            }
            for name, (to_method, to_path, parameters) in links.items()
        }


def _document_problems(app: FastAPI) -> None:
    """Every operation documents its error statuses as RFC 9457 problem+json, and links what
    it creates to where it can be read."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = build()
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = ErrorPublic.model_json_schema()
        problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path, ops in spec["paths"].items():
            for op in ops.values():
                responses = op.setdefault("responses", {})
                public = path in ("/healthz", "/readyz")
                for code, text in _ERRORS.items():
                    if public and code != "503":
                        continue
                    responses[code] = {"description": text, "content": problem}
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        _add_links(spec)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
