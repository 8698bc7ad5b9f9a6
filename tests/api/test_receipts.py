"""Receipts from memory: ETags, 304s, and never a stale, erased or forbidden receipt."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from api.auth import revoke_api_keys
from api.metrics import REGISTRY
from api.receipts import CachedAnchors, Encoded, ReceiptCache, ReceiptFacts, encode
from ledger.errors import NotFound, VerificationError
from ledger.receipts import parse_receipt
from tests.api.conftest import Plant

RECEIPT = "/v1/records/{}/receipt"


def served(outcome: str) -> float:
    return REGISTRY.get_sample_value("forgeproof_receipt_cache_total", {"outcome": outcome}) or 0


def anchor(plant: Plant, size: int, n: int = 1) -> None:
    plant.service.dep.log.mark_anchored(
        size,
        chain_id=plant.service.dep.domain.chain_id,
        contract="0x" + "ab" * 20,
        tx_hash="0x" + f"{n:02x}" * 32,
        block_number=100 + n,
    )


def test_etag_and_304_on_both_paths(plant: Plant) -> None:
    rid = plant.submit("acme").json()["id"]
    pending = plant.client.get(RECEIPT.format(rid), headers=plant.as_("acme"))
    assert pending.status_code == 202 and "etag" not in pending.headers
    plant.service.dep.log.checkpoint()

    before = served("served"), served("miss")
    first = plant.client.get(RECEIPT.format(rid), headers=plant.as_("acme"))  # built, cached
    second = plant.client.get(RECEIPT.format(rid), headers=plant.as_("acme"))  # from memory
    assert served("miss") == before[1] + 1
    assert served("served") == before[0] + 1
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() and first.json()["status"] == "checkpointed"
    etag = first.headers["etag"]
    assert etag == second.headers["etag"] and etag.startswith('"')
    assert first.headers["cache-control"] == "no-cache"

    for inm in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        got = plant.client.get(
            RECEIPT.format(rid), headers=plant.as_("acme") | {"If-None-Match": inm}
        )
        assert got.status_code == 304, inm
        assert got.content == b"" and got.headers["etag"] == etag
    other = plant.client.get(
        RECEIPT.format(rid), headers=plant.as_("acme") | {"If-None-Match": '"nope"'}
    )
    assert other.status_code == 200 and other.json() == first.json()

    # By leaf index, the same receipt and the same ETag.
    index = first.json()["receipt"]["leaf_index"]
    by_index = plant.client.get(RECEIPT.format(index), headers=plant.as_("acme"))
    assert by_index.headers["etag"] == etag


def test_newer_checkpoint_and_anchor_are_never_served_stale(plant: Plant) -> None:
    rid = plant.submit("acme").json()["id"]
    cp1 = plant.service.dep.log.checkpoint()
    get = lambda **h: plant.client.get(RECEIPT.format(rid), headers=plant.as_("acme") | h)  # noqa: E731
    old = get()
    get()  # cached now, answered from memory
    assert old.json()["receipt"]["checkpoint"]["size"] == cp1.size

    anchor(plant, cp1.size)
    anchored = get(**{"If-None-Match": old.headers["etag"]})
    assert anchored.status_code == 200, "the old ETag must not match the anchored receipt"
    assert anchored.json()["status"] == "anchored"
    assert anchored.json()["receipt"]["anchor"]["tx_hash"] == "0x" + "01" * 32
    assert anchored.headers["etag"] != old.headers["etag"]

    plant.submit("acme", lot="L2")
    cp2 = plant.service.dep.log.checkpoint()
    # An unanchored newer checkpoint does not replace an anchored one (as `build_receipt`).
    assert get().json()["receipt"]["checkpoint"]["size"] == cp1.size
    anchor(plant, cp2.size, 2)
    latest = get()
    assert latest.json()["receipt"]["checkpoint"]["size"] == cp2.size
    assert latest.json()["receipt"]["anchor"]["tx_hash"] == "0x" + "02" * 32
    assert get().json() == latest.json()  # and from memory, the same
    assert parse_receipt(latest.json()["receipt"]).size == cp2.size


def test_erased_record_is_not_served_from_memory(plant: Plant) -> None:
    rid = plant.submit("acme").json()["id"]
    plant.service.dep.log.checkpoint()
    for _ in range(2):
        assert plant.client.get(RECEIPT.format(rid), headers=plant.as_("acme")).status_code == 200
    index = plant.client.get(f"/v1/records/{rid}", headers=plant.as_("acme")).json()["index"]
    plant.service.dep.log.erase(index)
    gone = plant.client.get(RECEIPT.format(rid), headers=plant.as_("acme"))
    assert gone.status_code == 404 and "erased" in gone.json()["detail"]


def test_cached_receipt_keeps_access_control(plant: Plant) -> None:
    op = plant.as_("operator")
    plant.client.post(
        "/v1/participants/assignments",
        json={"asset": "engine-7", "maintainer": "fixit"},
        headers=op,
    )
    supplier = plant.submit("acme").json()["id"]
    prediction = plant.predict("engine-7", rul=4.0).json()["id"]
    plant.service.dep.log.checkpoint()
    etags = {}
    for rid in (supplier, prediction):  # cached by the operator, then read from memory
        etags[rid] = plant.client.get(RECEIPT.format(rid), headers=op).headers["etag"]
        assert plant.client.get(RECEIPT.format(rid), headers=op).status_code == 200

    def status(rid: str, who: str | None, **extra: str) -> int:
        headers = (plant.as_(who) if who else {}) | extra
        return plant.client.get(RECEIPT.format(rid), headers=headers).status_code

    inm = {"If-None-Match": etags[supplier]}
    assert status(supplier, "acme") == 200
    assert status(supplier, "nordic") == 403
    assert status(supplier, "nordic", **inm) == 403  # a 304 would tell the record exists
    assert status(supplier, "fixit") == 403
    assert status(supplier, None) == 401
    assert status(supplier, None, Authorization="Bearer fp_not-a-key") == 401
    assert status(supplier, None, Authorization=f"Basic {plant.keys['acme']}") == 401
    assert status(prediction, "fixit") == 200
    assert status(prediction, "other-maint") == 403
    assert status(prediction, "other-maint", **{"If-None-Match": etags[prediction]}) == 403
    assert status("0x" + "00" * 32, "tuv") == 404
    assert status("0x" + "00" * 32, "nordic") == 403
    assert status("not-an-id", "tuv") == 422


def test_revoked_key_loses_the_fast_path(plant: Plant) -> None:
    rid = plant.submit("acme").json()["id"]
    plant.service.dep.log.checkpoint()
    for _ in range(2):
        assert plant.client.get(RECEIPT.format(rid), headers=plant.as_("acme")).status_code == 200
    revoke_api_keys(plant.service.dep.store, "acme")
    plant.service.registry_changed()
    assert plant.client.get(RECEIPT.format(rid), headers=plant.as_("acme")).status_code == 401


def test_facts_pick_the_checkpoint_the_log_picks(plant: Plant) -> None:
    """The fast path's one query agrees with `Log.covering_checkpoint` in every state."""
    log = plant.service.dep.log
    facts = ReceiptFacts(plant.service.dep.store)
    ids = [plant.submit("acme", lot=f"L{i}").json()["id"] for i in range(3)]

    def check() -> None:
        for id in ids:
            stored, key = facts.of(id) or pytest.fail(f"no facts for {id}")
            assert facts.of(str(stored.index)) == (stored, key)
            assert stored == log.find(stored.leaf_hash)
            try:
                cp = log.covering_checkpoint(stored.index)
            except NotFound:
                assert key is None
                continue
            assert key == (stored.index, cp.size, cp.tx_hash)

    check()  # nothing checkpointed
    cp1 = log.checkpoint()
    check()
    anchor(plant, cp1.size)
    ids.append(plant.submit("acme", lot="L3").json()["id"])
    check()  # the newest record is pending
    cp2 = log.checkpoint()
    check()  # cp1 anchored, cp2 not: anchored wins for old records
    anchor(plant, cp2.size, 2)
    check()
    assert facts.of("0x" + "11" * 32) is None
    assert facts.of("999999") is None
    for bad in ("0x12", "-1", "1.0", "0x" + "zz" * 32, "１"):
        assert facts.of(bad) is None, bad


