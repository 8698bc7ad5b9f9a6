"""Issue #15: hostile input and secrets. Each attack found against `up --demo`, replayed:
refused with a 4xx problem+json that names what is wrong, and nothing changed.
"""

from __future__ import annotations

import json
import os
import stat
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from api.delivery import DeliveryWorker
from api.tables import Delivery, Subscription
from ledger.records import MAX_PAYLOAD_DEPTH
from ledger.store.models import RecordRow
from tests.api.conftest import Hook, Plant


def problem(r: Any, status: int, *, names: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    if names is not None:
        assert names in body["detail"], body
    return body


def logged(plant: Plant) -> int:
    with plant.service.dep.store.reading() as conn:
        return int(conn.execute(select(func.count()).select_from(RecordRow)).scalar_one())


def nested(depth: int) -> dict[str, Any]:
    payload: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        payload = {"a": payload}
    return payload


def raw_submission(plant: Plant, who: str, payload: Any) -> dict[str, Any]:
    """A submission built as an attacker's own client would: no forgeproof validation on the
    way, a genuine signature over whatever it holds."""
    import secrets as _secrets

    import rfc8785

    from ledger.records import commitment, utc_now
    from ledger.signing import record_digest

    signer = plant.signers[who]
    record = {
        "kind": "supplier_record",
        "payload": payload,
        "producer": {"participant": who, "address": signer.address},
        "created_at": utc_now(),
        "salt": "0x" + _secrets.token_hex(32),
    }
    data = commitment(rfc8785.dumps(record))
    digest = record_digest(
        plant.service.dep.domain, record["kind"], who, record["created_at"], data
    )
    return {"record": record, "signature": "0x" + signer.sign_digest(digest).hex()}


# ------------------------------------------------------------------------------- poison record
def test_a_record_too_deep_to_serve_is_never_logged(plant: Plant) -> None:
    """A signed record nested 300 levels deep was logged (201), and from then on every read of
    it and every listing containing it answered 500, for good."""
    for depth in (MAX_PAYLOAD_DEPTH + 1, 300, 900):
        r = plant.client.post(
            "/v1/records",
            json=raw_submission(plant, "acme", nested(depth)),
            headers=plant.as_("acme"),
        )
        problem(r, 422, names=f"nested deeper than {MAX_PAYLOAD_DEPTH} levels")
    assert logged(plant) == 0
    r = plant.submit("acme", **nested(MAX_PAYLOAD_DEPTH))
    assert r.status_code == 201
    rid = r.json()["id"]
    for who in ("acme", "operator", "tuv"):
        assert plant.client.get(f"/v1/records/{rid}", headers=plant.as_(who)).status_code == 200
        assert plant.client.get("/v1/records", headers=plant.as_(who)).status_code == 200


def test_a_record_too_large_is_never_logged(plant: Plant) -> None:
    sub = raw_submission(plant, "acme", {"blob": "x" * (1024 * 1024)})
    r = plant.client.post("/v1/records", json=sub, headers=plant.as_("acme"))
    problem(r, 422, names="at most 1,048,576")
    assert logged(plant) == 0


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25,
)  # fmt: skip


@given(
    body=st.dictionaries(st.text(min_size=1, max_size=8), JSON, max_size=5),
    wrap=st.integers(0, MAX_PAYLOAD_DEPTH + 3),
)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_whatever_the_log_accepts_it_can_serve(plant: Plant, body: Any, wrap: int) -> None:
    payload: Any = body
    for _ in range(wrap):
        payload = {"w": payload}
    before = logged(plant)
    r = plant.client.post(
        "/v1/records", json=raw_submission(plant, "acme", payload), headers=plant.as_("acme")
    )
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert logged(plant) == before  # refused: nothing logged
        return
    rid, acme, tuv = r.json()["id"], plant.as_("acme"), plant.as_("tuv")
    assert plant.client.get(f"/v1/records/{rid}", headers=acme).status_code == 200
    assert plant.client.get("/v1/records?limit=500", headers=tuv).status_code == 200
    plant.service.dep.log.checkpoint()
    receipt = plant.client.get(f"/v1/records/{rid}/receipt", headers=acme)
    assert receipt.status_code == 200, receipt.text
    verdict = plant.client.post("/v1/verify", json=receipt.json(), headers=tuv).json()
    assert verdict.get("ok"), (verdict.get("detail"), verdict, payload)


