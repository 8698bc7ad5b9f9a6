"""An auditor in the portal, in a real browser against the demo plant: search a lot, read its
genealogy graph and events, download the export and verify it in the browser, see what a model
judged and what a recall would take back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest

from tests.portal.conftest import LivePortal

pytestmark = pytest.mark.xdist_group("browser")


def _a_demo_lot(portal: LivePortal) -> str:
    """A lot the demo plant made: the output of one of its transformations."""
    r = httpx.get(
        portal.url + "/v1/epcis/events",
        params={"eventType": "TransformationEvent", "perPage": 1},
        headers={"Authorization": f"Bearer {portal.keys['tuv-audit']}"},
    )
    assert r.status_code == 200, r.text
    event = r.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"][0]
    lot: str = event["outputQuantityList"][0]["epcClass"]
    return lot


def test_an_auditor_traces_a_lot_and_verifies_its_export(
    live_portal: LivePortal, page: Any
) -> None:
    lot = _a_demo_lot(live_portal)
    live_portal.sign_in(page, "tuv-audit")
    assert page.url.endswith("/portal/audit")
    page.fill("#q", lot)
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#genealogy")
    assert page.inner_text("#subject") == lot

    # The graph: the subject and what it came from and went to, each object a link.
    nodes = page.locator("#genealogy a.node-link")
    assert nodes.count() >= 2
    assert page.locator("#genealogy .node.root").count() == 1
    hrefs = [nodes.nth(i).get_attribute("href") for i in range(nodes.count())]
    assert all(h and "&node=" in h for h in hrefs)
    assert page.locator("#genealogy path.edge").count() >= 1

    # Every event: who asserted it, its receipt, a link to verify that receipt.
    rows = page.locator("#events-table tbody tr[data-leaf]")
    assert rows.count() >= 2
    assert set(page.locator("#events-table td.asserted-by").all_inner_texts()) <= {
        "operator", "acme-steel", "nordic-bearings"
    }  # fmt: skip
    leaf = rows.first.get_attribute("data-leaf")
    receipt = f"/portal/records/{leaf}/receipt.json"
    first = rows.first
    assert first.locator("a.receipt-link").get_attribute("href") == receipt
    verify = first.locator("a.verify-link").get_attribute("href")
    assert verify == "/verify#src=" + quote(receipt, safe="")

    # One object's events, by clicking it in the graph.
    nodes.nth(0).click()
    page.wait_for_selector("#all-events")
    assert "node=" in page.url and "Events about" in page.inner_text("#events")

    # The export, downloaded in one click: the bundle of this genealogy.
    page.goto(live_portal.url + "/portal/audit/trace?id=" + quote(lot, safe=""))
    with page.expect_download() as info:
        page.click("#export-json")
    download = info.value
    assert download.suggested_filename.startswith(
        "audit-"
    ) and download.suggested_filename.endswith(".json")
    bundle = json.loads(Path(download.path()).read_text("utf-8"))
    assert bundle["format"] == "forgeproof-epcis-audit/1" and bundle["subject"] == lot
    assert bundle["events"]
    with page.expect_download() as info:
        page.click("#export-html")
    assert info.value.suggested_filename.endswith(".html")

    # ... and verified in this browser from the link, which names the export's URL exactly.
    link = page.get_attribute("#export-verify", "href")
    assert link is not None and link.startswith("/verify#src=")
    assert unquote(link.split("#src=", 1)[1]) == (
        "/portal/audit/export.json?id=" + quote(lot, safe="")
    )
    page.click("#export-verify")
    verdict = page.wait_for_selector('#verdict[data-done="true"]', timeout=60_000)
    assert verdict.get_attribute("data-ok") == "true", page.inner_text("#verdict")


def test_an_event_page_names_who_asserted_it(live_portal: LivePortal, page: Any) -> None:
    lot = _a_demo_lot(live_portal)
    live_portal.sign_in(page, "tuv-audit")
    page.goto(live_portal.url + "/portal/audit/trace?id=" + quote(lot, safe=""))
    page.locator("#events-table a.event-link").first.click()
    page.wait_for_selector("#asserted-by")
    assert page.inner_text("#asserted-by").startswith("operator")
    leaf = page.get_attribute("#record-link", "href")
    assert leaf is not None
    assert page.get_attribute("#receipt-download", "href") == leaf + "/receipt.json"
    assert page.locator("#mentioned a").count() >= 1


def test_an_auditor_sees_what_a_model_judged_and_recalls(
    live_portal: LivePortal, page: Any
) -> None:
    live_portal.sign_in(page, "tuv-audit")
    models = page.locator("#models tbody tr")
    assert models.count() >= 1
    page.locator("#models tbody tr", has_text="rul").first.locator("a").click()
    page.wait_for_selector("#cited")
    assert page.locator("#cited tbody tr[data-leaf]").count() >= 1
    assert page.locator("#cited a.verify-link").count() >= 1

    page.goto(live_portal.url + "/portal/audit")
    page.click("#recall-nc-form button")
    page.wait_for_selector("#recall-summary")
    assert "finished lot" in page.inner_text("#recall-summary")
    lot = _a_demo_lot(live_portal)
    page.goto(live_portal.url + "/portal/audit")
    page.fill("#recall-lot", lot)
    page.click("#recall-lot-form button")
    page.wait_for_selector("#finished")
    assert lot in page.inner_text("h1")


def test_a_supplier_is_refused_the_auditors_pages(live_portal: LivePortal, page: Any) -> None:
    lot = _a_demo_lot(live_portal)
    live_portal.sign_in(page, "acme-steel")
    for path in ("/portal/audit", "/portal/audit/trace?id=" + quote(lot, safe="")):
        response = page.goto(live_portal.url + path)
        assert response.status == 403
        assert lot not in page.content()
    assert page.locator('nav a[href="/portal/audit"]').count() == 0


def test_an_api_export_link_opened_in_a_browser_leads_through_sign_in(
    live_portal: LivePortal, page: Any
) -> None:
    """The export's API address, opened in a browser, used to show a 401 JSON document: the
    browser has no Bearer header. It now shows the way in, and lands on the same export."""
    lot = _a_demo_lot(live_portal)
    response = page.goto(
        f"{live_portal.url}/v1/genealogy/audit?id={quote(lot, safe='')}&format=html"
    )
    assert response.status == 401
    assert "Authorization: Bearer" in page.locator("#api-sign-in").inner_text()
    page.click("#to-portal")
    page.fill("#api_key", live_portal.keys["tuv-audit"])
    page.click("button[type=submit]")
    page.wait_for_selector("#signed-in")
    assert "/portal/audit/trace?id=" in page.url
    assert lot in page.locator("h1").inner_text()
    # A program calling the API still gets problem+json.
    r = httpx.get(f"{live_portal.url}/v1/genealogy/audit", params={"id": lot})
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
