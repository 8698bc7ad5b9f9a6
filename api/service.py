"""The service's state and the operations routes call: one object, built once per process."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from api.access import RecordFacts, may_read
from api.auth import Caller, FailureThrottle, KeyCache
from api.config import Settings
from api.forecasts import DEMAND_TASK, FORECAST_KIND, check_forecast, record_product
from api.monitor import Monitor
from api.outcomes import OUTCOME_KIND, check_outcome
from api.receipts import CachedAnchors, CachedRoots, ReceiptCache, key_facts
from api.tables import (
    AlarmRow,
    AssetAssignment,
    Delivery,
    ModelRow,
    ProductAssignment,
    RecordAsset,
    RecordTag,
    Subscription,
    ensure_schema,
)
from ledger.cache import Cache
from ledger.deployment import Deployment
from ledger.errors import ChainUnavailable, InputError, RegistryMismatch
from ledger.ingest import Accepted, check_record
from ledger.log import Appended
from ledger.receipts import chain_anchor_source, chain_key_source, log_checkpoint_source
from ledger.records import Record
from ledger.registry import KeySnapshot, RegistryWriter, now_us

if TYPE_CHECKING:
    from api.runner import ModelRunner
    from ledger.chain import ChainClient

log = logging.getLogger("forgeproof.service")

ASSET_FIELDS = ("asset", "asset_id", "engine_id", "machine_id")
# Kinds that report what a model said: they must cite a registered model manifest (a forecast
# one of task `demand`, which only forecasts cite).
MODEL_KINDS = frozenset({"prediction", "inspection", FORECAST_KIND})


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
    """The provenance service of one deployment.

    Args:
        deployment: the log, the database and the registry mirror.
        settings: the service's settings.
        chain: the deployment's chain, acting as the operator; registry changes go through it
            and the registry mirror follows it (`sync_registry`). None: a service that reads
            the mirror as the database has it and refuses registry changes.
    """

    def __init__(
        self, deployment: Deployment, settings: Settings, chain: ChainClient | None = None
    ) -> None:
        ensure_schema(deployment.store.engine)  # the service's own tables
        self.dep = deployment
        self.settings = settings
        self.chain = chain
        self.api_keys = KeyCache(deployment.store, roles_of=self.roles_of)
        self.auth_failures = FailureThrottle()
        self.receipts = ReceiptCache(settings.receipt_cache_entries)
        self.registry_error: RegistryMismatch | None = None
        self._keys: Cache[None, KeySnapshot] = Cache(1, 1.0)
        # Registered manifest digests seen, with their task (never unregistered).
        self._models: dict[str, str] = {}
        self.append_lock = threading.Lock()  # one appender per process; the DB orders processes
        self._queue: list[_Job] = []  # appends waiting for the lock (see `append`)
        self._queue_lock = threading.Lock()
        self.started = time.time()
        self.monitor = Monitor(self)  # `up` hands it the sequencer and runs it
        # What /v1/verify asks the chain: anchors, and the signer's key when first anchored.
        self.anchor_source: CachedAnchors | None = None
        self.key_source: CachedAnchors | None = None
        # ... and the local log: a root at a size never changes (the log only grows).
        self.checkpoint_source = CachedRoots(log_checkpoint_source(deployment.log))
        if chain is not None:
            self.anchor_source = CachedAnchors(chain_anchor_source(chain))
            self.key_source = CachedAnchors(chain_key_source(chain), facts=key_facts)
        # Set by the app factory (`api/server.py`): the models this server runs, and the
        # webhook worker's wake-up for new deliveries (a no-op without a worker).
        self.runner: ModelRunner | None = None
        self.wake_delivery: Callable[[], None] = lambda: None

    # --- the key registry -----------------------------------------------------------------

    def _snapshot(self) -> KeySnapshot:
        """The registry as of the last sync (or the mirror's rows without a chain), kept 1 s."""
        snap = self._keys.get(None)
        if snap is None:
            snap = self._keys.put(None, self.dep.registry.snapshot())
        return snap

    def key_snapshot(self) -> KeySnapshot:
        """The registry to check records against.

        Raises:
            RegistryMismatch: the database's mirror was found to disagree with the chain;
                nothing is appended until it is repaired.
        """
        if self.registry_error is not None:
            raise self.registry_error
        return self._snapshot()

    def roles_of(self, participant: str) -> frozenset[str]:
        return self._snapshot().roles(participant)

    def sync_registry(self) -> None:
        """Follow the chain's registry; a mirror that disagrees stops appends (and says so in
        /healthz) until it is repaired.

        Raises:
            ChainError: the chain cannot be reached (the last synced state stays in use).
        """
        if self.chain is None:
            return
        try:
            self.dep.registry.sync(self.chain)
        except RegistryMismatch as exc:
            if self.registry_error is None:
                log.error("registry mirror disagrees with the chain; appends stop: %s", exc)
            self.registry_error = exc
            return
        if self.registry_error is not None:
            log.warning("registry mirror agrees with the chain again; appends resume")
        self.registry_error = None
        self.registry_changed()

    def writer(self) -> RegistryWriter:
        """Registry changes, sent to the contract as the operator.

        Raises:
            ChainUnavailable: this service runs without a chain.
        """
        if self.chain is None:
            raise ChainUnavailable("this service runs without a chain: the registry is read-only")
        return self.dep.writer(self.chain)

    def registry_changed(self) -> None:
        self._keys.clear()
        self.api_keys.forget()

    # --- appending ----------------------------------------------------------------------

    def submit(self, record: Record, signature: bytes) -> Appended:
        """Verify and append one signed record, with its tags and webhook deliveries.

        Raises:
            SignatureError, KeyNotAuthorized, NotPermitted, InputError: the record is refused.
            RegistryMismatch: appends are stopped.
        """
        accepted = self.check_submission(record, signature)
        settled = None
        if record.kind == OUTCOME_KIND:
            settled = check_outcome(self, record)  # before appending: a refusal changes nothing
        appended = self.append([accepted], [record.payload])[0]
        if settled is not None and not appended.duplicate:
            from api.promises import evaluate  # imports the scorecards, which import the log

            evaluate(self, settled.models)
        return appended

    def check_submission(self, record: Record, signature: bytes) -> Accepted:
        """Every check `submit` makes before appending, but an outcome's settlement: the
        signature, the key and its role at the record's time, a forecast's payload, a cited
        model. Changes nothing.

        Raises:
            SignatureError, KeyNotAuthorized, NotPermitted, InputError: the record is refused.
            RegistryMismatch: appends are stopped.
        """
        accepted = check_record(record, signature, self.dep.domain, self.key_snapshot())
        if record.kind == FORECAST_KIND:
            check_forecast(record.payload)  # before appending: a refusal changes nothing
        self.check_citation(record.kind, record.payload)
        return accepted

    def check_citation(self, kind: str, payload: dict[str, Any]) -> None:
        """A prediction, inspection or forecast must cite a registered model manifest; a
        forecast one whose task is `demand`, and only a forecast may cite a demand model.

        Raises:
            InputError: it cites none, one that is not registered, or one of the wrong task.
        """
        if kind not in MODEL_KINDS:
            return
        digest = payload.get("model_manifest_digest")
        if not isinstance(digest, str):
            raise InputError(f"a {kind} record must cite its model: payload.model_manifest_digest")
        task = self._models.get(digest)
        if task is None:
            with self.dep.store.reading() as conn:
                task = conn.execute(select(ModelRow.task).where(ModelRow.digest == digest)).scalar()
            if task is None:
                raise InputError(
                    f"{kind} cites model manifest {digest}, which is not registered "
                    "(POST /v1/models first)"
                )
            self._models[digest] = task
        if (kind == FORECAST_KIND) != (task == DEMAND_TASK):
            raise InputError(
                f"{kind} cites model manifest {digest}, a {task} model: forecasts cite "
                "demand models, and only forecasts do"
            )

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
            facts = []
            for res, item, payload in zip(results, items, payloads, strict=True):
                if res.duplicate:
                    continue
                asset, model = record_tags(payload)
                product = record_product(item.kind, payload)
                if asset or model or product:
                    tags.append(
                        {"leaf_index": res.index, "asset": asset, "model": model,
                         "product": product}
                    )  # fmt: skip
                    facts.append(RecordFacts(item.kind, item.participant, asset, product=product))
            if tags:
                app.conn.execute(insert(RecordTag), tags)
                self._enqueue_deliveries(app.conn, tags, facts)
        return results

    def anchors_changed(self) -> None:
        """Anchors were found gone from the chain: forget receipts and chain answers held in
        memory (receipts are keyed by their anchor anyway; this frees them at once)."""
        self.receipts.clear()
        for source in (self.anchor_source, self.key_source):
            if source is not None:
                source.forget()

    def set_alarm(
        self, name: str, *, raised: bool, facts: dict[str, Any], assets: Sequence[str] = ()
    ) -> int | None:
        """Raise or clear alarm `name` with an operator-signed `alarm` record, delivered to the
        operator's webhooks and, when it names `assets`, to their maintainers (who may read
        it, `api.access`); returns its leaf index, or None when the alarm already was in that
        state. Once per change whatever the number of processes: the state is read and changed
        under the log's lock, in the transaction that appends the record.

        Raises:
            NotFound: the operator's key is not held here.
            StorageError: the database cannot be reached.
        """

        def current(conn: Any) -> bool:
            row = conn.execute(select(AlarmRow.raised_by).where(AlarmRow.name == name)).first()
            return row is not None and row.raised_by is not None

        with self.dep.store.reading() as conn:
            if current(conn) == raised:
                return None
        dep = self.dep
        signer = dep.signer(dep.operator)
        payload = {"alarm": name, "state": "raised" if raised else "cleared", **facts}
        record = Record.new("alarm", payload, participant=dep.operator, address=signer.address)
        accepted = check_record(record, signer.sign(dep.domain, record), dep.domain,
                                self.key_snapshot())  # fmt: skip
        with self.append_lock, dep.log.appending() as app:
            if current(app.conn) == raised:
                return None
            [appended] = app.add([accepted])
            state = {"raised_by": appended.index if raised else None, "changed_us": now_us()}
            done = app.conn.execute(
                update(AlarmRow).where(AlarmRow.name == name).values(**state)
            ).rowcount
            if not done:
                app.conn.execute(insert(AlarmRow).values(name=name, **state))
            tag_asset, model = record_tags(payload)
            if tag_asset or model:
                app.conn.execute(
                    insert(RecordTag).values(
                        leaf_index=appended.index, asset=tag_asset, model=model
                    )
                )
            named = sorted(set(assets))
            if named:
                app.conn.execute(
                    insert(RecordAsset), [{"leaf_index": appended.index, "asset": a} for a in named]
                )
            self._enqueue_for_operators(app.conn, appended.index)
            if named:
                facts_ = RecordFacts("alarm", dep.operator, tag_asset, frozenset(named))
                self._enqueue_deliveries(
                    app.conn, [{"leaf_index": appended.index, "asset": None}], [facts_], named
                )
        return appended.index

    def _enqueue_for_operators(self, conn: Any, leaf_index: int) -> None:
        """Deliver record `leaf_index` to every active webhook of a participant acting as
        operator (they read everything)."""
        subs = conn.execute(
            select(Subscription.id, Subscription.participant).where(Subscription.active.is_(True))
        ).all()
        now = now_us()
        rows = [
            {"subscription": sub, "leaf_index": leaf_index, "status": "pending", "attempts": 0,
             "next_attempt_us": now}
            for sub, who in subs
            if "operator" in self.roles_of(who)
        ]  # fmt: skip
        if rows:
            conn.execute(insert(Delivery), rows)
            self.wake_delivery()

    def capture_epcis(self, document: dict[str, Any]) -> Any:
        """Capture EPCIS events as records signed by the operator, for the operator's own
        events (see ledger.epcis.capture.capture); other participants sign their own."""
        from ledger.epcis.capture import capture

        dep = self.dep
        keys = self.key_snapshot()
        with self.append_lock:
            return capture(
                dep.log,
                document,
                signer=dep.signer(dep.operator),
                participant=dep.operator,
                domain=dep.domain,
                keys=keys,
            )

    def capture_signed(self, submissions: Sequence[tuple[Record, bytes]]) -> Any:
        """Capture EPCIS events signed by their producers (ledger.epcis.capture.capture_signed)."""
        from ledger.epcis.capture import capture_signed

        keys = self.key_snapshot()
        with self.append_lock:
            return capture_signed(self.dep.log, submissions, domain=self.dep.domain, keys=keys)

    def _enqueue_deliveries(
        self,
        conn: Any,
        tags: list[dict[str, Any]],
        facts: list[RecordFacts],
        named: Sequence[str] = (),
    ) -> None:
        """Transactional outbox: deliveries are written with the record, or not at all.

        A subscription gets a record exactly when its owner, as a maintainer of its assets or a
        supplier of its product, could read it (`api.access.may_read`): webhooks never deliver
        what a GET would refuse. `named`: the assets records about several name (an alarm),
        whose maintainers are asked too.
        """
        products = {t["product"] for t in tags if t.get("product")}
        self._enqueue_assigned(
            conn, tags, facts, products, ProductAssignment.supplier, ProductAssignment.product
        )
        assets = {t["asset"] for t in tags if t["asset"]} | set(named)
        self._enqueue_assigned(
            conn, tags, facts, assets, AssetAssignment.maintainer, AssetAssignment.asset
        )

    def _enqueue_assigned(
        self,
        conn: Any,
        tags: list[dict[str, Any]],
        facts: list[RecordFacts],
        things: set[str],
        owner: Any,
        thing: Any,
    ) -> None:
        """Deliver each record to the webhooks of the partners assigned one of `things` (an
        assignment table's `owner` and `thing` columns: maintainers of assets, suppliers of
        products) that may read it in that role."""
        if not things:
            return
        role = "maintainer" if owner is AssetAssignment.maintainer else "supplier"
        subs = conn.execute(
            select(owner, thing, Subscription.id)
            .join(Subscription, Subscription.participant == owner)
            .where(thing.in_(things), Subscription.active.is_(True))
        ).all()
        assigned: dict[str, set[str]] = {}
        subscriptions: dict[str, set[str]] = {}
        for partner, item, sub in subs:
            if role not in self.roles_of(partner):
                continue  # its API keys are refused too: it reads nothing
            assigned.setdefault(partner, set()).add(item)
            subscriptions.setdefault(partner, set()).add(sub)
        now = now_us()
        rows = [
            {
                "subscription": sub,
                "leaf_index": t["leaf_index"],
                "status": "pending",
                "attempts": 0,
                "next_attempt_us": now,
            }
            for t, f in zip(tags, facts, strict=True)
            for partner, mine in assigned.items()
            if may_read(Caller(partner, role), f, mine)
            for sub in sorted(subscriptions[partner])
        ]
        if rows:
            conn.execute(insert(Delivery), rows)
            self.wake_delivery()
