"""`forgeproof up` assembled: records submitted over HTTP come back with anchored receipts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.auth import create_api_key
from api.config import Settings
from api.server import Running, build
from ledger.chain.devnode import AnvilNode, find_anvil
from ledger.deployment import save_key
from ledger.records import Record
from ledger.signing import Signer, sign_key_binding
from ml.shipped import SAMPLES
from tests.conftest import missing


@pytest.fixture(params=["embedded", pytest.param("anvil", marks=pytest.mark.node)])
def chain_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "embedded":
        yield None
        return
    if find_anvil() is None:
        missing("anvil is not installed (npm install)")
    with AnvilNode.start() as node:
        yield node.url


def test_up_anchors_what_it_accepts(tmp_path: Path, chain_url: str | None) -> None:
    settings = Settings(
        home=tmp_path / "home", chain_url=chain_url, checkpoint_every=5, checkpoint_interval_s=0.3
    )
    running = build(settings)
    try:
        dep = running.service.dep
        signer = Signer.generate()
        save_key(dep.home, "acme", signer)
        # Registered on chain behind the service's back: its registry follower picks it up.
        proof = sign_key_binding(signer, dep.domain, "acme", signer.address, 0)
        running.chain.register_participant("acme", "ACME", ["supplier"], signer.address, proof)
        running.start_background()
        deadline = time.monotonic() + 10
        while "acme" not in {p.id for p in dep.registry.participants()}:
            assert time.monotonic() < deadline, "the registry did not follow the chain"
            time.sleep(0.05)
        auth = {"Authorization": f"Bearer {create_api_key(dep.store, 'acme', 'supplier')}"}
        client = TestClient(running.app)
        ids = []
        for i in range(7):
            rec = Record.new(
                "supplier_record", {"lot": f"L{i}"}, participant="acme", address=signer.address
            )
            body = {"record": rec.to_json(), "signature": "0x" + signer.sign(dep.domain, rec).hex()}
            r = client.post("/v1/records", json=body, headers=auth)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        deadline = time.monotonic() + 60
        while True:
            got = client.get(f"/v1/records/{ids[-1]}/receipt", headers=auth).json()
            if got["status"] == "anchored":
                break
            assert time.monotonic() < deadline, got
            time.sleep(0.1)
        verdict = client.post("/v1/verify", json={"receipt": got["receipt"]}, headers=auth).json()
        assert (
            verdict["ok"] and {c["name"]: c["status"] for c in verdict["checks"]}["anchor"] == "ok"
        )
        assert client.get("/healthz").json()["anchored"] is True
    finally:
        running.close()


def test_demo_seed_prints_working_keys(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from api.demo import seed

    running = build(Settings(home=tmp_path / "demo", checkpoint_every=10_000))
    try:
        out = io.StringIO()
        keys = seed(running, base_url="http://127.0.0.1:8000", console=Console(file=out, width=200))
        text = out.getvalue()
        assert "anchored checkpoint size" in text and keys["tuv-audit"] in text
        client = TestClient(running.app)
        auditor = {"Authorization": f"Bearer {keys['tuv-audit']}"}
        records = client.get("/v1/records", params={"limit": 500}, headers=auditor).json()["data"]
        kinds = {r["kind"] for r in records}
        assert {"supplier_record", "epcis_event"} <= kinds
        shipped = running.service.runner.manifests
        assert ("model_manifest" in kinds) == bool(shipped)
        if any(m.task == "defect" for m in shipped.values()):
            assert "inspection" in kinds
        if any(m.task == "rul" for m in shipped.values()):
            feed = client.get(
                "/v1/feed", headers={"Authorization": f"Bearer {keys['fixit-services']}"}
            )
            assert feed.json()["data"], "the maintenance partner sees its engines' predictions"
        first = records[0]["id"]
        receipt = client.get(f"/v1/records/{first}/receipt", headers=auditor).json()
        assert receipt["status"] == "anchored"
        verdict = client.post("/v1/verify", json=receipt, headers=auditor).json()
        assert verdict["ok"], verdict
    finally:
        running.close()


def test_inspection_prediction_is_signed_and_exported_as_epcis(tmp_path: Path) -> None:
    running = build(Settings(home=tmp_path / "home", checkpoint_every=10_000))
    try:
        runner = running.service.runner
        if not any(m.task == "defect" for m in runner.manifests.values()):
            missing("no defect model shipped in ml/shipped/models/")
        dep = running.service.dep
        key = create_api_key(dep.store, "operator", "operator")
        client = TestClient(running.app)
        image = next((SAMPLES / "neu").glob("*.jpg"))
        r = client.post(
            "/v1/predictions/inspection",
            files={"image": (image.name, image.read_bytes())},
            data={"item": "urn:epc:id:sgtin:4012345.011111.42"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 201, r.text
        body = r.json()
        payload = body["record"]["payload"]
        assert payload["verdict"] in payload["probabilities"]
        assert payload["model_manifest_digest"] in runner.manifests
        event = client.get(
            "/v1/epcis/events",
            params={"EQ_bizStep": "inspecting", "MATCH_epc": "urn:epc:id:sgtin:4012345.011111.42"},
            headers={"Authorization": f"Bearer {key}"},
        ).json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        assert [e["eventID"] for e in event] == [body["epcis_event_id"]]
        assert event[0]["fp:recordLeafIndex"] == body["index"]
        bad = client.post(
            "/v1/predictions/inspection",
            files={"image": ("x.jpg", b"not an image")},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert bad.status_code == 422 and bad.json()["code"] == "invalid_image"
    finally:
        running.close()


def test_no_sequencer_setting_is_honoured(tmp_path: Path) -> None:
    """`up --no-sequencer` (Settings.sequencer=False) starts no publisher: checkpoints are left
    to a standalone `forgeproof sequencer`, and health says who leads (nobody here)."""
    running = build(Settings(home=tmp_path / "home", sequencer=False, checkpoint_interval_s=0.1))
    try:
        assert running.sequencer is None
        running.start_background()
        assert {t.name for t in running.threads} == {"monitor"}
        dep = running.service.dep
        operator = dep.signer("operator")
        rec = Record.new("alarm", {"note": "x"}, participant="operator", address=operator.address)
        body = {"record": rec.to_json(), "signature": "0x" + operator.sign(dep.domain, rec).hex()}
        client = TestClient(running.app)
        auth = {"Authorization": f"Bearer {running.first_api_key}"}
        assert client.post("/v1/records", json=body, headers=auth).status_code == 201
        time.sleep(0.5)
        assert dep.log.latest_checkpoint() is None
        report = client.get("/healthz").json()
        assert report["sequencer"]["here"] == "off" and report["sequencer"]["leader"] is None
    finally:
        running.close()


@pytest.mark.postgres
@pytest.mark.node
def test_servers_starting_together_register_each_model_once(
    tmp_path: Path, postgres_url: str
) -> None:
    """Three servers start at once on a deployment made by `forgeproof init`: each registers
    the models it runs. (Check-then-insert: the losers died with a key violation on models.)"""
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import func, select

    from api.tables import ModelRow
    from ledger.deployment import Deployment
    from ledger.store.models import RecordRow
    from tests.conftest import postgres_schema

    with postgres_schema(postgres_url) as url, AnvilNode.start() as node:
        home = tmp_path / "home"
        Deployment.init(home, database_url=url, chain_url=node.url).close()
        gate = threading.Barrier(3)

        def start(_: int) -> Running:
            gate.wait(timeout=30)
            return build(Settings(home=home))

        with ThreadPoolExecutor(3) as pool:
            started = list(pool.map(start, range(3)))
        try:
            with started[0].service.dep.store.reading() as conn:
                models = conn.execute(select(func.count()).select_from(ModelRow)).scalar_one()
                logged = conn.execute(
                    select(func.count())
                    .select_from(RecordRow)
                    .where(RecordRow.kind == "model_manifest")
                ).scalar_one()
            assert models == len(started[0].service.runner.manifests) > 0
            assert logged == models
        finally:
            for running in started:
                running.close()
