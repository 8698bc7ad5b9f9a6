"""Every role against every endpoint: forbidden calls get 401/403 and leak nothing.

The matrix lists each route of the app; a route missing from it fails the test, so a new
endpoint cannot ship without deciding who may call it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from ledger.signing import Signer, sign_key_binding
from tests.api.conftest import PLANT, Plant, readable_by_policy

ROLES = {pid: role for pid, role in PLANT}
ALL = set(ROLES)
READ_ALL = {"operator", "line-3", "tuv"}


def _ctx(plant: Plant) -> dict[str, Any]:
    """A little history: a supplier record, a prediction for fixit's asset, a checkpoint."""
    op = plant.as_("operator")
    plant.client.post(
        "/v1/participants/assignments",
        json={"asset": "engine-7", "maintainer": "fixit"},
        headers=op,
    )
    supplier = plant.submit("acme", lot="SECRET-LOT").json()
    prediction = plant.predict("engine-7", rul=40.0).json()
    plant.service.dep.log.checkpoint()
    receipt = plant.client.get(f"/v1/records/{supplier['id']}/receipt", headers=op).json()[
        "receipt"
    ]
    sub = plant.client.post(
        "/v1/subscriptions", json={"url": "http://127.0.0.1:9/x"}, headers=plant.as_("fixit")
    ).json()
    model = p_register(plant)
    return {
        "model": model,
        "supplier": supplier,
        "prediction": prediction,
        "receipt": receipt,
        "sub": sub,
    }


def _manifest(plant: Plant, who: str, name: str | None = None) -> dict[str, Any]:
    return plant.manifest(who, name or f"rul-{who}")


def p_register(plant: Plant) -> dict[str, Any]:
    r = plant.client.post(
        "/v1/models", json=_manifest(plant, "modelworks", "base"), headers=plant.as_("modelworks")
    )
    assert r.status_code == 201, r.text
    return r.json()


def _new_participant(p: Plant, who: str) -> dict[str, Any]:
    signer = Signer.generate()
    pid = f"new-{who}"
    proof = sign_key_binding(signer, p.service.dep.domain, pid, signer.address, 0)
    return {
        "id": pid,
        "name": "N",
        "roles": ["supplier"],
        "address": signer.address,
        "key_proof": "0x" + proof.hex(),
    }


def _signed_event(p: Plant, who: str) -> list[dict[str, Any]]:
    event = {**_EVENT, "eventTime": f"2026-01-05T06:00:{len(who):02d}.000Z"}
    return [p.signed(who, kind="epcis_event", **event)]


_SIG = "0x" + "11" * 65


Call = Callable[[Plant, str, dict[str, Any]], Any]

