"""The POST fast path (api/fastpost.py) answers exactly as the routes do: the same status, the
same headers and the same bytes, for every valid and invalid submission and verification;
it never appends what the route would refuse; its group commit keeps the log whole."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.auth import create_api_key, revoke_api_keys
from api.main import create_app
from api.metrics import REGISTRY
from ledger.errors import StorageError
from ledger.records import Record
from ledger.sequencer import Sequencer
from ledger.signing import Signer
from tests.api.conftest import Plant

RECORDS, VERIFY = "/v1/records", "/v1/verify"


def fast_post(path: str, outcome: str) -> float:
    sample = REGISTRY.get_sample_value(
        "forgeproof_fast_post_total", {"route": path, "outcome": outcome}
    )
    return sample or 0.0


def requests_counted(path: str, status: str) -> float:
    labels = {"method": "POST", "route": path, "status": status}
    return REGISTRY.get_sample_value("forgeproof_http_requests_total", labels) or 0.0


@pytest.fixture
def apps(plant: Plant) -> Iterator[tuple[TestClient, TestClient]]:
    """(with the fast path, without it) over the same service."""
    with (
        TestClient(create_app(plant.service, fast_post=True)) as fast,
        TestClient(create_app(plant.service, fast_post=False)) as routed,
    ):
        yield fast, routed


def raw(r: httpx.Response) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    return r.status_code, list(r.headers.raw), r.content


def same_answer(
    apps: tuple[TestClient, TestClient], path: str, content: bytes | Any, headers: dict[str, str]
) -> httpx.Response:
    """POST the same request to both apps; the answers must be byte for byte the same."""
    fast, routed = apps
    a = fast.post(path, content=content, headers=headers)
    b = routed.post(path, content=content, headers=headers)
    assert raw(a) == raw(b), (a.text, b.text)
    return a


def as_json(plant: Plant, who: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    return headers | (plant.as_(who) if who else {})


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def anchor(plant: Plant) -> None:
    chain = plant.service.chain
    assert chain is not None
    Sequencer(plant.service.dep.log, chain).step(force=True)


# ---------------------------------------------------------------------------- submissions


def test_an_accepted_record_is_answered_as_the_route_answers(
    plant: Plant, apps: tuple[TestClient, TestClient]
) -> None:
    fast, routed = apps
    served = fast_post(RECORDS, "served")
    counted = requests_counted(RECORDS, "201")
    first = plant.signed("acme", lot="A")
    second = plant.signed("acme", lot="B")
    a = fast.post(RECORDS, content=dumps(first), headers=as_json(plant, "acme"))
    b = routed.post(RECORDS, content=dumps(second), headers=as_json(plant, "acme"))
    assert (a.status_code, b.status_code) == (201, 201)
    assert fast_post(RECORDS, "served") == served + 1
    # Guard counted the fast answer under the route's label, and sent its headers.
    assert requests_counted(RECORDS, "201") == counted + 2
    assert a.headers.raw == b.headers.raw  # indexes 0 and 1: the same length
    assert a.json() == {"status": "accepted", "id": a.json()["id"], "index": 0}
    assert a.content == dumps({"status": "accepted", "id": a.json()["id"], "index": 0})
    assert b.json()["index"] == 1
    # What was appended is what the route appends: the same record, readable the same way.
    got = fast.get(f"/v1/records/{a.json()['id']}", headers=plant.as_("acme")).json()
    assert got["record"] == first["record"] and got["signature"] == first["signature"]
    # A resubmission, either way, is the same duplicate answer.
    for body in (first, second):
        again = same_answer(apps, RECORDS, dumps(body), as_json(plant, "acme"))
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert plant.service.dep.log.committed_size() == 2


def _refusals(plant: Plant) -> list[tuple[str, bytes | Any, dict[str, str]]]:
    """(what, body, headers): submissions the route refuses, one of each kind."""
    acme, domain = plant.signers["acme"], plant.service.dep.domain
    good = plant.signed("acme", lot="R")

    def tampered() -> dict[str, Any]:
        body = plant.signed("acme", lot="T")
        body["record"]["payload"]["lot"] = "changed"
        return body

    def signed_by(signer: Signer, who: str, kind: str = "supplier_record", **payload: Any) -> Any:
        rec = Record.new(kind, payload or {"lot": "X"}, participant=who, address=signer.address)
        return {"record": rec.to_json(), "signature": "0x" + signer.sign(domain, rec).hex()}

    future = Record.new("supplier_record", {"lot": "F"}, participant="acme", address=acme.address)
    future = future.model_copy(update={"created_at": "2099-01-01T00:00:00Z"})
    headers = as_json(plant, "acme")
    return [
        ("bad signature", dumps(tampered()), headers),
        ("short signature", dumps({**good, "signature": good["signature"][:-2]}), headers),
        ("signature not hex", dumps({**good, "signature": "0x" + "zz" * 65}), headers),
        ("unknown signing key", dumps(signed_by(Signer.generate(), "acme")), headers),
        ("another producer's record", dumps(plant.signed("nordic")), headers),
        ("unknown participant", dumps(signed_by(Signer.generate(), "nobody")), headers),
        ("routed kind", dumps(plant.manifest("acme")), headers),
        ("model kind without a model", dumps(signed_by(acme, "acme", "prediction", rul=1)),
         headers),
        ("future", dumps(signed_by(acme, "acme") | {"record": future.to_json()}), headers),
        ("malformed JSON", b'{"record": ', headers),
        ("empty body", b"", headers),
        ("not an object", b"[1, 2]", headers),
        ("missing signature", dumps({"record": good["record"]}), headers),
        ("record not an object", dumps({**good, "record": "x"}), headers),
        ("signature a number", dumps({**good, "signature": 7}), headers),
        ("record invalid", dumps({**good, "record": {"kind": "x"}}), headers),
        ("no auth", dumps(good), as_json(plant, None)),
        ("unknown API key", dumps(good), {**headers, "Authorization": "Bearer fp_nope"}),
        ("not bearer", dumps(good), {**headers, "Authorization": "Basic abc"}),
        ("auditor may not write", dumps(good), as_json(plant, "tuv")),
        ("maintainer may not write", dumps(good), as_json(plant, "fixit")),
        ("text/plain", dumps(good), {**plant.as_("acme"), "Content-Type": "text/plain"}),
        ("no content type", dumps(good), plant.as_("acme")),
    ]  # fmt: skip


def test_every_refusal_is_the_routes_and_appends_nothing(
    plant: Plant, apps: tuple[TestClient, TestClient]
) -> None:
    size = plant.service.dep.log.committed_size()
    served = fast_post(RECORDS, "served")
    for what, body, headers in _refusals(plant):
        r = same_answer(apps, RECORDS, body, headers)
        assert r.status_code in (401, 403, 422), (what, r.status_code, r.text)
        assert r.headers["x-content-type-options"] == "nosniff", what
        if r.status_code != 422 or r.json().get("code") != "invalid_request":
            assert r.headers["content-type"] == "application/problem+json", what
    assert plant.service.dep.log.committed_size() == size
    assert fast_post(RECORDS, "served") == served


def test_extra_fields_are_dropped_as_the_model_drops_them(
    plant: Plant, apps: tuple[TestClient, TestClient]
) -> None:
    fast, routed = apps
    body = plant.signed("acme", lot="E")
    a = fast.post(RECORDS, content=dumps({**body, "note": 1}), headers=as_json(plant, "acme"))
    assert a.status_code == 201
    b = routed.post(RECORDS, content=dumps({**body, "x": [1]}), headers=as_json(plant, "acme"))
    assert b.status_code == 200 and b.json() == {**a.json(), "status": "duplicate"}


def test_odd_payloads_get_the_routes_verdict(
    plant: Plant, apps: tuple[TestClient, TestClient]
) -> None:
    """Payloads at the edges of JSON: accepted by both paths alike, or refused alike."""
    payloads: list[Any] = [
        {"n": 2**53 - 1}, {"f": 1.5, "neg": -0.0}, {"s": "é\u2028\U0001f600"},
        {"nested": {"a": [1, {"b": None}], "t": True}}, {"": ""}, {"e": 1e300},
    ]  # fmt: skip
    fast, routed = apps
    for i, payload in enumerate(payloads):
        body = plant.signed_payload("acme", "supplier_record", {**payload, "i": i})
        a = fast.post(RECORDS, content=dumps(body), headers=as_json(plant, "acme"))
        b = routed.post(RECORDS, content=dumps(body), headers=as_json(plant, "acme"))
        if a.status_code == 201:
            assert b.status_code == 200 and b.json() == {**a.json(), "status": "duplicate"}
        else:
            assert raw(a) == raw(b), payload
    # What RFC 8785 cannot write: refused (the signature cannot even be made over it).
    odd = (b'{"n": NaN}', b'{"n": 1e400}', b'{"s": "\\ud800"}', b'{"n": 9007199254740993}')
    for text in odd:
        rec = plant.signed("acme", lot="L")
        odd_body = dumps(rec).replace(b'{"lot":"L"}', text)
        assert odd_body != dumps(rec)
        r = same_answer(apps, RECORDS, odd_body, as_json(plant, "acme"))
        assert r.status_code == 422, r.text


def test_revoked_api_key_and_revoked_role(
    plant: Plant, apps: tuple[TestClient, TestClient]
) -> None:
    extra = create_api_key(plant.service.dep.store, "nordic", "supplier")
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {extra}"}
    body = plant.signed("nordic", lot="K")
    revoke_api_keys(plant.service.dep.store, "nordic")
    plant.service.api_keys.forget()
    r = same_answer(apps, RECORDS, dumps(body), headers)
    assert r.status_code == 401
    assert plant.service.dep.log.committed_size() == 0


def test_oversized_bodies_are_refused_alike(plant: Plant) -> None:
    plant.service.settings.max_body_bytes = 600
    with (
        TestClient(create_app(plant.service, fast_post=True)) as fast,
        TestClient(create_app(plant.service, fast_post=False)) as routed,
    ):
        big = dumps(plant.signed("acme", lot="x" * 700))
        headers = as_json(plant, "acme")
        same_answer((fast, routed), RECORDS, big, headers)

        def chunks() -> Iterator[bytes]:
            for i in range(0, len(big), 100):
                yield big[i : i + 100]

        # Chunked, no Content-Length: cut off while reading, on either path.
        a = fast.post(RECORDS, content=chunks(), headers=headers)
        b = routed.post(RECORDS, content=chunks(), headers=headers)
        assert raw(a) == raw(b) and a.status_code == 413, a.text
        v = dumps({"receipt": {"pad": "x" * 700}})
        assert same_answer((fast, routed), VERIFY, v, as_json(plant, "tuv")).status_code == 413
    assert plant.service.dep.log.committed_size() == 0


def test_a_failed_append_is_answered_as_the_route_answers_it(
    plant: Plant, apps: tuple[TestClient, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*_: Any) -> Any:
        raise StorageError("database is down")

    monkeypatch.setattr(plant.service, "_append_now", down)
    fast, routed = apps
    headers = as_json(plant, "acme")
    a = fast.post(RECORDS, content=dumps(plant.signed("acme", lot="D")), headers=headers)
    b = routed.post(RECORDS, content=dumps(plant.signed("acme", lot="D")), headers=headers)
    assert raw(a) == raw(b) and a.status_code == 503, a.text
    assert a.json()["code"] == "storage_unavailable"


def test_group_commit_from_the_loop_keeps_the_log_whole(plant: Plant) -> None:
    """Many submissions at once, through both paths: each gets its own leaf, batches form, and
    the log and its tree agree with what was answered."""
    service = plant.service
    batches: list[int] = []
    append = service.append

    def counting(items: Any, payloads: Any) -> Any:
        batches.append(len(items))
        return append(items, payloads)

    service.append = counting  # type: ignore[method-assign]
    fast_app = create_app(service, fast_post=True)
    routed_app = create_app(service, fast_post=False)
    bodies = [plant.signed("acme", lot=f"G{i}") for i in range(60)]
    bodies += bodies[:5]  # resubmitted at the same time: duplicates, never two leaves

    async def go() -> list[httpx.Response]:
        transports = [httpx.ASGITransport(app=a) for a in (fast_app, routed_app)]
        clients = [httpx.AsyncClient(transport=t, base_url="http://t") for t in transports]
        try:
            return list(
                await asyncio.gather(
                    *(
                        clients[i % 3 == 0].post(
                            RECORDS, content=dumps(b), headers=as_json(plant, "acme")
                        )
                        for i, b in enumerate(bodies)
                    )
                )
            )
        finally:
            for c in clients:
                await c.aclose()

    answers = asyncio.run(go())
    assert all(r.status_code in (200, 201) for r in answers), [r.text for r in answers]
    by_id: dict[str, set[int]] = {}
    for r in answers:
        by_id.setdefault(r.json()["id"], set()).add(r.json()["index"])
    assert len(by_id) == 60 and all(len(v) == 1 for v in by_id.values())
    assert sorted(i for v in by_id.values() for i in v) == list(range(60))
    assert sum(r.status_code == 201 for r in answers) == 60
    log = service.dep.log
    assert log.committed_size() == 60
    assert max(batches) > 1  # grouped
    for rid, (index,) in by_id.items():
        stored = log.get(index)
        assert "0x" + stored.leaf_hash.hex() == rid
        log.inclusion_proof(index, 60)  # every node there
    log.checkpoint()
    with TestClient(fast_app) as c:
        receipt = c.get(f"/v1/records/{answers[7].json()['id']}/receipt", headers=plant.as_("tuv"))
        verdict = c.post(VERIFY, json={"receipt": receipt.json()["receipt"]},
                         headers=plant.as_("tuv")).json()  # fmt: skip
    assert verdict["ok"], verdict


# --------------------------------------------------------------------------- verification


def test_verdicts_are_the_routes_valid_or_tampered(
    plant: Plant, apps: tuple[TestClient, TestClient]
) -> None:
    ids = [plant.submit("acme", lot=f"V{i}").json()["id"] for i in range(3)]
    anchor(plant)
    fast, _ = apps
    receipt = fast.get(f"/v1/records/{ids[1]}/receipt", headers=plant.as_("tuv")).json()
    assert receipt["status"] == "anchored"
    headers = as_json(plant, "tuv")
    whole = dumps(receipt)
    # The first asks the chain (the route, on its thread pool); then the answers are
    # remembered and the fast path serves.
    first = same_answer(apps, VERIFY, whole, headers)
    assert first.json()["ok"] and all(c["status"] == "ok" for c in first.json()["checks"])
    served = fast_post(VERIFY, "served")
    again = same_answer(apps, VERIFY, whole, headers)
    assert fast_post(VERIFY, "served") == served + 1 and raw(again) == raw(first)
    inner = same_answer(apps, VERIFY, dumps({"receipt": receipt["receipt"]}), headers)
    assert inner.content == first.content

    def tampered(change: Any) -> bytes:
        r = json.loads(whole)
        change(r["receipt"])
        return dumps(r)

    def set_(path: list[Any], value: Any) -> Any:
        def change(r: dict[str, Any]) -> None:
            for p in path[:-1]:
                r = r[p]
            r[path[-1]] = value

        return change

    flipped = "0x" + ("0" if receipt["receipt"]["signature"][2] != "0" else "1")
    cases = {
        "payload": set_(["record", "payload", "lot"], "changed"),
        "signature": set_(["signature"], flipped + receipt["receipt"]["signature"][3:]),
        "leaf hash": set_(["leaf_hash"], "0x" + "11" * 32),
        "proof": set_(["inclusion_proof", 0], "0x" + "22" * 32),
        "root": set_(["checkpoint", "root"], "0x" + "33" * 32),
        "size": set_(["checkpoint", "size"], 99),
        "domain": set_(["domain", "chainId"], 7),
        "anchor tx": set_(["anchor", "tx_hash"], "0x" + "44" * 32),
        "format": set_(["format"], "other"),
        "extra field": set_(["extra"], 1),
    }
    for what, change in cases.items():
        body = tampered(change)
        for _ in range(2):  # the second time any chain answer is remembered
            r = same_answer(apps, VERIFY, body, headers)
            assert r.status_code in (200, 422), (what, r.text)
            if r.status_code == 200:
                assert not r.json()["ok"], what


def test_verify_refusals_are_the_routes(plant: Plant, apps: tuple[TestClient, TestClient]) -> None:
    rid = plant.submit("acme", lot="W").json()["id"]
    anchor(plant)
    fast, _ = apps
    receipt = fast.get(f"/v1/records/{rid}/receipt", headers=plant.as_("tuv")).json()
    good = dumps(receipt)
    same_answer(apps, VERIFY, good, as_json(plant, "tuv"))  # the chain's answers remembered
    served = fast_post(VERIFY, "served")
    headers = as_json(plant, "tuv")
    duplicate = good[:-1] + b',"status":"x"}'
    for what, body, h in [
        ("malformed JSON", b'{"receipt": ', headers),
        ("duplicate key", duplicate, headers),
        ("not an object", b"[]", headers),
        ("no receipt", b'{"x": 1}', headers),
        ("receipt not an object", b'{"receipt": 5}', headers),
        ("pending", b'{"status": "pending", "receipt": null}', headers),
        ("empty", b"", headers),
        ("not UTF-8", b'{"receipt": "\xff"}', headers),
        ("no auth", good, {"Content-Type": "application/json"}),
        ("unknown key", good, {**headers, "Authorization": "Bearer fp_unknown"}),
    ]:
        r = same_answer(apps, VERIFY, body, h)
        assert r.status_code in (401, 422), (what, r.text)
    assert fast_post(VERIFY, "served") == served
    # Any participant may verify, whatever its role: the fast path serves them all.
    for who in ("acme", "fixit", "modelworks", "operator"):
        r = same_answer(apps, VERIFY, good, as_json(plant, who))
        assert r.status_code == 200 and r.json()["ok"]
    assert fast_post(VERIFY, "served") == served + 4
