"""Delivery to maintenance partners: feed scoping, signed webhooks, retries, restarts."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.config import Settings
from api.delivery import DeliveryWorker, check_signature
from api.service import Service
from ledger.deployment import Deployment
from ledger.records import Record
from ledger.signing import Domain, verify_record_signature
from tests.api.conftest import Hook, Plant


@pytest.fixture
def receiver() -> Iterator[Hook]:
    r = Hook(fail=2)
    yield r
    r.close()


def _setup(plant: Plant, url: str) -> dict:
    op = plant.as_("operator")
    for asset, who in (("engine-7", "fixit"), ("engine-9", "other-maint")):
        r = plant.client.post(
            "/v1/participants/assignments", json={"asset": asset, "maintainer": who}, headers=op
        )
        assert r.status_code == 201, r.text
    sub = plant.client.post("/v1/subscriptions", json={"url": url}, headers=plant.as_("fixit"))
    assert sub.status_code == 201
    return sub.json()


def _predict(plant: Plant, asset: str) -> dict:
    r = plant.predict(asset)
    assert r.status_code == 201, r.text
    return r.json()


def _drain(worker: DeliveryWorker, until: float = 10.0) -> None:
    deadline = time.monotonic() + until
    while time.monotonic() < deadline:
        worker.run_once()
        time.sleep(0.02)


def test_feed_is_scoped_to_assigned_assets(plant: Plant, receiver: Hook) -> None:
    _setup(plant, receiver.url)
    mine = _predict(plant, "engine-7")
    theirs = _predict(plant, "engine-9")
    plant.submit("acme")  # not a prediction at all
    feed = plant.client.get("/v1/feed", headers=plant.as_("fixit")).json()["data"]
    assert [r["id"] for r in feed] == [mine["id"]]
    r = plant.client.get(f"/v1/records/{theirs['id']}", headers=plant.as_("fixit"))
    assert r.status_code == 403
    # A supplier's feed holds its products' forecasts (tests/api/test_forecasts.py): none here.
    assert plant.client.get("/v1/feed", headers=plant.as_("acme")).json()["data"] == []
    assert plant.client.get("/v1/feed", headers=plant.as_("modelworks")).status_code == 403


def test_webhook_signed_retried_and_logged(plant: Plant, receiver: Hook) -> None:
    sub = _setup(plant, receiver.url)
    rec = _predict(plant, "engine-7")
    _predict(plant, "engine-9")  # another partner's asset: never sent here
    worker = DeliveryWorker(plant.service, base_delay_s=0.05)
    _drain(worker, 3.0)
    assert len(receiver.calls) == 3  # two failures, then delivered, nothing more
    headers, body = receiver.calls[-1].headers, receiver.calls[-1].body
    check_signature(sub["secret"], headers["x-forgeproof-signature"], body)
    with pytest.raises(ValueError):
        check_signature("wrong-secret", headers["x-forgeproof-signature"], body)
    payload = json.loads(body)
    assert payload["record"]["id"] == rec["id"]
    # The record's own EIP-712 signature travels with it and checks out on its own.
    record = Record.parse(payload["record"]["record"])
    domain = Domain.from_json(plant.service.dep.domain.to_json())
    verify_record_signature(domain, record, bytes.fromhex(payload["record"]["signature"][2:]))
    log = plant.client.get(
        f"/v1/subscriptions/{sub['id']}/deliveries", headers=plant.as_("fixit")
    ).json()
    assert [(d["status"], d["attempts"]) for d in log] == [("delivered", 3)]
    assert log[0]["last_error"] is None
    other = plant.client.get(
        f"/v1/subscriptions/{sub['id']}/deliveries", headers=plant.as_("other-maint")
    )
    assert other.status_code == 403


def test_pending_deliveries_survive_a_restart(plant: Plant, tmp_path: Path) -> None:
    down = Hook()
    url = down.url
    down.close()  # the partner is down: attempts fail, deliveries stay pending
    sub = _setup(plant, url)
    _predict(plant, "engine-7")
    worker = DeliveryWorker(plant.service, base_delay_s=0.01)
    worker.run_once()
    home = plant.service.dep.home
    plant.service.dep.close()  # the service goes away

    port = int(url.rsplit(":", 1)[1].split("/")[0])
    up = Hook()
    up.server.server_close()
    from http.server import ThreadingHTTPServer as Srv

    up.server = Srv(("127.0.0.1", port), up.server.RequestHandlerClass)
    threading.Thread(target=up.server.serve_forever, daemon=True).start()
    try:
        settings = Settings(home=home, sequencer=False, allow_private_webhooks=True)
        service = Service(Deployment.open(home), settings)
        _drain(DeliveryWorker(service, base_delay_s=0.01), 3.0)
        assert len(up.calls) == 1
        call = up.calls[0]
        check_signature(sub["secret"], call.headers["x-forgeproof-signature"], call.body)
        service.dep.close()
    finally:
        up.close()