# (method, route path) -> (who may call it, how to call it as `who`)
MATRIX: dict[tuple[str, str], tuple[set[str], Call]] = {
    ("POST", "/v1/records"): (
        {"acme", "nordic", "line-3", "operator"},
        lambda p, who, c: p.client.post("/v1/records", json=p.signed(who), headers=p.as_(who)),
    ),
    ("GET", "/v1/records"): (
        ALL,
        lambda p, who, c: p.client.get("/v1/records", headers=p.as_(who)),
    ),
    ("GET", "/v1/records/{id}"): (
        READ_ALL | {"acme"},
        lambda p, who, c: p.client.get(f"/v1/records/{c['supplier']['id']}", headers=p.as_(who)),
    ),
    ("GET", "/v1/records/{id}/receipt"): (
        READ_ALL | {"acme"},
        lambda p, who, c: p.client.get(
            f"/v1/records/{c['supplier']['id']}/receipt", headers=p.as_(who)
        ),
    ),
    ("POST", "/v1/verify"): (
        ALL,
        lambda p, who, c: p.client.post(
            "/v1/verify", json={"receipt": c["receipt"]}, headers=p.as_(who)
        ),
    ),
    ("GET", "/v1/checkpoints/latest"): (
        ALL,
        lambda p, who, c: p.client.get("/v1/checkpoints/latest", headers=p.as_(who)),
    ),
    ("GET", "/v1/checkpoints"): (
        ALL,
        lambda p, who, c: p.client.get("/v1/checkpoints", headers=p.as_(who)),
    ),
    ("GET", "/v1/checkpoints/consistency"): (
        ALL,
        lambda p, who, c: p.client.get(
            "/v1/checkpoints/consistency", params={"from": 1, "to": 2}, headers=p.as_(who)
        ),
    ),
    ("GET", "/v1/participants"): (
        ALL,
        lambda p, who, c: p.client.get("/v1/participants", headers=p.as_(who)),
    ),
    ("POST", "/v1/participants"): (
        {"operator"},
        lambda p, who, c: p.client.post(
            "/v1/participants",
            json=_new_participant(p, who),
            headers=p.as_(who),
        ),
    ),
    ("POST", "/v1/participants/{participant}/keys/rotate"): (
        {"operator", "nordic"},
        lambda p, who, c: p.client.post(
            "/v1/participants/nordic/keys/rotate",
            json={
                "address": "0x" + f"{len(who):02x}" * 20,
                "key_proof": _SIG,
                "authorization": _SIG,
            },
            headers=p.as_(who),
        ),
    ),
    ("POST", "/v1/participants/{participant}/keys/{address}/revoke"): (
        {"operator", "modelworks"},
        lambda p, who, c: p.client.post(
            f"/v1/participants/modelworks/keys/{p.signers['modelworks'].address}/revoke",
            headers=p.as_(who),
        ),
    ),
    ("GET", "/v1/participants/{participant}"): (
        ALL,
        lambda p, who, c: p.client.get("/v1/participants/nordic", headers=p.as_(who)),
    ),
    ("POST", "/v1/participants/{participant}/roles"): (
        {"operator"},
        lambda p, who, c: p.client.post(
            "/v1/participants/nordic/roles", json={"roles": ["supplier"]}, headers=p.as_(who)
        ),
    ),
    ("GET", "/v1/participants/{participant}/key-change"): (
        {"operator", "nordic"},
        lambda p, who, c: p.client.get(
            "/v1/participants/nordic/key-change",
            params={"add": "0x" + "34" * 20},
            headers=p.as_(who),
        ),
    ),
    ("POST", "/v1/participants/{participant}/keys"): (
        {"operator", "nordic"},
        lambda p, who, c: p.client.post(
            "/v1/participants/nordic/keys",
            json={"address": "0x" + "35" * 20, "key_proof": _SIG, "authorization": _SIG},
            headers=p.as_(who),
        ),
    ),
    ("POST", "/v1/api-keys"): (
        {"operator"},
        lambda p, who, c: p.client.post(
            "/v1/api-keys",
            json={"participant": "acme", "role": "supplier"},
            headers=p.as_(who),
        ),
    ),
    ("GET", "/v1/api-keys"): (
        ALL,
        lambda p, who, c: p.client.get("/v1/api-keys", headers=p.as_(who)),
    ),
    ("POST", "/v1/api-keys/{key_id}/revoke"): (
        ALL,
        lambda p, who, c: p.client.post("/v1/api-keys/k_none/revoke", headers=p.as_(who)),
    ),
    ("POST", "/v1/participants/{participant}/api-keys"): (
        {"operator"},
        lambda p, who, c: p.client.post(
            "/v1/participants/acme/api-keys", json={"role": "supplier"}, headers=p.as_(who)
        ),
    ),
    ("POST", "/v1/participants/assignments"): (
        {"operator"},
        lambda p, who, c: p.client.post(
            "/v1/participants/assignments",
            json={"asset": f"a-{who}", "maintainer": "fixit"},
            headers=p.as_(who),
        ),
    ),
    # Products to suppliers: the operator assigns; those who read every forecast list every
    # assignment, a supplier its own.
    ("POST", "/v1/participants/product-assignments"): (
        {"operator"},
        lambda p, who, c: p.client.post(
            "/v1/participants/product-assignments",
            json={"product": f"P-{who}", "supplier": "acme"},
            headers=p.as_(who),
        ),
    ),
    ("GET", "/v1/participants/product-assignments"): (
        {"operator", "line-3", "tuv", "acme", "nordic"},
        lambda p, who, c: p.client.get("/v1/participants/product-assignments", headers=p.as_(who)),
    ),
    ("GET", "/v1/feed"): (
        {"fixit", "other-maint", "acme", "nordic"},
        lambda p, who, c: p.client.get("/v1/feed", headers=p.as_(who)),
    ),
    ("POST", "/v1/subscriptions"): (
        {"fixit", "other-maint", "acme", "nordic", "operator"},
        lambda p, who, c: p.client.post(
            "/v1/subscriptions", json={"url": "http://127.0.0.1:9/y"}, headers=p.as_(who)
        ),
    ),
    ("GET", "/v1/subscriptions"): (
        {"fixit", "other-maint", "acme", "nordic", "operator"},
        lambda p, who, c: p.client.get("/v1/subscriptions", headers=p.as_(who)),
    ),
    ("DELETE", "/v1/subscriptions/{id}"): (
        {"fixit"},
        lambda p, who, c: p.client.delete(
            f"/v1/subscriptions/{c['sub']['id']}", headers=p.as_(who)
        ),
    ),
    ("GET", "/v1/subscriptions/{id}/deliveries"): (
        {"fixit"},
        lambda p, who, c: p.client.get(
            f"/v1/subscriptions/{c['sub']['id']}/deliveries", headers=p.as_(who)
        ),
    ),
}
MATRIX |= {
    ("POST", "/v1/models"): (
        {"modelworks", "operator"},
        lambda p, who, c: p.client.post("/v1/models", json=_manifest(p, who), headers=p.as_(who)),
    ),
    ("GET", "/v1/models"): (ALL, lambda p, who, c: p.client.get("/v1/models", headers=p.as_(who))),
    ("GET", "/v1/models/{digest}"): (
        ALL,
        lambda p, who, c: p.client.get(f"/v1/models/{c['model']['digest']}", headers=p.as_(who)),
    ),
    # Auditors and the operator audit models; a publisher reads its own models' scorecards.
    ("GET", "/v1/models/{digest}/scorecard"): (
        {"operator", "tuv", "modelworks"},
        lambda p, who, c: p.client.get(
            f"/v1/models/{c['model']['digest']}/scorecard", headers=p.as_(who)
        ),
    ),
    ("GET", "/v1/models/{digest}/scorecard/bundle"): (
        {"operator", "tuv", "modelworks"},
        lambda p, who, c: p.client.get(
            f"/v1/models/{c['model']['digest']}/scorecard/bundle", headers=p.as_(who)
        ),
    ),
    # The training chain of a federated model: audited like its scorecard (a model that was not
    # trained by a federation answers 404 to those who may ask).
    ("GET", "/v1/models/{digest}/training"): (
        {"operator", "tuv", "modelworks"},
        lambda p, who, c: p.client.get(
            f"/v1/models/{c['model']['digest']}/training", headers=p.as_(who)
        ),
    ),
}
EPCIS_READERS = {"operator", "line-3", "tuv"}
_EVENT = {
    "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
    "type": "ObjectEvent",
    "eventTime": "2026-01-05T06:00:00.000Z",
    "eventTimeZoneOffset": "+01:00",
    "action": "OBSERVE",
    "epcList": ["urn:epc:id:sgtin:4012345.011111.1"],
    "bizStep": "inspecting",
}
MATRIX |= {
    ("POST", "/v1/epcis/capture"): (
        {"operator"},
        lambda p, who, c: p.client.post("/v1/epcis/capture", json=_EVENT, headers=p.as_(who)),
    ),
    ("POST", "/v1/epcis/capture/signed"): (
        {"acme", "nordic", "line-3", "operator"},
        lambda p, who, c: p.client.post(
            "/v1/epcis/capture/signed", json=_signed_event(p, who), headers=p.as_(who)
        ),
    ),
    ("GET", "/v1/epcis/events"): (
        EPCIS_READERS,
        lambda p, who, c: p.client.get("/v1/epcis/events", headers=p.as_(who)),
    ),
    ("GET", "/v1/epcis/events/{event_id}"): (
        EPCIS_READERS,
        lambda p, who, c: p.client.get("/v1/epcis/events/ni%3A%2F%2Fx", headers=p.as_(who)),
    ),
    ("GET", "/v1/genealogy"): (
        EPCIS_READERS,
        lambda p, who, c: p.client.get("/v1/genealogy", params={"id": "urn:x"}, headers=p.as_(who)),
    ),
    ("GET", "/v1/recall"): (
        EPCIS_READERS,
        lambda p, who, c: p.client.get(
            "/v1/recall", params={"supplier_lot": "urn:x"}, headers=p.as_(who)
        ),
    ),
    ("GET", "/v1/genealogy/audit"): (
        EPCIS_READERS,
        lambda p, who, c: p.client.get(
            "/v1/genealogy/audit", params={"id": "urn:x"}, headers=p.as_(who)
        ),
    ),
}
MATRIX |= {
    ("POST", "/v1/predictions/rul"): (
        {"line-3", "operator"},
        lambda p, who, c: p.client.post(
            "/v1/predictions/rul",
            json={"asset": "engine-7", "cycles": [[0.0] * 24]},
            headers=p.as_(who),
        ),
    ),
    ("POST", "/v1/predictions/inspection"): (
        {"line-3", "operator"},
        lambda p, who, c: p.client.post(
            "/v1/predictions/inspection",
            files={"image": ("x.jpg", b"not an image")},
            headers=p.as_(who),
        ),
    ),
    # Demand forecasts are run by those who run the plant's models, never by a supplier.
    ("POST", "/v1/predictions/demand"): (
        {"line-3", "operator"},
        lambda p, who, c: p.client.post(
            "/v1/predictions/demand",
            json={"product": "P1", "history": [1.0] * 10, "last_week": "2026-W39"},
            headers=p.as_(who),
        ),
    ),
    ("POST", "/v1/predictions/demand/batch"): (
        {"line-3", "operator"},
        lambda p, who, c: p.client.post(
            "/v1/predictions/demand/batch",
            json={"histories": {"P1": [1.0] * 10}, "last_week": "2026-W39"},
            headers=p.as_(who),
        ),
    ),
}
MATRIX |= {
    ("GET", "/metrics"): (
        {"operator"},
        lambda p, who, c: p.client.get("/metrics", headers=p.as_(who)),
    ),
}
PUBLIC = {("GET", "/healthz"), ("GET", "/readyz")}