# ------------------------------------------------------------------------------- body limit
async def _stream(
    app: Any, path: str, headers: dict[str, str], total: int, chunk: int
) -> tuple[int, int]:
    """POST `total` bytes in `chunk`s to the ASGI app, as a server hands over a chunked body:
    (the response status, the bytes the app took before answering)."""
    taken = 0
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal taken
        if taken >= total:
            return {"type": "http.disconnect"}
        taken += chunk
        return {"type": "http.request", "body": b"x" * chunk, "more_body": taken < total}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)
    return status, taken


def test_the_body_limit_holds_on_the_stream(plant: Plant) -> None:
    """The 4 MiB limit read Content-Length only: a chunked 20 MiB record was logged, a 50 MB
    body read whole. Now reading stops at the limit, whatever the encoding."""
    import asyncio

    limit = plant.service.settings.max_body_bytes
    chunk = 64 * 1024
    headers = {
        **plant.as_("acme"),
        "content-type": "application/json",
        "transfer-encoding": "chunked",
    }
    for path in ("/v1/records", "/v1/verify", "/v1/epcis/capture/signed"):
        status, taken = asyncio.run(
            _stream(plant.client.app, path, headers, 50 * 1024 * 1024, chunk)
        )
        assert status == 413, path
        assert taken <= limit + chunk, (path, taken)  # never more than the limit and one chunk
    assert logged(plant) == 0
    # A declared length over the limit is refused before anything is read.
    r = plant.client.post("/v1/records", content=b"x" * (limit + 1), headers=headers)
    problem(r, 413)


# ------------------------------------------------------------------------------- no 500s
BAD_CURSORS = [
    {"after": "abc"},
    {"after": None},
    {"after": [1]},
    {"after": 2**70},
    {"after": 1e308},
    {"after": -5},
    {"after": 1, "extra": 2},
]


def _cursor(data: Any) -> str:
    import base64

    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_no_500_from_ids_cursors_and_tokens(plant: Plant) -> None:
    plant.submit("acme")
    op = plant.as_("operator")
    cases = [
        *[("/v1/records", {"cursor": _cursor(c)}, "cursor") for c in BAD_CURSORS],
        ("/v1/checkpoints", {"cursor": _cursor({"before": "x"})}, "cursor"),
        ("/v1/checkpoints", {"cursor": _cursor({"before": 2**70})}, "cursor"),
        ("/v1/checkpoints", {"cursor": "%%%"}, "cursor"),
        ("/v1/checkpoints/consistency", {"from": 2**70, "to": 1}, "from"),
        ("/v1/epcis/events", {"nextPageToken": _cursor({"v": 1, "after": 3})}, "nextPageToken"),
        ("/v1/epcis/events", {"nextPageToken": _cursor({"v": 1, "q": "x", "after": 2**70})},
         "nextPageToken"),
        ("/v1/epcis/events", {"nextPageToken": _cursor([1, 2])}, "nextPageToken"),
        ("/v1/records/9223372036854775808", {}, "leaf index"),
        ("/v1/records/" + "9" * 5000, {}, "leaf index"),
        ("/v1/records/9223372036854775808/receipt", {}, "leaf index"),
        ("/v1/records/0x" + "zz" * 32, {}, "0x leaf hash"),
    ]  # fmt: skip
    for path, params, named in cases:
        r = plant.client.get(path, params=params, headers=op)
        assert 400 <= r.status_code < 500, (path, params, r.status_code, r.text)
        assert named in r.text, (path, r.text)


def test_admin_conflicts_are_409_and_leave_nothing(plant: Plant) -> None:
    op = plant.as_("operator")
    body = {"asset": "engine-7", "maintainer": "fixit"}
    assert (
        plant.client.post("/v1/participants/assignments", json=body, headers=op).status_code == 201
    )
    problem(plant.client.post("/v1/participants/assignments", json=body, headers=op), 409)
    # A participant whose first key is taken is not created at all (one contract transaction).
    from ledger.signing import sign_key_binding

    taken = plant.signers["acme"]
    proof = sign_key_binding(taken, plant.service.dep.domain, "newcomer", taken.address, 0)
    r = plant.client.post(
        "/v1/participants",
        json={
            "id": "newcomer",
            "name": "N",
            "roles": ["supplier"],
            "address": taken.address,
            "key_proof": "0x" + proof.hex(),
        },
        headers=op,
    )
    problem(r, 409, names="already bound")
    assert plant.client.get("/v1/participants/newcomer", headers=op).status_code == 404


