"""EPCIS over HTTP: capture, the standard query, genealogy, recall and the auditor's export."""

from __future__ import annotations

import json
from urllib.parse import quote

from api.demo.synthetic import PlantConfig, PlantFacts, plant_document, plant_events
from ledger.epcis.audit import verify_audit
from ledger.receipts import verify_receipt
from tests.api.conftest import Plant


def _history(plant: Plant) -> PlantFacts:
    facts = PlantFacts()
    events = list(plant_events(PlantConfig(runs=3, stages=3, raw_lot_uses=2, seed=3), facts))
    r = plant.client.post(
        "/v1/epcis/capture", json=plant_document(events), headers=plant.as_("operator")
    )
    assert r.status_code == 201, r.text
    assert r.json()["captured"] == len(events)
    again = plant.client.post(
        "/v1/epcis/capture", json=plant_document(events), headers=plant.as_("operator")
    )
    assert again.json()["captured"] == 0 and again.json()["duplicates"] == len(events)
    plant.service.dep.log.checkpoint()
    return facts


def test_capture_query_genealogy_recall_audit(plant: Plant) -> None:
    facts = _history(plant)
    tuv = plant.as_("tuv")
    page = plant.client.get(
        "/v1/epcis/events", params={"eventType": "TransformationEvent", "perPage": 2}, headers=tuv
    )
    assert page.status_code == 200 and page.json()["type"] == "EPCISQueryDocument"
    assert len(page.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]) == 2
    assert 'rel="next"' in page.headers["link"]
    event = page.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"][0]
    one = plant.client.get(
        f"/v1/epcis/events/{quote(event['eventID'], safe='')}", headers=tuv
    ).json()
    assert one["event"]["eventID"] == event["eventID"]
    receipt = plant.client.get(
        f"/v1/records/{one['record']['leaf_index']}/receipt", headers=tuv
    ).json()
    assert verify_receipt(receipt["receipt"]).ok

    finished = facts.finished[-1]
    g = plant.client.get(
        "/v1/genealogy", params={"id": finished, "direction": "upstream"}, headers=tuv
    ).json()
    assert {n["id"] for n in g["nodes"]} >= set(facts.inputs[finished])
    raw = next(iter(facts.raw_lots))
    recall = plant.client.get("/v1/recall", params={"supplier_lot": raw}, headers=tuv)
    assert recall.status_code == 200, recall.text
    assert plant.client.get("/v1/recall", headers=tuv).status_code == 422

    bundle = plant.client.get("/v1/genealogy/audit", params={"id": finished}, headers=tuv).json()
    report = verify_audit(bundle)
    assert report.ok, report
    page_html = plant.client.get(
        "/v1/genealogy/audit", params={"id": finished, "format": "html"}, headers=tuv
    )
    assert page_html.headers["content-type"].startswith("text/html") and "<svg" in page_html.text


def test_invalid_epcis_is_refused_with_the_schema_complaint(plant: Plant) -> None:
    bad = {
        "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
        "type": "ObjectEvent",
        "eventTime": "2026-01-05T06:00:00.000Z",
        "eventTimeZoneOffset": "+01:00",
        "action": "SHOUT",
        "epcList": ["urn:epc:id:sgtin:4012345.011111.1"],
    }
    size = plant.service.dep.log.committed_size()
    r = plant.client.post("/v1/epcis/capture", json=bad, headers=plant.as_("operator"))
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "epcis_schema_violation" and body["complaints"]
    assert any("action" in c["path"] for c in body["complaints"]), json.dumps(body)
    assert plant.service.dep.log.committed_size() == size


def _next(link: str) -> str:
    target, rel = link.split(";", 1)
    assert rel.strip() == 'rel="next"'
    return target.strip().removeprefix("<").removesuffix(">")


def test_link_headers_are_followable_as_given(plant: Plant) -> None:
    """Issue #14, finding 4: `Link: rel="next"` carried only the token, so a client resolving
    it (RFC 3986) lost the query: filtered ones answered 400, unfiltered ones lost perPage."""
    import httpx

    _history(plant)
    tuv = plant.as_("tuv")
    for params in ({"eventType": "TransformationEvent", "perPage": "2"}, {"perPage": "3"}):
        first = plant.client.get("/v1/epcis/events", params=params, headers=tuv)
        assert first.status_code == 200, first.text
        url = httpx.URL(str(first.url))
        seen = [
            e["eventID"]
            for e in first.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        ]
        link = first.headers.get("link")
        pages = 1
        while link:
            url = url.join(_next(link))  # exactly what a generic client does
            page = plant.client.get(str(url), headers=tuv)
            assert page.status_code == 200, page.text
            events = page.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
            assert 0 < len(events) <= int(params["perPage"])
            seen += [e["eventID"] for e in events]
            link = page.headers.get("link")
            pages += 1
        everything = plant.client.get(
            "/v1/epcis/events", params={**params, "perPage": "1000"}, headers=tuv
        ).json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        assert seen == [e["eventID"] for e in everything] and pages > 1


def test_an_export_right_after_capture_says_when_to_come_back(plant: Plant) -> None:
    """Issue #14, finding 5: it answered 404 "checkpoint the log again", which an auditor
    cannot do. Now: 409 with Retry-After (the sequencer's interval), then the export."""
    facts = PlantFacts()
    events = list(plant_events(PlantConfig(runs=1, stages=2, seed=4), facts))
    r = plant.client.post(
        "/v1/epcis/capture", json=plant_document(events), headers=plant.as_("operator")
    )
    assert r.status_code == 201
    tuv = plant.as_("tuv")
    finished = facts.finished[-1]
    early = plant.client.get("/v1/genealogy/audit", params={"id": finished}, headers=tuv)
    assert early.status_code == 409 and early.json()["code"] == "not_checkpointed", early.text
    wait = int(early.headers["retry-after"])
    assert wait == max(1, round(plant.service.settings.checkpoint_interval_s))
    plant.service.dep.log.checkpoint()  # what the sequencer does within that interval
    later = plant.client.get("/v1/genealogy/audit", params={"id": finished}, headers=tuv)
    assert later.status_code == 200 and verify_audit(later.json()).ok
