"""Health that tells the truth, and an alarm when anchoring falls behind.

A `Monitor` runs in every `up` process (`run`, once a second): it follows the chain's registry,
probes the node, measures how far anchoring lags behind the log, exports that as Prometheus
gauges, and raises the `anchoring_lag` alarm when the lag passes `Settings.max_anchor_lag_s`
(clearing it once the lag is back under half of that). An alarm is an operator-signed `alarm`
record in the log, raised once per episode whichever process sees it first, and delivered to
the operator's webhooks.

`report` is what /healthz and /readyz answer: the database's view read live (lag, the lease),
the node's from the last probe (a probe can wait for a node's timeout; a health check must not).
Anyone may ask, so errors are named by class only: their text can hold a node's or a database's
URL, credentials included; the logs have it in full.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from api import metrics
from ledger.errors import LedgerError
from ledger.lease import read_lease
from ledger.registry import now_us

if TYPE_CHECKING:
    from api.service import Service
    from ledger.lease import LeaseState
    from ledger.log import Anchoring, Checkpoint
    from ledger.sequencer import Sequencer

log = logging.getLogger("forgeproof.monitor")

LAG_ALARM = "anchoring_lag"


@dataclass
class ChainProbe:
    reachable: bool | None = None  # None: not probed yet
    block: int | None = None
    error: str | None = None
    at: float | None = None  # time.monotonic() of the probe


class Monitor:
    def __init__(self, service: Service, sequencer: Sequencer | None = None) -> None:
        self.service = service
        self.sequencer = sequencer
        self.chain = ChainProbe()

    # --- the loop -----------------------------------------------------------------------------

    def run(self, stop: threading.Event, every_s: float = 1.0) -> None:
        while not stop.wait(every_s):
            try:
                self.tick()
            except Exception:  # the monitor must outlive whatever it watches
                log.exception("monitor round failed")

    def tick(self) -> None:
        try:
            self.service.sync_registry()
        except LedgerError as exc:
            log.debug("registry not synced: %s", exc)
        self.probe_chain()
        try:
            anchoring = self.service.dep.log.anchoring()
        except LedgerError as exc:
            log.warning("cannot measure anchoring: %s", exc)
            return
        self._export(anchoring)
        self.check_alarm(anchoring)

    def probe_chain(self) -> None:
        chain = self.service.chain
        if chain is None:
            return
        try:
            block = chain.block_number()
        except LedgerError as exc:
            self.chain = ChainProbe(False, None, type(exc).__name__, time.monotonic())
        else:
            self.chain = ChainProbe(True, block, None, time.monotonic())

    def refresh_gauges(self) -> None:
        """Export the lag as of now (for a scrape between two rounds)."""
        try:
            self._export(self.service.dep.log.anchoring())
        except LedgerError as exc:
            log.warning("cannot measure anchoring: %s", exc)

    def _export(self, a: Anchoring) -> None:
        metrics.LOG_SIZE.set(a.log_size)
        metrics.ANCHORED_SIZE.set(a.anchored_size)
        metrics.ANCHOR_LAG_RECORDS.set(a.lag_records)
        metrics.ANCHOR_LAG_SECONDS.set(a.lag_seconds)
        seq = self.sequencer
        lease = seq.lease if seq is not None else None
        term = lease.term if lease is not None else None
        metrics.SEQUENCER_LEADER.set(1 if term is not None else 0)
        if term is not None:
            metrics.SEQUENCER_TERM.set(term)
        if self.chain.reachable is not None:
            metrics.CHAIN_UP.set(1 if self.chain.reachable else 0)

    def check_alarm(self, a: Anchoring) -> None:
        """Raise the lag alarm past the bound; clear it under half the bound."""
        bound = self.service.settings.max_anchor_lag_s
        if a.lag_seconds > bound:
            raised: bool | None = True
        elif a.lag_seconds <= bound / 2:
            raised = False
        else:
            return
        facts = {
            "lag_records": a.lag_records,
            "lag_seconds": round(a.lag_seconds, 3),
            "bound_seconds": bound,
            "log_size": a.log_size,
            "anchored_size": a.anchored_size,
        }
        try:
            index = self.service.set_alarm(LAG_ALARM, raised=bool(raised), facts=facts)
        except LedgerError as exc:
            log.error(
                "could not %s the %s alarm: %s", "raise" if raised else "clear", LAG_ALARM, exc
            )
            return
        if index is not None:
            log.warning("%s alarm %s (record %d): %s", LAG_ALARM,
                        "raised" if raised else "cleared", index, facts)  # fmt: skip

    # --- the report ---------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        service = self.service
        bound = service.settings.max_anchor_lag_s
        problems: list[str] = []
        body: dict[str, Any] = {}
        a: Anchoring | None = None
        cp: Checkpoint | None = None
        lease: LeaseState | None = None
        try:
            a = service.dep.log.anchoring()
            cp = service.dep.log.latest_checkpoint()
            lease = read_lease(service.dep.store)
            body["database"] = {"reachable": True}
        except LedgerError as exc:
            problems.append("the database cannot be reached")
            body["database"] = {"reachable": False, "error": type(exc).__name__}
        if a is not None:
            if a.lag_seconds > bound:
                problems.append(
                    f"anchoring lags {a.lag_records} records, {a.lag_seconds:.0f} s "
                    f"(bound {bound:g} s)"
                )
            body["anchoring"] = {
                "anchored_size": a.anchored_size,
                "lag_records": a.lag_records,
                "lag_seconds": round(a.lag_seconds, 3),
                "bound_seconds": bound,
            }
        seq = self.sequencer
        sequencer: dict[str, Any] = {"here": seq.role if seq is not None else "off"}
        if lease is not None:
            sequencer |= {
                "leader": lease.holder,
                "term": lease.term,
                "beat_age_seconds": round(max(0, now_us() - lease.renewed_us) / 1e6, 3)
                if lease.holder
                else None,
            }
        if seq is not None:
            sequencer["last_error"] = seq.last_error_class
            if seq.failure is not None:
                problems.append(f"the sequencer stopped: {type(seq.failure).__name__}")
        mismatch = service.registry_error
        if mismatch is not None:
            problems.append("the registry mirror disagrees with the chain; appends are stopped")
        probe = self.chain
        return {
            "status": "degraded" if problems else "ok",
            "problems": problems,
            "log_size": a.log_size if a is not None else None,
            "checkpoint": cp.size if cp else None,
            "anchored": cp.anchored if cp else None,
            **body,
            "sequencer": sequencer,
            "chain": {
                "reachable": probe.reachable,
                "block": probe.block,
                "error": probe.error,
                "probed_seconds_ago": round(time.monotonic() - probe.at, 3) if probe.at else None,
            },
            "registry": {
                "synced_with_chain": service.dep.registry.synced,
                "mismatch": mismatch.differences if mismatch else None,
            },
        }
