"""Health that tells the truth: lag, the sequencer, the database; an alarm when anchoring lags."""

from __future__ import annotations

import json
import time

from api.delivery import DeliveryWorker
from api.service import Service
from ledger.deployment import Deployment
from ledger.errors import StorageError, VerificationError
from ledger.sequencer import Sequencer
from tests.api.conftest import Hook, Plant


def _alarms(plant: Plant) -> list[dict[str, object]]:
    r = plant.client.get("/v1/records", params={"kind": "alarm"}, headers=plant.as_("operator"))
    assert r.status_code == 200, r.text
    return [item["record"]["payload"] for item in r.json()["data"]]


def test_lagging_anchors_degrade_health_and_raise_one_alarm(plant: Plant) -> None:
    service = plant.service
    service.settings.max_anchor_lag_s = 0.3
    hook = Hook()
    try:
        sub = plant.client.post(
            "/v1/subscriptions", json={"url": hook.url}, headers=plant.as_("operator")
        )
        assert sub.status_code == 201, sub.text
        assert plant.client.get("/healthz").json()["status"] == "ok"
        assert plant.client.get("/readyz").status_code == 200
        assert plant.submit("acme").status_code == 201
        time.sleep(0.4)  # nothing anchors it: no sequencer runs here
        health = plant.client.get("/healthz")
        assert health.status_code == 200  # liveness: the process answers
        body = health.json()
        assert body["status"] == "degraded"
        assert body["anchoring"]["lag_records"] == 1 and body["anchoring"]["lag_seconds"] > 0.3
        assert any("anchoring lags 1 records" in p for p in body["problems"])
        assert body["sequencer"]["here"] == "off"
        ready = plant.client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "degraded"

        service.monitor.tick()
        service.monitor.tick()  # once per episode
        other = Service(Deployment.open(service.dep.home), service.settings)
        other.monitor.tick()  # another process sees the same lag: still one alarm
        alarms = _alarms(plant)
        assert [a["state"] for a in alarms] == ["raised"]
        assert alarms[0]["alarm"] == "anchoring_lag" and alarms[0]["lag_records"] >= 1
        scrape = plant.client.get("/metrics", headers=plant.as_("operator")).text
        assert (
            "forgeproof_anchor_lag_seconds" in scrape
            and "forgeproof_anchor_lag_records 2" in scrape
        )

        Sequencer(service.dep.log, service.chain).step(force=True)  # type: ignore[arg-type]
        service.monitor.tick()
        assert [a["state"] for a in _alarms(plant)] == ["raised", "cleared"]
        assert plant.client.get("/readyz").status_code == 200

        # The operator's webhook got both, signed by the operator.
        DeliveryWorker(service, base_delay_s=0.01).run_once()
        delivered = [json.loads(call.body)["record"] for call in hook.calls]
        assert [r["kind"] for r in delivered] == ["alarm", "alarm"]
        assert {r["participant"] for r in delivered} == {"operator"}
        other.dep.close()
    finally:
        hook.close()


def test_health_names_what_is_wrong_without_leaking_it(plant: Plant) -> None:
    service = plant.service

    def down() -> object:
        raise StorageError("database error: connection to postgres://app:s3cret@db:5432 refused")

    service.dep.log.anchoring = down  # type: ignore[method-assign]
    body = plant.client.get("/healthz").json()
    assert body["status"] == "degraded"
    assert body["database"] == {"reachable": False, "error": "StorageError"}
    assert "s3cret" not in json.dumps(body)
    assert plant.client.get("/readyz").status_code == 503
    del service.dep.log.anchoring

    stopped = Sequencer(service.dep.log, service.chain)  # type: ignore[arg-type]
    stopped.role, stopped.failure = "stopped", VerificationError("forked at size 9: 0x...")
    service.monitor.sequencer = stopped
    body = plant.client.get("/healthz").json()
    assert body["status"] == "degraded" and body["sequencer"]["here"] == "stopped"
    assert "the sequencer stopped: VerificationError" in body["problems"]
