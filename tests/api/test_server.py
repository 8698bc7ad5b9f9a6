"""`forgeproof up` assembled: records submitted over HTTP come back with anchored receipts."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from api.auth import create_api_key
from api.config import Settings
from api.server import build
from ledger.deployment import save_key
from ledger.records import Record
from ledger.signing import Signer


def test_up_anchors_what_it_accepts(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", checkpoint_every=5, checkpoint_interval_s=0.3)
    running = build(settings)
    try:
        dep = running.service.dep
        dep.registry.add_participant("acme", "ACME", ["supplier"])
        signer = Signer.generate()
        save_key(dep.home, "acme", signer)
        dep.registry.add_key("acme", signer.address, valid_from_us=1)
        auth = {"Authorization": f"Bearer {create_api_key(dep.store, 'acme', 'supplier')}"}
        running.start_background()
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
