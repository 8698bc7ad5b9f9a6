"""Liveness (unauthenticated, as load balancers expect) and Prometheus metrics (an operator's
key: a scraper is configured with a bearer token)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import Operator, ServiceDep
from api.metrics import LOG_SIZE, REGISTRY

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(service: ServiceDep) -> dict[str, object]:
    """Up, with the log's size, the newest checkpoint and whether the registry mirror agrees
    with the chain (when it does not, appends stop and status is "degraded")."""
    cp = service.dep.log.latest_checkpoint()
    mismatch = service.registry_error
    return {
        "status": "degraded" if mismatch else "ok",
        "log_size": service.dep.log.committed_size(),
        "checkpoint": cp.size if cp else None,
        "anchored": cp.anchored if cp else None,
        "registry": {
            "synced_with_chain": service.dep.registry.synced,
            "mismatch": mismatch.differences if mismatch else None,
        },
    }


@router.get("/metrics", response_class=Response)
def metrics(caller: Operator, service: ServiceDep) -> Response:
    """Prometheus text exposition (an operator's API key: the figures say how the plant runs)."""
    LOG_SIZE.set(service.dep.log.size)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
