"""The FastAPI application: `create_app(service)` wires routes, errors, limits and metrics."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI

from api import errors
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


def create_app(service: Service) -> FastAPI:
    app = FastAPI(title="forgeproof", version="1", description=DESCRIPTION)
    app.state.service = service
    errors.install(app)
    routes = [records, verify, checkpoints, models, predictions, participants, subscriptions]
    routes += [epcis, health]
    for module in routes:
        app.include_router(module.router)
    app.include_router(participants.api_keys_router)
    for extra in service.extras.get("routers", []):
        app.include_router(extra)

    _document_problems(app)
    # Added first, so it sits inside Guard: its answers are size-checked and counted too.
    app.add_middleware(
        ReceiptFastPath,
        cache=service.receipts,
        keys=service.api_keys,
        store=service.dep.store,
        route=next(r for r in records.router.routes if getattr(r, "path", "") == RECEIPT_PATH),
    )
    app.add_middleware(Guard, limit=service.settings.max_body_bytes)
    return app


class Guard:
    """Body-size limit and request metrics, as plain ASGI (BaseHTTPMiddleware costs ~3x here)."""

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
                await response(scope, receive, send)
                return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            LATENCY.labels(path).observe(time.perf_counter() - start)
            REQUESTS.labels(scope["method"], path, str(status)).inc()


_ERRORS = {
    "400": "not valid EPCIS 2.0, or an unknown EPCIS query parameter",
    "401": "missing or invalid API key",
    "403": "not allowed for this participant (or no such resource visible to it)",
    "404": "no such resource",
    "409": "conflicts with stored state",
    "413": "request body too large",
    "422": "invalid request, signature, key or proof",
    "503": "database or chain unavailable",
}


def _document_problems(app: FastAPI) -> None:
    """Every operation documents its error statuses as RFC 9457 problem+json."""
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
                public = path in ("/healthz", "/metrics")
                for code, text in _ERRORS.items():
                    if public and code != "503":
                        continue
                    responses[code] = {"description": text, "content": problem}
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
