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
FAST_POST = Counter(
    "forgeproof_fast_post_total",
    "POST /v1/records and /v1/verify by who answered: served (before routing), passed (the route)",
    ["route", "outcome"],
    registry=REGISTRY,
)
ANCHORED_SIZE = Gauge(
    "forgeproof_anchored_size", "records covered by an anchored checkpoint", registry=REGISTRY
)
ANCHOR_LAG_RECORDS = Gauge(
    "forgeproof_anchor_lag_records", "records not yet covered by an anchor", registry=REGISTRY
)
ANCHOR_LAG_SECONDS = Gauge(
    "forgeproof_anchor_lag_seconds",
    "age of the oldest record not yet covered by an anchor",
    registry=REGISTRY,
)
SEQUENCER_LEADER = Gauge(
    "forgeproof_sequencer_leader", "1 while this process's sequencer holds the lease",
    registry=REGISTRY,
)  # fmt: skip
SEQUENCER_TERM = Gauge("forgeproof_sequencer_term", "the sequencer lease's term", registry=REGISTRY)
CHAIN_UP = Gauge(
    "forgeproof_chain_reachable", "1 when the node answered the last probe", registry=REGISTRY
)
