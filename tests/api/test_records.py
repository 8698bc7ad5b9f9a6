"""Records over HTTP: submit, read, list, receipts, verification, checkpoints."""

from __future__ import annotations

import json

from tests.api.conftest import Plant


def test_submit_read_receipt_verify(plant: Plant) -> None:
    r = plant.submit("acme", lot="LOT-7", qty=40)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "accepted" and body["index"] == 0
    rid = body["id"]
    got = plant.client.get(f"/v1/records/{rid}", headers=plant.as_("acme")).json()
    assert got["record"]["payload"] == {"lot": "LOT-7", "qty": 40} and got["index"] == 0
    pending = plant.client.get(f"/v1/records/{rid}/receipt", headers=plant.as_("acme"))
    assert pending.status_code == 202 and pending.json()["status"] == "pending"
    plant.service.dep.log.checkpoint()
    receipt = plant.client.get(f"/v1/records/{rid}/receipt", headers=plant.as_("acme")).json()
    assert receipt["status"] == "checkpointed"
    verdict = plant.client.post(
        "/v1/verify", json={"receipt": receipt["receipt"]}, headers=plant.as_("tuv")
    ).json()
    assert verdict["ok"], verdict
    status = {c["name"]: (c["status"], c["detail"]) for c in verdict["checks"]}
    assert status["checkpoint"][0] == "ok"
    # Not anchored yet: the chain checks say so, as skipped, not as passed or failed.
    assert status["anchor"][0] == status["key (chain)"][0] == "skipped"
    assert "claims no anchor" in status["anchor"][1]
    assert "first checkpoint that covers the record" in status["key (chain)"][1]
    receipt["receipt"]["record"]["payload"]["qty"] = 41
    bad = plant.client.post("/v1/verify", json=receipt, headers=plant.as_("tuv")).json()
    assert not bad["ok"] and {"canonical", "signature"} <= {
        c["name"] for c in bad["checks"] if c["status"] == "failed"
    }


def test_resubmission_is_idempotent(plant: Plant) -> None:
    body = plant.signed("acme", lot="L9")
    first = plant.client.post("/v1/records", json=body, headers=plant.as_("acme"))
    again = plant.client.post("/v1/records", json=body, headers=plant.as_("acme"))
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == {**first.json(), "status": "duplicate"}


def test_refusals_are_problem_json(plant: Plant) -> None:
    body = plant.signed("acme")
    body["record"]["payload"]["lot"] = "tampered"
    r = plant.client.post("/v1/records", json=body, headers=plant.as_("acme"))
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "bad_signature" and "signature was made by" in r.json()["detail"]
    r = plant.client.post("/v1/records", json={"record": {}}, headers=plant.as_("acme"))
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"
    r = plant.client.post("/v1/records", json=plant.signed("nordic"), headers=plant.as_("acme"))
    assert r.status_code == 403 and "own records" in r.json()["detail"]
    r = plant.client.get("/v1/records/0")
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    big = plant.client.post(
        "/v1/records",
        content=b"x" * (plant.service.settings.max_body_bytes + 1),
        headers={**plant.as_("acme"), "content-type": "application/json"},
    )
    assert big.status_code == 413
    # Ids that str.isdigit accepts but int() refuses (found by the fuzzer) are a 422, not a 500.
    for bad in ("%C2%B9", "%D9%A3", "abc"):
        r = plant.client.get(f"/v1/records/{bad}/receipt", headers=plant.as_("operator"))
        assert r.status_code == 422 and r.json()["code"] == "invalid_id", bad


def test_list_filters_and_pages(plant: Plant) -> None:
    for i in range(7):
        assert plant.submit("acme", lot=f"A{i}").status_code == 201
    for i in range(3):
        assert plant.submit("nordic", lot=f"N{i}").status_code == 201
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = plant.client.get("/v1/records", params=params, headers=plant.as_("tuv")).json()
        seen += [r["index"] for r in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(range(10))
    mine = plant.client.get("/v1/records", headers=plant.as_("nordic")).json()["data"]
    assert [r["participant"] for r in mine] == ["nordic"] * 3
    by_producer = plant.client.get(
        "/v1/records", params={"producer": "acme"}, headers=plant.as_("tuv")
    ).json()["data"]
    assert len(by_producer) == 7


def test_checkpoints_and_consistency(plant: Plant) -> None:
    for i in range(5):
        plant.submit("acme", lot=f"A{i}")
    plant.service.dep.log.checkpoint()
    for i in range(4):
        plant.submit("acme", lot=f"B{i}")
    plant.service.dep.log.checkpoint()
    latest = plant.client.get("/v1/checkpoints/latest", headers=plant.as_("tuv")).json()
    assert latest["size"] == 9
    cps = plant.client.get("/v1/checkpoints", headers=plant.as_("tuv")).json()["data"]
    assert [c["size"] for c in cps] == [9, 5]
    proof = plant.client.get(
        "/v1/checkpoints/consistency", params={"from": 5, "to": 9}, headers=plant.as_("tuv")
    ).json()
    from ledger.merkle import verify_consistency

    verify_consistency(
        5,
        9,
        [bytes.fromhex(h[2:]) for h in proof["proof"]],
        bytes.fromhex(cps[1]["root"][2:]),
        bytes.fromhex(latest["root"][2:]),
    )


def test_health_and_metrics(plant: Plant) -> None:
    plant.submit("acme")
    assert plant.client.get("/healthz").json()["log_size"] == 1
    assert plant.client.get("/metrics").status_code == 401  # the figures are the operator's
    assert plant.client.get("/metrics", headers=plant.as_("acme")).status_code == 403
    metrics = plant.client.get("/metrics", headers=plant.as_("operator")).text
    assert "forgeproof_http_requests_total" in metrics and "forgeproof_log_size 1.0" in metrics


def test_verify_reads_the_body_strictly(plant: Plant) -> None:
    rid = plant.submit("acme").json()["id"]
    plant.service.dep.log.checkpoint()
    receipt = plant.client.get(f"/v1/records/{rid}/receipt", headers=plant.as_("acme")).json()
    text = json.dumps(receipt)
    tuv = {**plant.as_("tuv"), "content-type": "application/json"}
    assert plant.client.post("/v1/verify", content=text, headers=tuv).json()["ok"]
    # The same key twice: two parsers would read two receipts. Refused, named.
    doubled = text.replace('"format":', '"leaf_index": 0, "format":', 1)
    r = plant.client.post("/v1/verify", content=doubled, headers=tuv)
    assert r.status_code == 422 and "duplicate key 'leaf_index'" in r.json()["detail"], r.text
    r = plant.client.post("/v1/verify", content="[1, 2]", headers=tuv)
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"
