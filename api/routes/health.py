"""Liveness and readiness (unauthenticated, as load balancers expect) and Prometheus metrics
(an operator's key: a scraper is configured with a bearer token)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import Operator, ServiceDep
from api.metrics import LOG_SIZE, REGISTRY

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(service: ServiceDep) -> dict[str, Any]:
    """Liveness (200 while the process answers), with the truth about the rest: `status` is
    "degraded" with its `problems` when anchoring lags past the bound, the database cannot be
    reached, the sequencer stopped or the registry mirror disagrees with the chain; the lag in
    records and seconds, the sequencer lease's holder and term, the node and the database."""
    return service.monitor.report()


@router.get("/readyz", responses={503: {"description": "degraded: see `problems`"}})
def readyz(service: ServiceDep) -> JSONResponse:
    """Readiness: what /healthz says, answered 503 while degraded."""
    report = service.monitor.report()
    return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)


@router.get("/metrics", response_class=Response)
def metrics(caller: Operator, service: ServiceDep) -> Response:
    """Prometheus text exposition (an operator's API key: the figures say how the plant runs)."""
    LOG_SIZE.set(service.dep.log.size)
    service.monitor.refresh_gauges()
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
