"""Issue #13's five findings, replayed as attacks on the service. Each must fail with a clear
refusal and leave everything as it was: the log, the registry on chain and its mirror.

1. key validity decided by the operator's database;
2. keys made unrevocable, or revoked into the past to disown what they signed;
3. an API key alone moving a signing identity;
4. EPCIS history as the operator's word for everyone;
5. anyone who writes putting "predictions" in a maintainer's feed and webhooks.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.config import Settings
from api.main import create_app
from api.service import Service
from api.tables import Delivery
from ledger.ingest import append_lines, submission_json
from ledger.log import Log
from ledger.receipts import build_receipt
from ledger.records import Record
from ledger.registry import Registry
from ledger.sequencer import Sequencer
from ledger.signing import Signer, sign_key_binding, sign_key_change
from ledger.store.models import RegistryEventRow
from tests.api.conftest import Plant, readable_by_policy
from tests.ledger.testonly.registry import forge_key


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def state(plant: Plant) -> tuple[Any, ...]:
    """What a refusal must leave unchanged: the log, the mirror, the chain's registry."""
    dep = plant.service.dep
    with dep.store.reading() as conn:
        events = conn.execute(select(func.count()).select_from(RegistryEventRow)).scalar()
        deliveries = conn.execute(select(func.count()).select_from(Delivery)).scalar()
    chain = plant.service.chain
    assert chain is not None
    return (dep.log.committed_size(), events, deliveries, chain.participants())


def signed_as(
    plant: Plant, signer: Signer, who: str, kind: str = "supplier_record", **payload: Any
) -> dict[str, Any]:
    rec = Record.new(kind, payload or {"lot": "L1"}, participant=who, address=signer.address)
    return submission_json(rec, signer.sign(plant.service.dep.domain, rec))


def forged_key(plant: Plant, who: str) -> Signer:
    return forge_key(plant.service.dep.store, who)


def anchor(plant: Plant) -> None:
    chain = plant.service.chain
    assert chain is not None
    Sequencer(plant.service.dep.log, chain).step(force=True)


def checks(verdict: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["name"]: (c["status"], c["detail"]) for c in verdict["checks"]}


# ------------------------------------------------------------------------------- finding 1
def test_a_key_only_the_database_knows_signs_nothing(plant: Plant) -> None:
    forger = forged_key(plant, "acme")
    before = state(plant)[0]
    r = plant.client.post(
        "/v1/records", json=signed_as(plant, forger, "acme"), headers=plant.as_("acme")
    )
    assert r.status_code == 422 and r.json()["code"] == "key_not_authorized", r.text
    assert "not registered" in r.json()["detail"]
    # The registry follower finds the edit: appends stop, and /healthz says why.
    plant.service.sync_registry()
    r = plant.submit("nordic")
    assert r.status_code == 503 and r.json()["code"] == "registry_mismatch", r.text
    health = plant.client.get("/healthz").json()
    assert health["status"] == "degraded"
    assert any("not on chain" in d for d in health["registry"]["mismatch"])
    assert state(plant)[0] == before


def test_a_record_that_got_past_the_database_fails_the_chain_key_check(plant: Plant) -> None:
    """Appended by a process that trusted the database alone (the mirror not checked), a
    record signed by a forged key is in the log, yet /v1/verify refuses it: key (chain)."""
    dep = plant.service.dep
    forger = forged_key(plant, "acme")
    genuine = plant.submit("acme", lot="GENUINE").json()
    forged = Record.new(
        "supplier_record", {"lot": "FORGED"}, participant="acme", address=forger.address
    )
    line = submission_json(forged, forger.sign(dep.domain, forged))
    import json

    done = append_lines(
        Log(dep.store), [json.dumps(line).encode()], dep.domain, Registry(dep.store).snapshot()
    )
    assert done.appended == 1
    anchor(plant)
    auditor = plant.as_("tuv")
    bad = build_receipt(dep.log, done.size - 1, dep.domain)
    verdict = plant.client.post("/v1/verify", json={"receipt": bad}, headers=auditor).json()
    assert not verdict["ok"]
    status, detail = checks(verdict)["key (chain)"]
    assert status == "failed" and "not registered on chain" in detail
    assert checks(verdict)["signature"][0] == "ok"  # the signature itself is fine: a real key
    good = plant.client.get(f"/v1/records/{genuine['id']}/receipt", headers=auditor).json()
    verdict = plant.client.post("/v1/verify", json=good, headers=auditor).json()
    assert verdict["ok"], verdict
    assert "was a key of acme (supplier)" in checks(verdict)["key (chain)"][1]