def test_cache_is_bounded_lru() -> None:
    cache = ReceiptCache(max_entries=2)
    a, b, c = (encode("checkpointed", {"n": n}) for n in range(3))
    cache.put((0, 1, None), a)
    cache.put((1, 2, None), b)
    assert cache.get((0, 1, None)) is a  # now the most recent
    cache.put((2, 3, None), c)
    assert len(cache) == 2
    assert cache.get((1, 2, None)) is None
    assert cache.get((0, 1, None)) is a and cache.get((2, 3, None)) is c
    with pytest.raises(ValueError, match="at least 1"):
        ReceiptCache(max_entries=0)


def test_encoded_headers_match_the_response() -> None:
    enc = encode("anchored", {"x": "ü"})
    assert enc.body == '{"status":"anchored","receipt":{"x":"ü"}}'.encode()
    assert dict(enc.raw_200)[b"etag"] == enc.etag.encode()
    assert dict(enc.raw_200)[b"content-length"] == str(len(enc.body)).encode()
    assert b"content-length" not in dict(enc.raw_304)
    assert not enc.matches(None) and not enc.matches('"other"')
    assert Encoded(b"{}", '"x"').matches(' "y" , W/"x"')


def test_anchor_confirmations_are_remembered_failures_are_not(plant: Plant) -> None:
    rid = plant.submit("acme").json()["id"]
    plant.service.dep.log.checkpoint()
    body = plant.client.get(RECEIPT.format(rid), headers=plant.as_("acme")).json()
    receipt = parse_receipt(body["receipt"])
    calls: list[Any] = []
    fail = [False]

    def source(r: Any) -> str:
        calls.append(r)
        if fail[0]:
            raise VerificationError("not on chain")
        return "ok"

    cached = CachedAnchors(source, ttl_s=60)
    assert not cached.knows(body["receipt"])
    assert cached(receipt) == cached(receipt) == "ok"
    assert len(calls) == 1
    assert cached.knows(body["receipt"]) and cached.knows({"not": "a receipt"})
    claimed = {"chain_id": 1, "contract": "0x" + "00" * 20, "tx_hash": "0x" + "00" * 32}
    other = parse_receipt(body["receipt"] | {"anchor": claimed | {"block_number": 1}})
    fail[0] = True
    for _ in range(2):
        with pytest.raises(VerificationError):
            cached(other)
    assert len(calls) == 3
    expiring = CachedAnchors(source, ttl_s=0)
    fail[0] = False
    expiring(receipt)
    expiring(receipt)
    assert len(calls) == 5


def test_concurrent_anchor_checks_ask_the_chain_once(plant: Plant) -> None:
    rid = plant.submit("acme").json()["id"]
    plant.service.dep.log.checkpoint()
    body = plant.client.get(RECEIPT.format(rid), headers=plant.as_("acme")).json()
    receipt = parse_receipt(body["receipt"])
    calls: list[Any] = []

    def slow(r: Any) -> str:
        calls.append(r)
        time.sleep(0.05)
        return "ok"

    cached = CachedAnchors(slow)
    start = threading.Barrier(8)

    def check() -> None:
        start.wait()
        assert cached(receipt) == "ok"

    threads = [threading.Thread(target=check) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(calls) == 1