def test_matrix_covers_every_route(plant: Plant) -> None:
    spec = plant.client.get("/openapi.json").json()
    routes = {(m.upper(), path) for path, ops in spec["paths"].items() for m in ops}
    assert routes - PUBLIC == set(MATRIX), "decide who may call the new endpoint, add it to MATRIX"


@pytest.mark.parametrize("endpoint", sorted(MATRIX), ids=lambda e: f"{e[0]} {e[1]}")
def test_role_matrix(plant: Plant, endpoint: tuple[str, str]) -> None:
    ctx = _ctx(plant)
    allowed, call = MATRIX[endpoint]
    secret = "SECRET-LOT"
    for who in sorted(ALL):
        r = call(plant, who, ctx)
        if who in allowed:
            assert r.status_code not in (401, 403), (who, r.status_code, r.text)
        else:
            assert r.status_code in (401, 403), (who, r.status_code, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert secret not in r.text and ctx["supplier"]["id"] not in r.text
    # Without a key, or with a made-up one, nothing but the public endpoints answers.
    anon = call(plant, "acme", ctx).request
    for headers in ({}, {"Authorization": "Bearer fp_made_up"}):
        r = plant.client.request(
            anon.method,
            str(anon.url),
            content=anon.content,
            headers={**headers, "content-type": "application/json"},
        )
        assert r.status_code == 401, r.text


def test_forbidden_and_missing_records_look_the_same(plant: Plant) -> None:
    ctx = _ctx(plant)
    as_nordic = plant.as_("nordic")
    exists = plant.client.get(f"/v1/records/{ctx['supplier']['id']}", headers=as_nordic)
    missing = plant.client.get("/v1/records/0x" + "ab" * 32, headers=as_nordic)
    beyond = plant.client.get("/v1/records/999", headers=as_nordic)
    assert exists.status_code == missing.status_code == beyond.status_code == 403
    assert json.loads(exists.text) == json.loads(missing.text) == json.loads(beyond.text)
    # Lists never show others' records either.
    listed = plant.client.get("/v1/records", headers=plant.as_("fixit")).json()["data"]
    assert [r["id"] for r in listed] == [ctx["prediction"]["id"]]


_ASSETS = {"fixit": "engine-1", "other-maint": "engine-2"}
_PRODUCTS = {"acme": "P-acme", "nordic": "P-nordic"}


@pytest.mark.parametrize("who", sorted(ALL))
def test_may_read_visible_and_get_agree_on_predictions_and_inspections(
    plant: Plant, who: str
) -> None:
    """`may_read` (webhooks, receipts), `visible` (listings) and GET /v1/records/{id} give one
    answer for every record: a maintainer reads the predictions and the inspections about the
    assets assigned to it, and nothing else; a supplier its own records and the forecasts of
    the products assigned to it (not their outcomes, nor the assignments)."""

    from sqlalchemy import select

    from api.auth import Caller
    from ledger.store.models import RecordRow

    op = plant.as_("operator")
    for maintainer, engine in _ASSETS.items():
        r = plant.client.post(
            "/v1/participants/assignments",
            json={"asset": engine, "maintainer": maintainer},
            headers=op,
        )
        assert r.status_code == 201
    made: dict[int, tuple[str, str | None]] = {}  # leaf -> (kind, asset)
    for kind in ("prediction", "inspection", "supplier_record"):
        producer = "acme" if kind == "supplier_record" else "line-3"
        for asset in ("engine-1", "engine-2", "engine-3", None):
            payload: dict[str, Any] = {"case": f"{kind}/{asset}"}
            if asset is not None:
                payload["asset"] = asset
            if kind != "supplier_record":
                payload["model_manifest_digest"] = plant.model()
            r = plant.submit(producer, kind=kind, **payload)
            assert r.status_code == 201, r.text
            made[r.json()["index"]] = (kind, asset)
    # Demand forecasts, the outcomes settling them and the assignments themselves, about
    # acme's product, nordic's, and one nobody supplies; acme's own records.
    for supplier, product in _PRODUCTS.items():
        assert plant.assign_product(product, supplier).status_code == 201
    for product in (*_PRODUCTS.values(), "P-none"):
        r = plant.forecast(product)
        assert r.status_code == 201, r.text
        made[r.json()["index"]] = ("forecast", product)
        r = plant.submit("line-3", kind="outcome", settles=[r.json()["id"]], product=product,
                         observed={"week": "2026-W40", "units": 3})  # fmt: skip
        assert r.status_code == 201, r.text
        made[r.json()["index"]] = ("outcome", product)
    r = plant.submit("acme", kind="supplier_record", product="P-acme", lot="L1")
    made[r.json()["index"]] = ("acme's own", None)
    with plant.service.dep.store.reading() as conn:
        for (index,) in conn.execute(
            select(RecordRow.leaf_index).where(RecordRow.kind == "product_assignment")
        ).all():
            made[index] = ("product_assignment", None)
    python = readable_by_policy(plant, Caller(who, ROLES[who]))
    got = {
        i
        for i in made
        if plant.client.get(f"/v1/records/{i}", headers=plant.as_(who)).status_code == 200
    }
    assert got == python & set(made)
    if ROLES[who] == "maintainer":
        assert got == {
            i for i, (kind, asset) in made.items()
            if kind in ("prediction", "inspection") and asset == _ASSETS[who]
        }  # fmt: skip
    elif ROLES[who] == "supplier":
        assert got == {
            i for i, (kind, about) in made.items()
            if (kind == "forecast" and about == _PRODUCTS[who])
            or (kind, who) in (("supplier_record", "acme"), ("acme's own", "acme"))
        }  # fmt: skip
    elif who in READ_ALL:
        assert got == set(made)
    else:
        assert got == set()