# ------------------------------------------------------------------------------- finding 2
def test_revocation_is_immediate_and_disowns_nothing(plant: Plant) -> None:
    dep = plant.service.dep
    acme = plant.signers["acme"]
    early = plant.submit("acme", lot="BEFORE").json()
    anchor(plant)
    # acme revokes its own key, with its own consent: from this block on.
    chain = plant.service.chain
    assert chain is not None
    nonce = chain.key_nonce("acme")
    consent = sign_key_change(acme, dep.domain, "acme", nonce, revoke=acme.address)
    r = plant.client.post(
        f"/v1/participants/acme/keys/{acme.address}/revoke",
        json={"authorization": _hex(consent)},
        headers=plant.as_("acme"),
    )
    assert r.status_code == 200, r.text
    key = next(k for k in r.json()["keys"] if k["address"] == acme.address)
    assert key["revoked_from_block"] is not None and key["revoked_by"] == acme.address
    # Nothing new from it ...
    r = plant.submit("acme", lot="AFTER")
    assert r.status_code == 422 and "revoked" in r.json()["detail"]
    # ... and what it signed and was anchored before still verifies, key (chain) included.
    receipt = plant.client.get(
        f"/v1/records/{early['id']}/receipt", headers=plant.as_("tuv")
    ).json()
    verdict = plant.client.post("/v1/verify", json=receipt, headers=plant.as_("tuv")).json()
    assert verdict["ok"] and checks(verdict)["key (chain)"][0] == "ok", verdict


# ------------------------------------------------------------------------------- finding 3
def _rotation(plant: Plant, who: str, new: Signer, consent_by: Signer | None) -> dict[str, Any]:
    chain = plant.service.chain
    assert chain is not None
    domain = plant.service.dep.domain
    old = plant.signers[who].address
    nonce = chain.key_nonce(who)
    body: dict[str, Any] = {
        "address": new.address,
        "key_proof": _hex(sign_key_binding(new, domain, who, new.address, nonce)),
    }
    if consent_by is not None:
        body["authorization"] = _hex(
            sign_key_change(consent_by, domain, who, nonce, add=new.address, revoke=old)
        )
    return body


def test_an_api_key_alone_cannot_move_a_signing_identity(plant: Plant) -> None:
    before = state(plant)
    thief = Signer.generate()  # holds acme's leaked API key and a key of its own
    url = "/v1/participants/acme/keys/rotate"
    attempts = [
        (_rotation(plant, "acme", thief, None), 422, "invalid_request"),  # no consent at all
        (_rotation(plant, "acme", thief, thief), 422, "bad_signature"),  # consent by itself
        (_rotation(plant, "acme", thief, plant.signers["nordic"]), 422, "bad_signature"),
    ]
    for body, status, code in attempts:
        r = plant.client.post(url, json=body, headers=plant.as_("acme"))
        assert (r.status_code, r.json()["code"]) == (status, code), r.text
        # An operator's API key cannot either: the contract wants acme's consent.
        r = plant.client.post(url, json=body, headers=plant.as_("operator"))
        assert r.status_code == status, r.text
    # Adding a key (rather than rotating), or revoking acme's key, the same.
    chain = plant.service.chain
    assert chain is not None
    proof = sign_key_binding(
        thief, plant.service.dep.domain, "acme", thief.address, chain.key_nonce("acme")
    )
    r = plant.client.post(
        "/v1/participants/acme/keys",
        json={"address": thief.address, "key_proof": _hex(proof), "authorization": _hex(proof)},
        headers=plant.as_("acme"),
    )
    assert r.status_code == 422, r.text
    r = plant.client.post(
        f"/v1/participants/acme/keys/{plant.signers['acme'].address}/revoke",
        headers=plant.as_("acme"),
    )
    assert r.status_code == 422 and r.json()["code"] == "authorization_required", r.text
    # Roles that write nothing change no signing keys, their own included.
    for who in ("tuv", "fixit"):
        body = _rotation(plant, who, Signer.generate(), plant.signers[who])
        r = plant.client.post(
            f"/v1/participants/{who}/keys/rotate", json=body, headers=plant.as_(who)
        )
        assert r.status_code == 403, r.text
    # The operator role is never granted through the API.
    r = plant.client.post(
        "/v1/participants/acme/roles", json={"roles": ["operator"]}, headers=plant.as_("operator")
    )
    assert r.status_code == 403, r.text
    assert state(plant) == before
    assert plant.submit("acme").status_code == 201  # acme still signs with its own key


