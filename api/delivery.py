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
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from sqlalchemy import select, update

from api.metrics import DELIVERIES
from api.service import Service
from api.tables import Delivery, Subscription
from api.views import record_public
from api.webhooks import TargetRefused, vet
from ledger.lease import Lease
from ledger.registry import now_us

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


def failure_class(exc: Exception) -> str:
    """What the subscriber's delivery log says about a failed attempt: a class, never the
    network's details (no oracle for what lies behind a target)."""
    if isinstance(exc, TargetRefused):
        return "delivery failed: target not allowed (not a public address)"
    if isinstance(exc, httpx.TimeoutException):
        return "delivery failed: timeout"
    if isinstance(exc, httpx.ConnectError):
        return "delivery failed: connection refused or unreachable"
    return "delivery failed: network error"


class DeliveryWorker:
    """Sends due deliveries; run `run_once` from tests or `start` a background thread.

    Subscriptions are served concurrently by a bounded pool (`Settings.webhook_workers`), each
    one's deliveries in order: a slow or dead endpoint holds up its own deliveries only.
    """

    def __init__(
        self,
        service: Service,
        *,
        base_delay_s: float = 1.0,
        client: httpx.Client | None = None,
        workers: int | None = None,
        lease: Lease | None = None,
    ) -> None:
        self.service = service
        # With a lease, only its holder delivers: processes sharing a database would otherwise
        # race for the same rows (each delivery would be made once per process).
        self.lease = lease
        self.base_delay_s = base_delay_s
        # No redirects: a target is vetted where it is, not where it points.
        self.client = client or httpx.Client(
            timeout=service.settings.webhook_timeout_s, follow_redirects=False
        )
        self._box = service.dep.secret_box("webhook")
        self._pool = ThreadPoolExecutor(
            workers or service.settings.webhook_workers, thread_name_prefix="webhook"
        )
        self._busy: set[str] = set()  # subscriptions with deliveries in flight
        self._busy_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        self._wake.set()

    def run_once(self, limit: int = 50, *, wait: bool = True) -> int:
        """Start every due delivery (up to `limit`) of subscriptions not already being served;
        returns how many. With `wait`, until they are done."""
        store = self.service.dep.store
        now = now_us()
        with self._busy_lock:
            busy = sorted(self._busy)
        with store.reading() as conn:
            due = conn.execute(
                select(Delivery, Subscription.url, Subscription.secret)
                .join(Subscription, Subscription.id == Delivery.subscription)
                .where(
                    Delivery.status == "pending",
                    Delivery.next_attempt_us <= now,
                    Delivery.subscription.not_in(busy),
                )
                .order_by(Delivery.next_attempt_us, Delivery.id)
                .limit(limit)
            ).all()
        groups: dict[str, list[Any]] = {}
        for row in due:
            groups.setdefault(row.subscription, []).append(row)
        futures = []
        with self._busy_lock:
            self._busy.update(groups)
        for sub, rows in groups.items():
            futures.append(self._pool.submit(self._serve, sub, rows))
        if wait:
            for f in futures:
                f.result()
        return len(due)

    def _serve(self, subscription: str, rows: list[Any]) -> None:
        try:
            for row in rows:
                self._attempt(row)
        except Exception:  # keep the worker alive whatever one row does
            log.exception("delivery to subscription %s failed", subscription)
        finally:
            with self._busy_lock:
                self._busy.discard(subscription)
            self._wake.set()

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
            "x-forgeproof-signature": sign_body(self._box.open(row.secret), int(time.time()), body),
        }
        error: str | None = None
        try:
            # Checked again now: the name may resolve elsewhere than when it was subscribed.
            target = vet(row.url, allow_private=self.service.settings.allow_private_webhooks)
            response = self.client.post(
                target.connect_url,
                content=body,
                headers={**headers, "host": target.host_header},
                extensions={"sni_hostname": target.server_name},
            )
            if not 200 <= response.status_code < 300:
                error = f"delivery failed: HTTP {response.status_code}"
        except (httpx.HTTPError, TargetRefused) as exc:
            error = failure_class(exc)
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
        if self.lease is not None:
            self.lease.start()
        self._thread = threading.Thread(target=self._loop, name="webhook-delivery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)
        if self.lease is not None:
            self.lease.stop(release=True)
        # Deliveries under way finish (each within the webhook timeout) and record what became
        # of them; queued ones wait for the next start (they are still pending in the outbox).
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.lease is not None and self.lease.term is None:
                self._stop.wait(min(1.0, self.lease.ttl_s / 4))  # another process delivers
                continue
            try:
                busy = self.run_once(wait=False)
            except Exception:  # keep delivering whatever one bad row or outage does
                log.exception("delivery round failed")
                busy = 0
            if not busy:
                self._wake.wait(timeout=0.5)
                self._wake.clear()
