"""The auditor's and the maintenance partner's pages, without a browser: each page answers the
roles its API route answers, a participant reaches nobody else's data through any page or any
link those pages render, form posts without the session's CSRF token change nothing, and a
Grad-CAM overlay is served only to whoever may read its record, and only if it is the image
the record signs."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.demo.synthetic import CONTEXT, PlantConfig, PlantFacts, plant_document, plant_events
from api.portal.pages.assets import RulPoint, nice_ticks, rul_plot
from api.predictions import load_explanation, save_explanation
from api.tables import RecordTag, Subscription
from tests.api.conftest import PLANT, Plant, close_plant, make_plant
from tests.conftest import missing

ROLES = dict(PLANT)
EVERYONE = sorted(ROLES)
SECRET_LOT = "SECRET-LOT-7"


def sign_in(plant: Plant, who: str) -> TestClient:
    """A browser-like client of the plant's app, signed in to the portal as `who`."""
    client = TestClient(plant.client.app)
    form = client.get("/signin")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce is not None
    r = client.post(
        "/signin",
        data={"api_key": plant.keys[who], "nonce": nonce.group(1), "next": "/"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return client


def csrf_of(client: TestClient, path: str = "/portal/assets") -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert m is not None
    return m.group(1)


def links(html: str, attributes: str = "href|src") -> set[str]:
    """Every same-site link of a page (`attributes`: href, src; action for forms), without
    fragments."""
    found = re.findall(rf'(?:{attributes})="([^"]+)"', html)
    out = set()
    for raw in found:
        url = unescape(raw)
        if url.startswith("/") and not url.startswith("//"):
            out.add(url.split("#", 1)[0])
    return out - {""}


def overlay(seed: bytes) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + hashlib.sha256(seed).digest()


def sha(data: bytes) -> str:
    return "0x" + hashlib.sha256(data).hexdigest()


@dataclass
class World:
    plant: Plant
    facts: PlantFacts
    finished: str  # a finished lot with non-conformant material upstream
    bad_lot: str  # the lot inspected non-conformant by the operator
    judged_lot: str  # a lot only a supplier found non-conformant
    supplier_record: dict[str, int] = field(default_factory=dict)  # producer -> leaf index
    predictions: dict[str, list[int]] = field(default_factory=dict)  # asset -> leaves
    inspections: dict[str, int] = field(default_factory=dict)  # name -> leaf
    clients: dict[str, TestClient] = field(default_factory=dict)

    def as_(self, who: str) -> TestClient:
        if who not in self.clients:
            self.clients[who] = sign_in(self.plant, who)
        return self.clients[who]


def _inspection(p: Plant, asset: str | None, png: bytes | None, signed: str | None) -> int:
    payload: dict[str, Any] = {
        "verdict": "crazing",
        "confidence": 0.91,
        "needs_review": False,
        "image": "crazing_1.jpg",
        "model_manifest_digest": p.model(),
    }
    if asset is not None:
        payload["asset"] = asset
    if signed is not None:
        payload["explanation"] = {"method": "grad-cam", "gradcam_sha256": signed}
    r = p.submit("line-3", kind="inspection", **payload)
    assert r.status_code == 201, r.text
    index: int = r.json()["index"]
    if png is not None:
        save_explanation(p.service, index, png)
    return index


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Two maintainers with one engine each, predictions and inspections about both, a small
    plant history with a non-conformant inspection upstream of a finished lot, and a record
    of each supplier."""
    p = make_plant(tmp_path_factory.mktemp("portal-access") / "home")
    op = p.as_("operator")
    for asset, who in (("engine-1", "fixit"), ("engine-2", "other-maint")):
        r = p.client.post(
            "/v1/participants/assignments", json={"asset": asset, "maintainer": who}, headers=op
        )
        assert r.status_code == 201, r.text
    facts = PlantFacts()
    events = list(plant_events(PlantConfig(runs=2, stages=3, nonconformant_p=0.0,
                                           review_p=0.0, seed=3), facts))  # fmt: skip
    r = p.client.post("/v1/epcis/capture", json=plant_document(events), headers=op)
    assert r.status_code == 201, r.text
    w = World(p, facts, facts.runs[0][-1], facts.runs[0][0], facts.runs[1][0])
    inspection = {
        "@context": CONTEXT, "type": "ObjectEvent", "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE", "bizStep": "inspecting", "disposition": "non_conformant",
    }  # fmt: skip
    bad = {**inspection, "eventTime": "2026-02-01T00:00:00.000Z",
           "quantityList": [{"epcClass": w.bad_lot}]}  # fmt: skip
    assert p.client.post("/v1/epcis/capture", json=bad, headers=op).status_code == 201
    by_supplier = {**inspection, "eventTime": "2026-02-01T00:00:01.000Z",
                   "quantityList": [{"epcClass": w.judged_lot}]}  # fmt: skip
    r = p.client.post(
        "/v1/epcis/capture/signed",
        json=[p.signed("acme", kind="epcis_event", **by_supplier)],
        headers=p.as_("acme"),
    )
    assert r.status_code == 201, r.text
    for who in ("acme", "nordic"):
        w.supplier_record[who] = p.submit(who, lot=f"{SECRET_LOT}-{who}").json()["index"]
    for asset, base in (("engine-1", 200), ("engine-2", 90)):
        for cycle in (40, 80, 120):
            r = p.predict(asset, rul=base - cycle, last_cycle=cycle,
                          intervals={"80": [base - cycle - 15, base - cycle + 15],
                                     "90": [base - cycle - 25, base - cycle + 30]})  # fmt: skip
            assert r.status_code == 201, r.text
            w.predictions.setdefault(asset, []).append(r.json()["index"])
    good, other = overlay(b"good"), overlay(b"other")
    w.inspections["good"] = _inspection(p, "engine-1", good, sha(good))
    w.inspections["tampered"] = _inspection(p, "engine-1", overlay(b"swapped"), sha(other))
    w.inspections["none kept"] = _inspection(p, "engine-1", None, sha(other))
    w.inspections["theirs"] = _inspection(p, "engine-2", other, sha(other))
    w.inspections["no asset"] = _inspection(p, None, good, sha(good))
    p.service.dep.log.checkpoint()
    yield w
    for client in w.clients.values():
        client.close()
    close_plant(p)


# --- who may open which page -------------------------------------------------------------------


def _audit_urls(w: World) -> list[str]:
    lot = quote(w.finished, safe="")
    return [
        "/portal/audit",
        f"/portal/audit/search?q={lot}",
        f"/portal/audit/trace?id={lot}",
        f"/portal/audit/export.json?id={lot}",
        f"/portal/audit/export.html?id={lot}",
        f"/portal/audit/model?model={quote(w.plant.model(), safe='')}",
        f"/portal/audit/recall?supplier_lot={quote(w.bad_lot, safe='')}",
        "/portal/audit/recall?nonconformant=true",
        f"/portal/audit/event?id={quote(_event_id(w), safe='')}",
    ]


def _event_id(w: World) -> str:
    r = w.plant.client.get(
        "/v1/epcis/events",
        params={"EQ_bizStep": "inspecting", "EQ_disposition": "non_conformant"},
        headers=w.plant.as_("operator"),
    )
    events = r.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    return str(events[0]["eventID"])


@pytest.mark.parametrize("who", EVERYONE)
def test_audit_pages_answer_the_roles_the_epcis_api_answers(world: World, who: str) -> None:
    api = world.plant.client.get(
        "/v1/genealogy", params={"id": world.finished}, headers=world.plant.as_(who)
    )
    client = world.as_(who)
    for url in _audit_urls(world):
        r = client.get(url, follow_redirects=False)
        if api.status_code == 403:
            assert r.status_code == 403, (who, url, r.status_code)
            assert world.finished not in r.text and world.bad_lot not in r.text
            assert "this page is for operator or manufacturer or auditor" in r.text
        else:
            assert api.status_code == 200
            assert r.status_code in (200, 303), (who, url, r.status_code, r.text[:500])
    assert (api.status_code == 200) == (ROLES[who] in ("operator", "manufacturer", "auditor"))


@pytest.mark.parametrize("who", EVERYONE)
def test_asset_pages_answer_maintainers_and_the_operator(world: World, who: str) -> None:
    """The roles of the API's webhook routes (`Subscriber`); anyone else sees no asset."""
    api = world.plant.client.get("/v1/subscriptions", headers=world.plant.as_(who))
    client = world.as_(who)
    for url in ("/portal/assets", "/portal/assets/engine-1"):
        r = client.get(url)
        if api.status_code == 403:
            assert r.status_code == 403 and "engine-1" not in r.text.replace(url, "")
        elif ROLES[who] == "operator" or who == "fixit":
            assert r.status_code == 200, (who, url, r.text[:300])
    if api.status_code == 403:  # its own valid token does not make it a subscriber
        data = {"csrf": csrf_of(client), "url": "http://127.0.0.1:9/role"}
        assert client.post("/portal/assets/webhooks", data=data).status_code == 403
        with world.plant.service.dep.store.reading() as conn:
            mine = select(Subscription.id).where(Subscription.participant == who)
            assert conn.execute(mine).first() is None


def test_a_maintainer_sees_its_asset_and_nothing_of_anothers(world: World) -> None:
    fixit = world.as_("fixit")
    listed = fixit.get("/portal/assets").text
    assert 'data-asset="engine-1"' in listed and "engine-2" not in listed
    page = fixit.get("/portal/assets/engine-1")
    assert page.status_code == 200
    shown = set(map(int, re.findall(r'id="rec-(\d+)"', page.text)))
    mine = set(world.predictions["engine-1"]) | {
        world.inspections[k] for k in ("good", "tampered", "none kept")
    }
    assert shown == mine
    answers = [fixit.get(f"/portal/assets/{a}") for a in ("engine-2", "engine-404", "ENGINE-1")]
    assert {r.status_code for r in answers} == {403}
    details = {re.search(r'id="error-detail"[^>]*>([^<]+)', r.text).group(1) for r in answers}  # type: ignore[union-attr]
    assert details == {"no such asset assigned to this participant"}  # exists or not: the same
    # The operator sees every asset, each with its maintainer.
    everything = world.as_("operator").get("/portal/assets").text
    assert 'data-asset="engine-1"' in everything and 'data-asset="engine-2"' in everything
    assert world.as_("operator").get("/portal/assets/engine-404").status_code == 404


def test_the_plot_draws_every_prediction_with_both_bands(world: World) -> None:
    page = world.as_("fixit").get("/portal/assets/engine-1").text
    svg = page[page.index('<svg xmlns="http://www.w3.org/2000/svg" id="rul-plot"') :]
    svg = svg[: svg.index("</svg>")]
    assert {int(i) for i in re.findall(r'href="#rec-(\d+)"', svg)} == set(
        world.predictions["engine-1"]
    )
    assert 'data-level="80"' in svg and 'data-level="90"' in svg
    assert "cycle at the end of the window" in svg and "remaining useful life" in svg
    assert 'style="' not in page and "<script>" not in page  # the page's CSP allows neither


def test_every_link_on_a_maintainers_pages_is_closed_to_another(world: World) -> None:
    """Crawl fixit's pages; whatever they link to about fixit's asset, records or webhooks,
    other-maint gets 403 or 404 and sees none of it."""
    fixit, other = world.as_("fixit"), world.as_("other-maint")
    csrf = csrf_of(fixit)
    sub = fixit.post("/portal/assets/webhooks", data={"csrf": csrf, "url": "http://127.0.0.1:9/f"})
    assert sub.status_code == 201
    sub_id = re.search(r'id="sub-id">([^<]+)', sub.text).group(1)  # type: ignore[union-attr]
    pages = {"/portal/assets", "/portal/assets/engine-1", f"/portal/assets/webhooks/{sub_id}"}
    seen: set[str] = set()
    while pages - seen:
        url = sorted(pages - seen)[0]
        seen.add(url)
        r = fixit.get(url)
        assert r.status_code == 200, url
        if url.startswith("/portal/assets"):
            pages |= {u for u in links(r.text) if u.startswith("/portal/assets")}
    everything = set().union(*(links(fixit.get(u).text) for u in seen))
    forms = set().union(*(links(fixit.get(u).text, "action") for u in seen))
    private = set(map(str, world.predictions["engine-1"])) | {
        str(world.inspections[k]) for k in ("good", "tampered", "none kept")
    }
    checked = 0
    other_csrf = csrf_of(other)
    for url in sorted(everything | forms):
        path = urlsplit(url).path
        if path.startswith(("/static/", "/verify", "/docs", "/signin", "/signout")):
            continue
        if url in forms:  # with other-maint's own valid token: only the owner's is refused
            r = other.post(url, data={"csrf": other_csrf, "url": "http://127.0.0.1:9/o"})
        else:
            r = other.get(url)
        about_fixit = (
            "engine-1" in unquote(url)
            or sub_id in url
            or any(re.search(rf"/{i}(/|$)", path) for i in private)
        )
        if about_fixit:
            assert r.status_code in (403, 404), (url, r.status_code)
            checked += 1
        assert "engine-1" not in r.text and "127.0.0.1:9/f" not in r.text, url
    assert checked >= len(private) + 2  # every record, the asset page, the delivery log
    assert (
        world.as_("fixit")
        .post(
            f"/portal/assets/webhooks/{sub_id}/delete", data={"csrf": csrf}, follow_redirects=False
        )
        .status_code
        == 303
    )


def test_a_supplier_reaches_no_other_suppliers_record(world: World) -> None:
    nordic = world.as_("nordic")
    theirs, missing = world.supplier_record["acme"], 10**9
    answers = [nordic.get(f"/portal/records/{i}/gradcam.png") for i in (theirs, missing)]
    assert [r.status_code for r in answers] == [403, 403]
    assert answers[0].text == answers[1].text.replace(str(missing), str(theirs))
    assert SECRET_LOT not in answers[0].text
    for url in _audit_urls(world):
        r = nordic.get(url)
        assert r.status_code == 403 and SECRET_LOT not in r.text


# --- inspections for maintainers, and their overlays ----------------------------------------


def test_maintainers_read_the_inspections_of_their_assets_only(world: World) -> None:
    p = world.plant
    listed = {
        who: {
            r["index"]
            for r in p.client.get(
                "/v1/records", params={"kind": "inspection"}, headers=p.as_(who)
            ).json()["data"]
        }
        for who in ("fixit", "other-maint")
    }
    assert listed["fixit"] == {world.inspections[k] for k in ("good", "tampered", "none kept")}
    assert listed["other-maint"] == {world.inspections["theirs"]}
    for who, index in (("fixit", world.inspections["theirs"]),
                       ("other-maint", world.inspections["good"]),
                       ("fixit", world.inspections["no asset"])):  # fmt: skip
        assert p.client.get(f"/v1/records/{index}", headers=p.as_(who)).status_code == 403
    with p.service.dep.store.reading() as conn:
        tagged = conn.execute(
            select(RecordTag.asset).where(RecordTag.leaf_index == world.inspections["good"])
        ).scalar()
    assert tagged == "engine-1"


def test_the_overlay_is_served_only_when_it_is_the_signed_image(world: World) -> None:
    fixit, other = world.as_("fixit"), world.as_("other-maint")
    good = world.inspections["good"]
    r = fixit.get(f"/portal/records/{good}/gradcam.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content == overlay(b"good") and r.headers["x-gradcam-sha256"] == sha(r.content)
    tampered = fixit.get(f"/portal/records/{world.inspections['tampered']}/gradcam.png")
    assert tampered.status_code == 409 and "overlay_mismatch" in tampered.text
    assert "is not the image the model produced" in tampered.text
    assert overlay(b"swapped") not in tampered.content
    none = fixit.get(f"/portal/records/{world.inspections['none kept']}/gradcam.png")
    assert none.status_code == 404 and "no Grad-CAM overlay is kept" in none.text
    prediction = world.predictions["engine-1"][0]
    assert fixit.get(f"/portal/records/{prediction}/gradcam.png").status_code == 404
    # Whoever may not read the record learns nothing, matching digest or not.
    for name in ("good", "tampered", "none kept"):
        r = other.get(f"/portal/records/{world.inspections[name]}/gradcam.png")
        assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert world.as_("acme").get(f"/portal/records/{good}/gradcam.png").status_code == 403
    assert world.as_("tuv").get(f"/portal/records/{good}/gradcam.png").status_code == 200
    # The asset page says which overlay matches its record, and shows only that one.
    page = fixit.get("/portal/assets/engine-1").text
    assert re.search(rf'data-index="{good}" data-overlay="match"', page)
    assert re.search(rf'data-index="{world.inspections["tampered"]}" data-overlay="mismatch"', page)
    assert f'src="/portal/records/{good}/gradcam.png"' in page
    assert f'src="/portal/records/{world.inspections["tampered"]}/gradcam.png"' not in page


def test_the_inspection_route_keeps_the_overlay_it_signs(tmp_path: Path) -> None:
    from api.runner import SHIPPED, ModelRunner
    from api.server import register_shipped
    from ml.shipped import SAMPLES

    if not (SHIPPED / "defect-neu" / "manifest.json").is_file():
        missing("no defect model shipped")
    p = make_plant(tmp_path / "home")
    try:
        runner = ModelRunner([SHIPPED / "defect-neu"])
        p.service.runner = runner
        register_shipped(p.service, runner)  # as `forgeproof up` does
        p.client.post(
            "/v1/participants/assignments",
            json={"asset": "press-4", "maintainer": "fixit"},
            headers=p.as_("operator"),
        )
        image = sorted((SAMPLES / "neu").glob("*.jpg"))[0]
        r = p.client.post(
            "/v1/predictions/inspection",
            files={"image": (image.name, image.read_bytes())},
            data={"asset": "press-4"},
            headers=p.as_("line-3"),
        )
        assert r.status_code == 201, r.text
        body = r.json()
        payload = body["record"]["payload"]
        assert payload["asset"] == "press-4"
        png = load_explanation(p.service, body["index"])
        assert png is not None and png.startswith(b"\x89PNG")
        assert sha(png) == payload["explanation"]["gradcam_sha256"]
        fixit = sign_in(p, "fixit")
        served = fixit.get(f"/portal/records/{body['index']}/gradcam.png")
        assert served.status_code == 200 and served.content == png
        assert "matches the signed digest" in fixit.get("/portal/assets/press-4").text
    finally:
        close_plant(p)


# --- forms ---------------------------------------------------------------------------------------


def _subscriptions(p: Plant, who: str) -> list[dict[str, Any]]:
    r = p.client.get("/v1/subscriptions", headers=p.as_(who))
    assert r.status_code == 200
    subs: list[dict[str, Any]] = r.json()
    return subs


def test_posts_without_the_sessions_csrf_token_change_nothing(world: World) -> None:
    p = world.plant
    fixit, other = world.as_("fixit"), world.as_("other-maint")
    before = _subscriptions(p, "fixit")
    url = "http://127.0.0.1:9/csrf"
    for data in (
        {"url": url},
        {"url": url, "csrf": "forged"},
        {"url": url, "csrf": csrf_of(other)},
    ):
        r = fixit.post("/portal/assets/webhooks", data=data)
        assert r.status_code == 403 and "bad_csrf" in r.text
    # A supplier's own valid token does not make it a subscriber.
    nordic = world.as_("nordic")
    r = nordic.post(
        "/portal/assets/webhooks", data={"url": url, "csrf": csrf_of(nordic, "/portal/records")}
    )
    assert r.status_code == 403
    assert _subscriptions(p, "fixit") == before
    with p.service.dep.store.reading() as conn:
        theirs = select(Subscription.id).where(Subscription.participant == "nordic")
        assert conn.execute(theirs).first() is None
    created = fixit.post("/portal/assets/webhooks", data={"url": url, "csrf": csrf_of(fixit)})
    assert created.status_code == 201 and created.headers["cache-control"] == "no-store"
    sub_id = re.search(r'id="sub-id">([^<]+)', created.text).group(1)  # type: ignore[union-attr]
    secret = re.search(r'id="sub-secret">([^<]+)', created.text).group(1)  # type: ignore[union-attr]
    assert len(secret) == 64 and secret not in fixit.get("/portal/assets").text  # shown once
    delete = f"/portal/assets/webhooks/{sub_id}/delete"
    for client, data in (
        (fixit, {}),
        (fixit, {"csrf": "forged"}),
        (other, {"csrf": csrf_of(other)}),
    ):
        r = client.post(delete, data=data, follow_redirects=False)
        assert r.status_code == 403
    assert next(s for s in _subscriptions(p, "fixit") if s["id"] == sub_id)["active"]
    r = fixit.post(delete, data={"csrf": csrf_of(fixit)}, follow_redirects=False)
    assert r.status_code == 303
    assert not next(s for s in _subscriptions(p, "fixit") if s["id"] == sub_id)["active"]
    bad_url = fixit.post("/portal/assets/webhooks", data={"url": "ftp://x", "csrf": csrf_of(fixit)})
    assert bad_url.status_code == 422


# --- the auditor's pages ------------------------------------------------------------------------


def test_the_trace_shows_non_conformant_material_upstream_prominently(world: World) -> None:
    tuv = world.as_("tuv")
    page = tuv.get("/portal/audit/trace", params={"id": world.finished}).text
    alert = page[page.index('id="nonconformant"') : page.index("</section>")]
    assert world.bad_lot in alert and "<b>operator</b>" in alert and "upstream" in alert
    nodes = re.findall(r'<a href="([^"]+)" class="node-link" data-node="([^"]+)"', page)
    g = world.plant.client.get(
        "/v1/genealogy", params={"id": world.finished}, headers=world.plant.as_("tuv")
    ).json()
    assert {unescape(n) for _, n in nodes} == {n["id"] for n in g["nodes"]}
    for href, node in nodes:  # each node links to its own events
        r = tuv.get(unescape(href))
        assert r.status_code == 200 and "Events about" in r.text
        assert f"Events about <code>{node}</code>" in r.text
    # Every event: its receipt, a verify link for it, who asserted it.
    rows = re.findall(r'<tr class="[^"]*" data-leaf="(\d+)">', page)
    assert {int(x) for x in rows} == {e["leaf_index"] for e in g["events"]}
    for leaf in rows:
        assert f'href="/portal/records/{leaf}/receipt.json" download' in page
        assert f'href="/verify#src=%2Fportal%2Frecords%2F{leaf}%2Freceipt.json"' in page
    # The export, and the verifier told where to fetch it, the identifier encoded inside.
    verify = re.search(r'id="export-verify" href="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    src = unquote(unescape(verify).split("#src=", 1)[1])
    assert src == "/portal/audit/export.json?id=" + quote(world.finished, safe="")
    assert tuv.get(src).json()["subject"] == world.finished
    # A lot only a supplier condemned is shown, and said not to count for recalls.
    judged = tuv.get("/portal/audit/trace", params={"id": world.judged_lot}).text
    assert "recalls do not count it" in judged and "acme" in judged


def test_exports_download_as_files_the_api_would_hand_over(world: World) -> None:
    tuv = world.as_("tuv")
    r = tuv.get("/portal/audit/export.json", params={"id": world.finished})
    assert r.headers["content-disposition"].startswith('attachment; filename="audit-urn_epc_')
    api = world.plant.client.get(
        "/v1/genealogy/audit", params={"id": world.finished}, headers=world.plant.as_("tuv")
    ).json()
    mine = r.json()
    assert {k: v for k, v in mine.items() if k != "generated_at"} == {
        k: v for k, v in api.items() if k != "generated_at"
    }
    page = tuv.get("/portal/audit/export.html", params={"id": world.finished})
    assert page.headers["content-disposition"].endswith('.html"') and "<svg" in page.text
    missing = tuv.get("/portal/audit/trace", params={"id": "urn:epc:class:lgtin:0.0.NOPE"})
    assert missing.status_code == 404 and "no event mentions" in missing.text


def test_model_search_lists_what_the_model_judged(world: World) -> None:
    tuv = world.as_("tuv")
    r = tuv.get("/portal/audit/search", params={"q": "rul-test"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/audit/model?")
    page = tuv.get(r.headers["location"]).text
    cited = {int(x) for x in re.findall(r'<tr data-leaf="(\d+)">', page)}
    judged = {*world.predictions["engine-1"], *world.predictions["engine-2"],
              *world.inspections.values()}  # fmt: skip
    assert cited == judged
    assert world.plant.model() in page
    unknown = tuv.get("/portal/audit/model", params={"model": "no-such-model"})
    assert unknown.status_code == 404


def test_recall_pages_link_each_lot_to_its_genealogy(world: World) -> None:
    tuv = world.as_("tuv")
    page = tuv.get("/portal/audit/recall", params={"nonconformant": "true"}).text
    finished = re.findall(r'<a href="([^"]+)" class="trace-link"><code>([^<]+)</code>', page)
    assert world.finished in {f for _, f in finished}
    assert world.facts.runs[1][-1] not in {f for _, f in finished}  # a supplier's verdict: no
    by_lot = tuv.get("/portal/audit/recall", params={"supplier_lot": world.bad_lot}).text
    assert world.finished in by_lot
    assert tuv.get("/portal/audit/recall").status_code == 422  # no criterion


def test_the_event_page_names_who_asserted_it_and_links_its_receipt(world: World) -> None:
    tuv = world.as_("tuv")
    page = tuv.get("/portal/audit/event", params={"id": _event_id(world)}).text
    assert 'id="event-nonconformant"' in page
    assert re.search(r'id="asserted-by"><b>operator</b>', page)
    leaf = re.search(r'href="/portal/records/(\d+)" id="record-link"', page).group(1)  # type: ignore[union-attr]
    assert f'href="/portal/records/{leaf}/receipt.json" download' in page
    assert world.bad_lot in page


# --- the plot, alone -----------------------------------------------------------------------------


def test_ticks_cover_the_data_with_round_steps() -> None:
    assert nice_ticks(50, 150) == [40, 60, 80, 100, 120, 140, 160]
    assert nice_ticks(0, 185) == [0, 50, 100, 150, 200]
    for lo, hi in ((0.0, 0.5), (-3.2, 17.0), (1.0, 362.0), (31.0, 31.0)):
        ticks = nice_ticks(lo, hi)
        assert ticks[0] <= lo and ticks[-1] >= hi and len(ticks) >= 2


def test_one_prediction_still_draws_a_band_and_a_point() -> None:
    from api.schemas import RecordPublic

    payload = {"rul": 61.5, "last_cycle": 31, "intervals": {"80": [50, 70], "90": [40, 80]}}
    record = RecordPublic(id="0x" + "00" * 32, index=7, kind="prediction", participant="op",
                          signer="0x" + "00" * 20, created_at="2026-01-01T00:00:00Z",
                          appended_at="2026-01-01T00:00:00Z", erased=False,
                          record={"payload": payload}, signature="0x")  # fmt: skip
    point = RulPoint.of(record)
    assert point is not None and point.intervals == {"80": (50.0, 70.0), "90": (40.0, 80.0)}
    svg = str(rul_plot([point]))
    assert svg.count("<polygon") == 2 and 'href="#rec-7"' in svg
    assert RulPoint.of(record.model_copy(update={"record": {"payload": {"rul": 3}}})) is None
    assert rul_plot([]) == ""