def test_a_refused_rotation_leaves_the_old_key_valid(plant: Plant) -> None:
    before = state(plant)
    # A new key already bound to someone else (the operator's, with its genuine proof): the
    # contract refuses the whole rotation, revocation included.
    taken = plant.signers["operator"]
    body = _rotation(plant, "acme", taken, plant.signers["acme"])
    r = plant.client.post("/v1/participants/acme/keys/rotate", json=body, headers=plant.as_("acme"))
    assert r.status_code == 409 and "already bound" in r.json()["detail"], r.text
    bad = {**body, "address": "0x12"}
    r = plant.client.post("/v1/participants/acme/keys/rotate", json=bad, headers=plant.as_("acme"))
    assert r.status_code == 422, r.text
    assert state(plant) == before
    assert plant.submit("acme").status_code == 201
    # A rotation with acme's consent goes through, in one transaction.
    new = Signer.generate()
    body = _rotation(plant, "acme", new, plant.signers["acme"])
    r = plant.client.post("/v1/participants/acme/keys/rotate", json=body, headers=plant.as_("acme"))
    assert r.status_code == 200, r.text
    keys = {k["address"]: k for k in r.json()["keys"]}
    old = keys[plant.signers["acme"].address]
    assert old["revoked_from_block"] == keys[new.address]["valid_from_block"]
    assert plant.submit("acme").status_code == 422  # the old key signs nothing new
    assert (
        plant.client.post(
            "/v1/records", json=signed_as(plant, new, "acme"), headers=plant.as_("acme")
        ).status_code
        == 201
    )


