"""The FastAPI application: `create_app(service)` wires routes, errors, limits and metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from api import errors
from api.metrics import LATENCY, REQUESTS
from api.routes import checkpoints, health, participants, records, subscriptions, verify
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
    for module in (records, verify, checkpoints, participants, subscriptions, health):
        app.include_router(module.router)
    for extra in service.extras.get("routers", []):
        app.include_router(extra)

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
