"""The FastAPI application: `create_app(service)` wires routes, errors, limits and metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response

from api import errors
from api.metrics import LATENCY, REQUESTS
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
    for extra in service.extras.get("routers", []):
        app.include_router(extra)

    _document_problems(app)
    limit = service.settings.max_body_bytes

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            return errors.problem(413, "too_large", f"request body over {limit} bytes")
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        LATENCY.labels(path).observe(time.perf_counter() - start)
        REQUESTS.labels(request.method, path, str(response.status_code)).inc()
        return response

    return app


_ERRORS = {
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
