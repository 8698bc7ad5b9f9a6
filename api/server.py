"""`forgeproof up`: the API, a sequencer candidate, the webhook worker, the monitor and the chain
in one process; any number of them may serve one deployment (leases pick who sequences and
who delivers)."""

from __future__ import annotations

import gc
import logging
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api import metrics
from api.auth import create_api_key
from api.config import Settings
from api.delivery import DeliveryWorker
from api.main import create_app
from api.runner import ModelRunner
from api.service import Service
from ledger import logs
from ledger.deployment import Deployment
from ledger.errors import LedgerError
from ledger.lease import Lease, candidate_id
from ledger.sequencer import Policy, Sequencer

log = logging.getLogger("forgeproof.server")
MONITOR_S = 1.0  # how often the monitor follows the registry, probes the node, measures lag


@dataclass
class Running:
    """Everything `up` started, so that tests and the demo can drive and stop it."""

    service: Service
    app: Any
    chain: Any  # a ChainClient, or a LazyChain for a node that may be down
    sequencer: Sequencer | None  # None: `--no-sequencer`
    worker: DeliveryWorker
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    first_api_key: str | None = None  # the operator's, when this start created the deployment

    def start_background(self) -> None:
        if self.sequencer is not None:
            self._thread("sequencer", self._sequence)
        self._thread("monitor", lambda: self.service.monitor.run(self.stop, MONITOR_S))
        self.worker.start()

    def _thread(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _sequence(self) -> None:
        assert self.sequencer is not None
        try:
            self.sequencer.run(self.stop, on_anchor=lambda cp: metrics.CHECKPOINTS.inc())
        except LedgerError:
            pass  # an integrity failure: logged, kept in `failure`, /healthz says degraded
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
    """Open (or create) the deployment in `settings.home` and assemble the service.

    Any number of processes may build one deployment at once: one creates it. With a
    JSON-RPC node the chain is connected on first use, so the service starts, serves and
    appends while the node is down."""
    dep, created = Deployment.open_or_init(
        Path(settings.home), database_url=settings.database_url, chain_url=settings.chain_url
    )
    first_key = None
    if created:
        first_key = create_api_key(
            dep.store, dep.operator, "operator", "first", registry=dep.registry
        )
    chain = dep.lazy_chain() if dep.chain_url else dep.open_chain()
    service = Service(dep, settings, chain)  # type: ignore[arg-type]  # LazyChain stands in
    runner = ModelRunner.shipped()
    service.runner = runner
    register_shipped(service, runner)
    worker = DeliveryWorker(
        service,
        lease=Lease(dep.store, candidate_id("up"), name="delivery", ttl_s=settings.lease_ttl_s),
    )
    service.wake_delivery = worker.wake
    sequencer = None
    if settings.sequencer:
        sequencer = Sequencer(
            dep.log,
            chain,
            Policy(every=settings.checkpoint_every, interval_s=settings.checkpoint_interval_s),
            lease=Lease(dep.store, candidate_id("up"), ttl_s=settings.lease_ttl_s),
            on_unanchor=service.anchors_changed,
        )
    service.monitor.sequencer = sequencer
    running = Running(service, create_app(service), chain, sequencer, worker)
    running.first_api_key = first_key
    return running


def serve(settings: Settings, sock: socket.socket, *, demo: bool = False) -> None:
    """Build the service on `settings.home`, seed the demo plant if asked, and serve on `sock`.

    `sock` is bound and listening already: `forgeproof up` takes the port before anything
    slow, so a busy port fails at once rather than after the deployment is built and seeded,
    and clients that connect meanwhile wait in its backlog. "listening on ..." is printed only
    once uvicorn serves it. `sock` is closed on return."""
    url = base_url(sock)
    with sock:
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

                seed(running, base_url=url)
            running.start_background()
            # What was built so far (web3, the EVM, the models) lives as long as the process:
            # frozen, full collections no longer walk its ~200k objects (180-300 ms pauses,
            # the worst latencies under load, before).
            gc.collect()
            gc.freeze()
            _uvicorn(running.app, url).run(sockets=[sock])
        finally:
            running.close()


def base_url(sock: socket.socket) -> str:
    """http://host:port of a listening socket, as a browser or curl would be given it."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if sock.family == socket.AF_INET6 else f"http://{host}:{port}"


def _uvicorn(app: Any, url: str) -> Any:
    """A uvicorn server for `app` that says where it listens once it does (after the lifespan
    started and the socket is served), not before."""
    import uvicorn

    class Announcing(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                print(f"listening on {url} (portal: {url}/ · API docs: {url}/docs)", flush=True)

    # No access log: a formatted line per request costs more than a cached receipt.
    return Announcing(uvicorn.Config(app, log_level="warning", access_log=False))


def register_shipped(service: Service, runner: ModelRunner) -> None:
    """Register the manifests of the models this server runs (idempotent), operator-signed."""
    from api.manifests import register_manifest
    from ledger.records import Record

    dep = service.dep
    operator = dep.operator
    signer = dep.signer(operator)
    for manifest in runner.manifests.values():
        payload = manifest.as_json()
        record = Record.new("model_manifest", payload, participant=operator, address=signer.address)
        register_manifest(service, record, signer.sign(dep.domain, record))
