"""Webhook delivery: an outbox in the database, a worker that empties it.

Deliveries are written in the same transaction as the record they announce, so a record is
never logged without its deliveries, and a crash loses none: after a restart the worker picks
up every pending row. Delivery is at-least-once; receivers dedupe on `X-Forgeproof-Delivery`.

Each POST carries the record (with its own EIP-712 signature, checkable by anyone) and an HMAC
of the exact body under the subscription's secret:

    X-Forgeproof-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from typing import Any

import httpx
from sqlalchemy import select, update

from api.metrics import DELIVERIES
from api.routes._common import record_public
from api.service import Service
from ledger.registry import now_us
from ledger.store.models import Delivery, Subscription

log = logging.getLogger("forgeproof.delivery")


def sign_body(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def check_signature(secret: str, header: str, body: bytes, *, tolerance_s: int = 300) -> None:
    """What a receiver runs: raises ValueError unless the header is a fresh, valid HMAC."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    t = int(parts.get("t", "0"))
    if abs(time.time() - t) > tolerance_s:
        raise ValueError("signature timestamp outside tolerance")
    want = sign_body(secret, t, body).split("v1=")[1]
    if not hmac.compare_digest(want, parts.get("v1", "")):
        raise ValueError("HMAC does not match")


def backoff_us(attempts: int, base_s: float) -> int:
    """Exponential backoff: base, 2*base, 4*base, ... capped at an hour."""
    return int(min(base_s * 2 ** max(attempts - 1, 0), 3600.0) * 1_000_000)


class DeliveryWorker:
    """Sends due deliveries; run `run_once` from tests or `start` a background thread."""

    def __init__(
        self, service: Service, *, base_delay_s: float = 1.0, client: httpx.Client | None = None
    ) -> None:
        self.service = service
        self.base_delay_s = base_delay_s
        self.client = client or httpx.Client(timeout=service.settings.webhook_timeout_s)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        self._wake.set()

    def run_once(self, limit: int = 50) -> int:
        """Attempt every due delivery (up to `limit`); returns how many were attempted."""
        store = self.service.dep.store
        now = now_us()
        with store.reading() as conn:
            due = conn.execute(
                select(Delivery, Subscription.url, Subscription.secret)
                .join(Subscription, Subscription.id == Delivery.subscription)
                .where(Delivery.status == "pending", Delivery.next_attempt_us <= now)
                .order_by(Delivery.next_attempt_us)
                .limit(limit)
            ).all()
        for row in due:
            self._attempt(row)
        return len(due)

    def _attempt(self, row: Any) -> None:
        stored = self.service.dep.log.get(row.leaf_index)
        body = json.dumps(
            {"delivery": row.id, "subscription": row.subscription, "record": record_public(stored)},
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        headers = {
            "content-type": "application/json",
            "x-forgeproof-delivery": str(row.id),
            "x-forgeproof-signature": sign_body(row.secret, int(time.time()), body),
        }
        error: str | None = None
        try:
            response = self.client.post(row.url, content=body, headers=headers)
            if not 200 <= response.status_code < 300:
                error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        attempts = row.attempts + 1
        if error is None:
            values: dict[str, Any] = {
                "status": "delivered",
                "attempts": attempts,
                "delivered_us": now_us(),
                "last_error": None,
            }
            DELIVERIES.labels("delivered").inc()
        else:
            gave_up = attempts >= self.service.settings.webhook_max_attempts
            values = {
                "status": "failed" if gave_up else "pending",
                "attempts": attempts,
                "last_error": error,
                "next_attempt_us": now_us() + backoff_us(attempts, self.base_delay_s),
            }
            DELIVERIES.labels("failed" if gave_up else "retry").inc()
        with self.service.dep.store.transaction() as conn:
            conn.execute(update(Delivery).where(Delivery.id == row.id).values(**values))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="webhook-delivery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception:  # keep delivering whatever one bad row or outage does
                log.exception("delivery round failed")
                busy = 0
            if not busy:
                self._wake.wait(timeout=0.5)
                self._wake.clear()
