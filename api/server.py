"""`forgeproof up`: the API, the sequencer, the webhook worker and the chain in one process."""

from __future__ import annotations

import gc
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api.auth import create_api_key
from api.config import Settings
from api.delivery import DeliveryWorker
from api.main import create_app
from api.runner import ModelRunner
from api.service import Service
from ledger import logs
from ledger.deployment import CONFIG, Deployment
from ledger.errors import LedgerError
from ledger.sequencer import Policy, Sequencer

log = logging.getLogger("forgeproof.server")
REGISTRY_SYNC_S = 1.0  # how often the registry mirror follows the chain


@dataclass
class Running:
    """Everything `up` started, so that tests and the demo can drive and stop it."""

    service: Service
    app: Any
    chain: Any
    sequencer: Sequencer
    worker: DeliveryWorker
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    first_api_key: str | None = None  # the operator's, when this start created the deployment

    def start_background(self) -> None:
        seq = threading.Thread(target=self._sequence, name="sequencer", daemon=True)
        seq.start()
        self.threads.append(seq)
        follow = threading.Thread(target=self._follow_registry, name="registry", daemon=True)
        follow.start()
        self.threads.append(follow)
        self.worker.start()

    def _follow_registry(self) -> None:
        """Keep the registry mirror in step with the chain (changes made by participants
        directly on chain, or by another process), checking it on every pass."""
        while not self.stop.wait(REGISTRY_SYNC_S):
            try:
                self.service.sync_registry()
            except LedgerError as exc:
                log.warning("registry not synced: %s", exc)
            except Exception:
                log.exception("registry sync failed")

    def _sequence(self) -> None:
        try:
            self.sequencer.run(self.stop, on_anchor=lambda cp: log.info("anchored %d", cp.size))
        except Exception:
            log.exception("sequencer stopped")

    def close(self) -> None:
        self.stop.set()
        self.worker.stop()
        for t in self.threads:
            t.join(timeout=30)
        self.chain.close()
        self.service.dep.close()


def build(settings: Settings) -> Running:
    """Open (or create) the deployment in `settings.home` and assemble the service."""
    home = Path(settings.home)
    first_key = None
    if (home / CONFIG).exists():
        dep = Deployment.open(home)
    else:
        dep = Deployment.init(
            home, database_url=settings.database_url, chain_url=settings.chain_url
        )
        first_key = create_api_key(
            dep.store, dep.operator, "operator", "first", registry=dep.registry
        )
    chain = dep.open_chain()
    service = Service(dep, settings, chain)
    runner = ModelRunner.shipped()
    service.extras["runner"] = runner
    register_shipped(service, runner)
    worker = DeliveryWorker(service)
    service.extras["wake_delivery"] = worker.wake
    sequencer = Sequencer(
        dep.log,
        chain,
        Policy(every=settings.checkpoint_every, interval_s=settings.checkpoint_interval_s),
    )
    running = Running(service, create_app(service), chain, sequencer, worker)
    running.first_api_key = first_key
    return running


def serve(settings: Settings, *, host: str, port: int, demo: bool = False) -> None:
    import uvicorn

    logs.configure()
    running = build(settings)
    try:
        if running.first_api_key and not demo:
            print(
                f"new deployment in {settings.home}; the operator's API key (shown once):\n"
                f"  {running.first_api_key}",
                flush=True,
            )
        if demo:
            from api.demo import seed

            seed(running, base_url=f"http://{host}:{port}")
        running.start_background()
        # What was built so far (web3, the EVM, the models) lives as long as the process:
        # frozen, full collections no longer walk its ~200k objects (180-300 ms pauses, the
        # worst latencies under load, before).
        gc.collect()
        gc.freeze()
        # No access log: a formatted line per request costs more than a cached receipt.
        uvicorn.run(running.app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        running.close()


def register_shipped(service: Service, runner: ModelRunner) -> None:
    """Register the manifests of the models this server runs (idempotent), operator-signed."""
    from api.routes.models import register
    from ledger.records import Record

    dep = service.dep
    operator = dep.operator
    signer = dep.signer(operator)
    for manifest in runner.manifests.values():
        payload = manifest.model_dump(mode="json")
        record = Record.new("model_manifest", payload, participant=operator, address=signer.address)
        register(service, record, signer.sign(dep.domain, record))
