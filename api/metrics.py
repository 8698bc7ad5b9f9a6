"""Prometheus metrics of the service, in a registry of its own (one app, one registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "forgeproof_http_requests_total",
    "HTTP requests",
    ["method", "route", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "forgeproof_http_request_seconds",
    "HTTP request latency",
    ["route"],
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
LOG_SIZE = Gauge("forgeproof_log_size", "records in the log", registry=REGISTRY)
APPENDED = Counter("forgeproof_records_appended_total", "records appended", registry=REGISTRY)
CHECKPOINTS = Counter("forgeproof_checkpoints_total", "checkpoints published", registry=REGISTRY)
DELIVERIES = Counter(
    "forgeproof_webhook_deliveries_total",
    "webhook delivery attempts",
    ["outcome"],
    registry=REGISTRY,
)
RECEIPTS = Counter(
    "forgeproof_receipt_cache_total",
    "receipt requests by how the cache answered: served (before routing), hit, miss (built)",
    ["outcome"],
    registry=REGISTRY,
)