# ------------------------------------------------------------------------------- webhooks
REFUSED_TARGETS = [
    "http://127.0.0.1:8080/hook",
    "http://localhost/hook",
    "http://[::1]/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://10.0.0.5/hook",
    "http://192.168.1.1/hook",
    "http://172.16.0.1/hook",
    "http://100.64.0.1/hook",
    "http://2130706433/hook",
    "http://0x7f000001/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://224.0.0.1/hook",
    "http://0.0.0.0/hook",
    "https://user:pw@example.com/hook",
    "ftp://example.com/hook",
    "file:///etc/passwd",
]


def test_webhook_targets_must_be_public(plant: Plant) -> None:
    plant.service.settings.allow_private_webhooks = False
    fixit = plant.as_("fixit")
    for url in REFUSED_TARGETS:
        r = plant.client.post("/v1/subscriptions", json={"url": url}, headers=fixit)
        assert r.status_code == 422, (url, r.text)
    with plant.service.dep.store.reading() as conn:
        assert conn.execute(select(func.count()).select_from(Subscription)).scalar_one() == 0


def _subscribe(plant: Plant, who: str, url: str) -> str:
    r = plant.client.post("/v1/subscriptions", json={"url": url}, headers=plant.as_(who))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_a_target_that_turns_private_is_not_contacted(plant: Plant) -> None:
    """DNS rebinding: vetted when subscribing, vetted again at every delivery."""
    hook = Hook()
    try:
        plant.client.post(
            "/v1/participants/assignments",
            json={"asset": "engine-7", "maintainer": "fixit"},
            headers=plant.as_("operator"),
        )
        sub = _subscribe(plant, "fixit", hook.url)  # allowed while private targets are
        plant.service.settings.allow_private_webhooks = False  # ... now the name is private
        plant.predict("engine-7")
        DeliveryWorker(plant.service, base_delay_s=0.01).run_once()
        assert hook.calls == []
        log = plant.client.get(
            f"/v1/subscriptions/{sub}/deliveries", headers=plant.as_("fixit")
        ).json()
        assert log[0]["last_error"] == "delivery failed: target not allowed (not a public address)"
    finally:
        hook.close()


def test_delivery_errors_are_classes_not_network_details(plant: Plant) -> None:
    missing = Hook(status=404)
    closed = Hook()
    closed.close()  # nothing listens there any more
    try:
        op = plant.as_("operator")
        for asset, who in (("engine-1", "fixit"), ("engine-2", "other-maint")):
            plant.client.post(
                "/v1/participants/assignments", json={"asset": asset, "maintainer": who}, headers=op
            )
        subs = {
            _subscribe(plant, "fixit", missing.url): "HTTP 404",
            _subscribe(plant, "other-maint", closed.url): "refused",
        }
        plant.predict("engine-1")
        plant.predict("engine-2")
        DeliveryWorker(plant.service, base_delay_s=0.01).run_once()
        with plant.service.dep.store.reading() as conn:
            errors = dict(conn.execute(select(Delivery.subscription, Delivery.last_error)).all())
        assert errors == {
            next(s for s, w in subs.items() if w == "HTTP 404"): "delivery failed: HTTP 404",
            next(
                s for s, w in subs.items() if w == "refused"
            ): "delivery failed: connection refused or unreachable",
        }
    finally:
        missing.close()


def test_slow_webhooks_do_not_delay_others(plant: Plant) -> None:
    slow = [Hook(delay=3.0), Hook(delay=3.0)]
    fast = Hook()
    worker = DeliveryWorker(plant.service, base_delay_s=60)
    try:
        op = plant.as_("operator")
        for asset, who in (("engine-1", "fixit"), ("engine-2", "other-maint")):
            plant.client.post(
                "/v1/participants/assignments", json={"asset": asset, "maintainer": who}, headers=op
            )
        _subscribe(plant, "fixit", slow[0].url)
        _subscribe(plant, "fixit", slow[1].url)
        _subscribe(plant, "other-maint", fast.url)
        plant.service.wake_delivery = worker.wake
        worker.start()
        plant.predict("engine-1")  # to both slow endpoints
        time.sleep(0.2)  # they are busy now
        sent = time.monotonic()
        plant.predict("engine-2")  # to the fast one
        deadline = sent + 5
        while not fast.calls and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fast.calls, "the fast subscriber got nothing"
        # An ordering, not a time bound: the fast subscriber was answered while both slow ones
        # were still busy with the earlier prediction, so it did not queue behind them.
        first_slow = min((c.at for h in slow for c in h.calls), default=float("inf"))
        assert fast.calls[0].at < first_slow, (fast.calls[0].at - sent, first_slow - sent)
    finally:
        worker.stop()
        for h in (*slow, fast):
            h.close()