def test_key_change_messages_are_what_the_contract_checks(plant: Plant) -> None:
    new = Signer.generate()
    old = plant.signers["acme"]
    r = plant.client.get(
        "/v1/participants/acme/key-change",
        params={"add": new.address, "revoke": old.address},
        headers=plant.as_("acme"),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    # Any Ethereum library signs them as given (here eth-account, as a wallet would).
    proof = Account.sign_message(
        encode_typed_data(full_message=body["key_binding"]), new.private_key
    )
    consent = Account.sign_message(
        encode_typed_data(full_message=body["key_change"]), old.private_key
    )
    r = plant.client.post(
        "/v1/participants/acme/keys/rotate",
        json={
            "address": new.address,
            "key_proof": _hex(proof.signature),
            "authorization": _hex(consent.signature),
        },
        headers=plant.as_("acme"),
    )
    assert r.status_code == 200, r.text


def test_api_keys_can_be_listed_revoked_and_expire(plant: Plant) -> None:
    op = plant.as_("operator")
    r = plant.client.post(
        "/v1/api-keys", json={"participant": "acme", "role": "supplier", "label": "erp"}, headers=op
    )
    assert r.status_code == 201, r.text
    issued = r.json()
    token, key_id = issued["api_key"], issued["id"]
    mine = {"Authorization": f"Bearer {token}"}
    assert plant.client.get("/v1/records", headers=mine).status_code == 200
    listed = plant.client.get("/v1/api-keys", headers=plant.as_("acme")).json()
    assert {k["participant"] for k in listed} == {"acme"}
    assert all(k["api_key"] is None for k in listed)  # the secret is shown once
    assert key_id in {k["id"] for k in plant.client.get("/v1/api-keys", headers=op).json()}
    # Another participant cannot revoke it (answered as if it did not exist) ...
    r = plant.client.post(f"/v1/api-keys/{key_id}/revoke", headers=plant.as_("nordic"))
    assert r.status_code == 404
    assert plant.client.get("/v1/records", headers=mine).status_code == 200
    # ... a second server process on the same database sees the revocation within a second.
    other = TestClient(create_app(Service(plant.service.dep, Settings(sequencer=False))))
    assert other.get("/v1/records", headers=mine).status_code == 200
    r = plant.client.post(f"/v1/api-keys/{key_id}/revoke", headers=plant.as_("acme"))
    assert r.status_code == 200 and r.json()["revoked_at"], r.text
    assert plant.client.get("/v1/records", headers=mine).status_code == 401
    time.sleep(1.0)
    assert other.get("/v1/records", headers=mine).status_code == 401
    # Expiry.
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
    r = plant.client.post(
        "/v1/api-keys",
        json={"participant": "nordic", "role": "supplier", "expires_at": soon},
        headers=op,
    )
    short = {"Authorization": f"Bearer {r.json()['api_key']}"}
    assert plant.client.get("/v1/records", headers=short).status_code == 200
    time.sleep(2.5)
    assert plant.client.get("/v1/records", headers=short).status_code == 401
    past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    r = plant.client.post(
        "/v1/api-keys",
        json={"participant": "nordic", "role": "supplier", "expires_at": past},
        headers=op,
    )
    assert r.status_code == 422
    # A role the participant does not hold on chain: refused, and a key loses its power when
    # the participant loses the role.
    r = plant.client.post(
        "/v1/api-keys", json={"participant": "acme", "role": "operator"}, headers=op
    )
    assert r.status_code == 422
    r = plant.client.post("/v1/participants/acme/roles", json={"roles": []}, headers=op)
    assert r.status_code == 200, r.text
    assert plant.client.get("/v1/records", headers=plant.as_("acme")).status_code == 401


# ------------------------------------------------------------------------------- finding 4
EPCIS_CONTEXT = ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"]


def _event(**fields: Any) -> dict[str, Any]:
    return {
        "@context": EPCIS_CONTEXT,
        "type": "ObjectEvent",
        "eventTime": "2026-01-05T06:00:00.000Z",
        "eventTimeZoneOffset": "+01:00",
        "action": "OBSERVE",
        **fields,
    }


def _signed_events(plant: Plant, who: str, *events: dict[str, Any]) -> list[dict[str, Any]]:
    from ledger.epcis.capture import prepare

    out = []
    for e in events:
        (p,), _ = prepare(e)
        out.append(plant.signed(who, kind="epcis_event", **p.payload))
    return out


def test_epcis_events_are_asserted_by_who_signed_them(plant: Plant) -> None:
    lot = "urn:epc:class:lgtin:4012345.012345.LOT-7"
    shipped = _event(
        epcList=["urn:epc:id:sgtin:4012345.012345.1"],
        bizStep="shipping",
        quantityList=[{"epcClass": lot, "quantity": 5}],
    )
    r = plant.client.post("/v1/epcis/capture", json=shipped, headers=plant.as_("acme"))
    assert r.status_code == 403  # a supplier's events are not the operator's word
    r = plant.client.post(
        "/v1/epcis/capture/signed",
        json=_signed_events(plant, "acme", shipped),
        headers=plant.as_("acme"),
    )
    assert r.status_code == 201, r.text
    event_id = r.json()["events"][0]["eventID"]
    # Only its own events: nordic cannot hand in acme-signed events, nor sign as acme.
    r = plant.client.post(
        "/v1/epcis/capture/signed",
        json=_signed_events(plant, "acme", _event(epcList=["urn:epc:id:sgtin:4012345.012345.2"])),
        headers=plant.as_("nordic"),
    )
    assert r.status_code == 403
    from urllib.parse import quote

    got = plant.client.get(
        f"/v1/epcis/events/{quote(event_id, safe='')}", headers=plant.as_("tuv")
    ).json()
    leaf = got["record"]["leaf_index"]
    record = plant.client.get(f"/v1/records/{leaf}", headers=plant.as_("tuv")).json()
    assert record["participant"] == "acme"
    g = plant.client.get("/v1/genealogy", params={"id": lot}, headers=plant.as_("tuv")).json()
    assert {e["asserted_by"] for e in g["events"]} == {"acme"}


def test_nobody_retracts_another_partys_event(plant: Plant) -> None:
    item = "urn:epc:id:sgtin:4012345.011111.9"
    inspection = _event(epcList=[item], bizStep="inspecting", disposition="non_conformant")
    r = plant.client.post("/v1/epcis/capture", json=inspection, headers=plant.as_("operator"))
    assert r.status_code == 201, r.text
    before = state(plant)
    declared = {
        **inspection,
        "errorDeclaration": {
            "declarationTime": "2026-01-06T06:00:00.000Z",
            "reason": "incorrect_data",
        },
    }
    r = plant.client.post(
        "/v1/epcis/capture/signed",
        json=_signed_events(plant, "acme", declared),
        headers=plant.as_("acme"),
    )
    assert r.status_code == 403 and r.json()["code"] == "not_permitted", r.text
    assert "only its submitter or an operator" in r.json()["detail"]
    assert state(plant) == before
    recall = plant.client.get(
        "/v1/recall", params={"nonconformant": True}, headers=plant.as_("tuv")
    ).json()
    assert item in recall["seeds"]
    # The submitter itself may: the operator retracts its own inspection.
    r = plant.client.post("/v1/epcis/capture", json=declared, headers=plant.as_("operator"))
    assert r.status_code == 201, r.text
    recall = plant.client.get(
        "/v1/recall", params={"nonconformant": True}, headers=plant.as_("tuv")
    ).json()
    assert item not in recall["seeds"]


def test_a_suppliers_inspection_does_not_condemn_the_plants_lots(plant: Plant) -> None:
    item = "urn:epc:id:sgtin:4012345.011111.77"
    forged = _event(epcList=[item], bizStep="inspecting", disposition="non_conformant")
    r = plant.client.post(
        "/v1/epcis/capture/signed",
        json=_signed_events(plant, "acme", forged),
        headers=plant.as_("acme"),
    )
    assert r.status_code == 201, r.text  # logged, as acme's statement
    recall = plant.client.get(
        "/v1/recall", params={"nonconformant": True}, headers=plant.as_("tuv")
    ).json()
    assert item not in recall["seeds"]
    assert all(e["asserted_by"] in {"operator", "line-3"} for e in recall["seed_events"])


# ------------------------------------------------------------------------------- finding 5
def test_only_model_runners_predict_and_they_cite_a_registered_model(plant: Plant) -> None:
    before = state(plant)
    for who in ("acme", "modelworks"):
        r = plant.submit(
            who, kind="prediction", asset="engine-7", rul=1.0, model_manifest_digest=plant.model()
        )
        if who == "modelworks":
            assert r.status_code == 403, r.text  # publishing models is not running them
        else:
            assert r.status_code == 403 and r.json()["code"] == "not_permitted", r.text
    r = plant.submit("line-3", kind="prediction", asset="engine-7", rul=1.0)
    assert r.status_code == 422 and "must cite its model" in r.json()["detail"]
    r = plant.submit(
        "line-3",
        kind="prediction",
        asset="engine-7",
        rul=1.0,
        model_manifest_digest="0x" + "ab" * 32,
    )
    assert r.status_code == 422 and "not registered" in r.json()["detail"]
    after = state(plant)
    assert after[0] == before[0] + 1  # the model manifest registered on the way, nothing else
    assert plant.predict("engine-7").status_code == 201


KINDS = ["prediction", "inspection", "supplier_record", "note"]
PRODUCERS = ["operator", "acme", "line-3", "modelworks"]
RELATIONS = {"assigned": "engine-1", "other's": "engine-2", "unassigned": "engine-3", "none": None}


def test_webhooks_deliver_exactly_what_a_get_allows(plant: Plant) -> None:
    """Every (kind, producer role, relation of its asset to the maintainer): a subscription
    receives a record exactly when its owner may GET it."""
    op = plant.as_("operator")
    for asset, who in (("engine-1", "fixit"), ("engine-2", "other-maint")):
        r = plant.client.post(
            "/v1/participants/assignments", json={"asset": asset, "maintainer": who}, headers=op
        )
        assert r.status_code == 201
    sub = plant.client.post(
        "/v1/subscriptions", json={"url": "http://127.0.0.1:9/hook"}, headers=plant.as_("fixit")
    ).json()
    digest = plant.model()
    submitted = []
    for kind in KINDS:
        for producer in PRODUCERS:
            for relation, asset in RELATIONS.items():
                payload: dict[str, Any] = {"case": f"{kind}/{producer}/{relation}"}
                if asset:
                    payload["asset"] = asset
                if kind in ("prediction", "inspection"):
                    payload["model_manifest_digest"] = digest
                r = plant.submit(producer, kind=kind, **payload)
                if r.status_code == 403:  # this role may not sign this kind: nothing logged
                    continue
                assert r.status_code == 201, (kind, producer, relation, r.text)
                submitted.append((r.json()["index"], kind, producer, relation))
    assert {k for _, k, _, _ in submitted} == set(KINDS)
    with plant.service.dep.store.reading() as conn:
        delivered = set(
            conn.execute(
                select(Delivery.leaf_index).where(Delivery.subscription == sub["id"])
            ).scalars()
        )
    fixit = plant.as_("fixit")
    readable = {
        i
        for i, *_ in submitted
        if plant.client.get(f"/v1/records/{i}", headers=fixit).status_code == 200
    }
    listed = {
        r["index"]
        for r in plant.client.get("/v1/records", params={"limit": 500}, headers=fixit).json()[
            "data"
        ]
    }
    feed = {
        r["index"]
        for r in plant.client.get("/v1/feed", params={"limit": 500}, headers=fixit).json()["data"]
    }
    assert delivered == readable == listed
    assert readable == {
        i for i, k, _, rel in submitted if k in ("prediction", "inspection") and rel == "assigned"
    }
    # The feed is the predictions (and alarms naming its assets, none here: tests/api/
    # test_promises.py) alone, a maintainer's work list; it never shows more.
    assert feed == {i for i, k, _, rel in submitted if k == "prediction" and rel == "assigned"}
    assert readable  # the matrix holds deliverable records at all


@pytest.mark.parametrize(
    "role", ["supplier", "manufacturer", "auditor", "maintainer", "model_publisher", "operator"]
)
def test_may_read_and_its_sql_agree(plant: Plant, role: str) -> None:
    """The policy in Python (webhooks, the receipt fast path) and as SQL (listings) agree on
    every record for every role."""
    from api.auth import Caller

    op = plant.as_("operator")
    plant.client.post(
        "/v1/participants/assignments",
        json={"asset": "engine-1", "maintainer": "fixit"},
        headers=op,
    )
    for asset in ("engine-1", "engine-2"):
        plant.predict(asset)
        plant.submit("acme", asset=asset)
    participant = {
        "supplier": "acme",
        "manufacturer": "line-3",
        "auditor": "tuv",
        "maintainer": "fixit",
        "model_publisher": "modelworks",
        "operator": "operator",
    }[role]
    readable_by_policy(plant, Caller(participant, role))


def test_forgeproof_epcis_sign_makes_what_capture_signed_takes(plant: Plant, tmp_path: Any) -> None:
    import json

    from typer.testing import CliRunner

    from api.cli import app
    from api.demo.synthetic import PlantConfig, plant_document, plant_events

    doc = plant_document(list(plant_events(PlantConfig(runs=1, stages=2, seed=9))))
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(doc))
    out = tmp_path / "signed.json"
    home = str(plant.service.dep.home)
    result = CliRunner().invoke(
        app, ["epcis", "sign", "--as", "line-3", str(path), "-o", str(out), "--home", home]
    )
    assert result.exit_code == 0, result.output
    r = plant.client.post(
        "/v1/epcis/capture/signed", json=json.loads(out.read_text()), headers=plant.as_("line-3")
    )
    assert r.status_code == 201, r.text
    assert r.json()["captured"] == len(doc["epcisBody"]["eventList"])
    # Only a participant whose key is held here can sign.
    result = CliRunner().invoke(app, ["epcis", "sign", "--as", "nobody", str(path), "--home", home])
    assert result.exit_code == 2 and "no valid key of 'nobody'" in result.output
