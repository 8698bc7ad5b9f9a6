"""The service's state and the operations routes call: one object, built once per process."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select

from api.auth import KeyCache
from api.config import Settings
from api.receipts import ReceiptCache
from ledger.deployment import Deployment
from ledger.ingest import Accepted, check_record
from ledger.log import Appended
from ledger.records import Record
from ledger.registry import KeySnapshot, now_us
from ledger.store.models import AssetAssignment, Delivery, RecordTag, Subscription

ASSET_FIELDS = ("asset", "asset_id", "engine_id", "machine_id")


def record_tags(payload: dict[str, Any]) -> tuple[str | None, str | None]:
    """(asset, model digest) a payload cites, if any: what feeds and filters select on."""
    asset = next((str(payload[f]) for f in ASSET_FIELDS if payload.get(f) is not None), None)
    model = payload.get("model_manifest_digest")
    return asset, (model if isinstance(model, str) else None)


@dataclass
class _Job:
    """One caller's records waiting to be appended, and what became of them."""

    items: list[Accepted]
    payloads: list[dict[str, Any]]
    results: list[Appended] | None = None
    error: Exception | None = None


class Service:
    def __init__(self, deployment: Deployment, settings: Settings) -> None:
        self.dep = deployment
        self.settings = settings
        self.api_keys = KeyCache(deployment.store)
        self.receipts = ReceiptCache(settings.receipt_cache_entries)
        self._keys: tuple[float, KeySnapshot] | None = None
        self._keys_lock = threading.Lock()
        self.append_lock = threading.Lock()  # one appender per process; the DB orders processes
        self._queue: list[_Job] = []  # appends waiting for the lock (see `append`)
        self._queue_lock = threading.Lock()
        self.started = time.time()
        self.extras: dict[str, Any] = {}  # predictors, sequencer, chain: set by the app factory

    # --- the key registry, cached briefly ---------------------------------------------------

    def key_snapshot(self) -> KeySnapshot:
        with self._keys_lock:
            if self._keys and time.monotonic() - self._keys[0] < 1.0:
                return self._keys[1]
        snap = self.dep.registry.snapshot()
        with self._keys_lock:
            self._keys = (time.monotonic(), snap)
        return snap

    def registry_changed(self) -> None:
        with self._keys_lock:
            self._keys = None
        self.api_keys.forget()

    # --- appending ----------------------------------------------------------------------

    def submit(self, record: Record, signature: bytes) -> Appended:
        """Verify and append one signed record, with its tags and webhook deliveries.

        Raises:
            SignatureError, KeyNotAuthorized, InputError: the record is refused.
        """
        accepted = check_record(record, signature, self.dep.domain, self.key_snapshot())
        return self.append([accepted], [record.payload])[0]

    def append(
        self, items: Sequence[Accepted], payloads: Sequence[dict[str, Any]]
    ) -> list[Appended]:
        """Append verified records with their tags, in one transaction with concurrent callers'.

        Group commit: callers queue their records; whoever takes the append lock appends
        everything queued so far in one transaction and hands each caller its results. Under
        load a transaction's fixed cost (the log lock, the size check, the commit) is paid
        once per batch instead of once per record; a lone caller appends alone, as before.
        A failed transaction fails every caller in it, each of which would have met the same
        database error alone.
        """
        job = _Job(list(items), list(payloads))
        with self._queue_lock:
            self._queue.append(job)
        with self.append_lock:
            if job.results is None and job.error is None:  # not taken by an earlier leader
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                try:
                    results = self._append_now(
                        [i for j in batch for i in j.items],
                        [p for j in batch for p in j.payloads],
                    )
                    at = 0
                    for j in batch:
                        j.results, at = results[at : at + len(j.items)], at + len(j.items)
                except Exception as exc:
                    for j in batch:
                        j.error = exc
        if job.error is not None:
            raise job.error
        assert job.results is not None  # set by whichever caller led the batch
        return job.results

    def _append_now(
        self, items: Sequence[Accepted], payloads: Sequence[dict[str, Any]]
    ) -> list[Appended]:
        with self.dep.log.appending() as app:
            results = app.add(items)
            tags = []
            for res, payload in zip(results, payloads, strict=True):
                if res.duplicate:
                    continue
                asset, model = record_tags(payload)
                if asset or model:
                    tags.append({"leaf_index": res.index, "asset": asset, "model": model})
            if tags:
                app.conn.execute(insert(RecordTag), tags)
                self._enqueue_deliveries(app.conn, tags)
        return results

    def capture_epcis(self, document: dict[str, Any]) -> Any:
        """Capture EPCIS events as records signed by the operator (see ledger.epcis.capture)."""
        from ledger.epcis.capture import capture

        dep = self.dep
        operator = dep.config["operator"]
        with self.append_lock:
            return capture(
                dep.log,
                document,
                signer=dep.signer(operator),
                participant=operator,
                domain=dep.domain,
                keys=self.key_snapshot(),
            )

    def _enqueue_deliveries(self, conn: Any, tags: list[dict[str, Any]]) -> None:
        """Transactional outbox: deliveries are written with the record, or not at all."""
        assets = {t["asset"] for t in tags if t["asset"]}
        if not assets:
            return
        subs = conn.execute(
            select(AssetAssignment.asset, Subscription.id)
            .join(Subscription, Subscription.participant == AssetAssignment.maintainer)
            .where(AssetAssignment.asset.in_(assets), Subscription.active.is_(True))
        ).all()
        by_asset: dict[str, list[str]] = {}
        for asset, sub in subs:
            by_asset.setdefault(asset, []).append(sub)
        now = now_us()
        rows = [
            {
                "subscription": sub,
                "leaf_index": t["leaf_index"],
                "status": "pending",
                "attempts": 0,
                "next_attempt_us": now,
            }
            for t in tags
            for sub in by_asset.get(t["asset"], [])
        ]
        if rows:
            conn.execute(insert(Delivery), rows)
            self.extras.get("wake_delivery", lambda: None)()