# ------------------------------------------------------------------------------- secrets
def test_secrets_at_rest(plant: Plant) -> None:
    from eth_account import Account

    home = plant.service.dep.home
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    for root, dirs, files in os.walk(home):
        for name in dirs:
            assert stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode) == 0o700, name
        for name in files:
            if name.endswith(("-wal", "-shm", ".lock")):
                continue
            assert stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode) & 0o077 == 0, name
    acme = plant.signers["acme"]
    path = next((home / "keys").glob(f"acme.{acme.address}.json"))
    text = path.read_text()
    assert acme.private_key.hex() not in text
    keystore = json.loads(text)
    assert keystore["version"] == 3 and keystore["crypto"]["kdf"] == "scrypt"
    assert (
        bytes(Account.decrypt(keystore, os.environ["FORGEPROOF_KEY_PASSPHRASE"]))
        == acme.private_key
    )
    with pytest.raises(ValueError):
        Account.decrypt(keystore, "wrong passphrase")
    # The webhook secret the subscriber was shown is not what the database holds.
    plant.service.settings.allow_private_webhooks = True
    r = plant.client.post(
        "/v1/subscriptions", json={"url": "http://127.0.0.1:9/x"}, headers=plant.as_("fixit")
    )
    shown = r.json()["secret"]
    with plant.service.dep.store.reading() as conn:
        stored = conn.execute(select(Subscription.secret)).scalar_one()
    assert shown not in stored and stored.startswith("fernet:")
    assert plant.service.dep.secret_box("webhook").open(stored) == shown


# ------------------------------------------------------------------------------- edges
def test_a_burst_of_wrong_keys_is_slowed_and_a_valid_key_still_works(plant: Plant) -> None:
    statuses = []
    for i in range(300):
        r = plant.client.get("/v1/records", headers={"Authorization": f"Bearer fp_wrong{i}"})
        statuses.append(r.status_code)
    assert set(statuses[:20]) == {401}
    assert statuses[-1] == 429 and statuses.count(429) >= 250
    r = plant.client.get("/v1/records", headers={"Authorization": "Bearer fp_wrong"})
    assert int(r.headers["retry-after"]) >= 1
    assert plant.client.get("/v1/records", headers=plant.as_("acme")).status_code == 200


def test_security_headers_everywhere_and_a_strict_policy_on_pages(plant: Plant) -> None:
    from api.demo.synthetic import PlantConfig, PlantFacts, plant_document, plant_events

    r = plant.client.get("/healthz")
    for name, value in (
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
    ):
        assert r.headers[name] == value
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    problem_response = plant.client.get("/v1/records")
    assert problem_response.headers["x-content-type-options"] == "nosniff"
    facts = PlantFacts()
    events = list(plant_events(PlantConfig(runs=1, stages=2, seed=2), facts))
    plant.client.post(
        "/v1/epcis/capture", json=plant_document(events), headers=plant.as_("operator")
    )
    plant.service.dep.log.checkpoint()
    page = plant.client.get(
        "/v1/genealogy/audit",
        params={"id": facts.finished[-1], "format": "html"},
        headers=plant.as_("tuv"),
    )
    csp = page.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "'sha256-" in csp and "frame-ancestors 'none'" in csp
    assert "style=" not in page.text.split("<svg")[0]  # no inline style attributes to allow


def test_a_number_that_would_not_read_back_is_refused(plant: Plant) -> None:
    """Found by the property test above: a float of 2**53 is written by RFC 8785 as the digits
    9007199254740992, which read back as an integer no canonicaliser takes, so the record's
    receipts could never be verified again."""
    sub = raw_submission(plant, "acme", {"x": 9007199254740992.0})
    r = plant.client.post("/v1/records", json=sub, headers=plant.as_("acme"))
    problem(r, 422, names="would not read back")
    assert logged(plant) == 0
