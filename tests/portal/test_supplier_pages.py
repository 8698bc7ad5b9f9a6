"""A supplier in the portal: its own records and nothing else, uploads of records signed with
`forgeproof sign` (good and tampered lines), receipts to download and verify."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from ledger.ingest import submission_json
from ledger.records import Record
from tests.portal.conftest import LivePortal

pytestmark = pytest.mark.xdist_group("browser")


def _signed_file(portal: LivePortal, tmp_path: Path, lots: list[str], who: str) -> Path:
    """What `forgeproof sign --as WHO --kind supplier_record` writes: one submission a line."""
    dep = portal.running.service.dep
    signer = dep.signer(who)
    lines = []
    for lot in lots:
        record = Record.new(
            "supplier_record", {"lot": lot, "qty": 5}, participant=who, address=signer.address
        )
        lines.append(json.dumps(submission_json(record, signer.sign(dep.domain, record))))
    path = tmp_path / "signed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_supplier_lists_only_its_own_records(live_portal: LivePortal, page: Any) -> None:
    live_portal.sign_in(page, "acme-steel")
    rows = page.locator("#records tbody tr[data-index]")
    assert rows.count() > 0
    shown = {tuple(cells.split("\t")[1:3]) for cells in rows.all_inner_texts()}
    # Its own records, and the plant's demand forecasts of the products assigned to it
    # (api/demo/demand.py; tests/api/test_forecasts.py).
    assert {producer for _, producer in shown} <= {"acme-steel", "operator"}
    assert {kind for kind, producer in shown if producer != "acme-steel"} <= {"forecast"}
    assert any(producer == "acme-steel" for _, producer in shown)


def test_a_supplier_cannot_open_another_suppliers_record(
    live_portal: LivePortal, page: Any
) -> None:
    log = live_portal.running.service.dep.log
    theirs = next(i for i in range(log.size) if log.get(i).participant == "nordic-bearings")
    live_portal.sign_in(page, "acme-steel")
    for path in (f"/portal/records/{theirs}", f"/portal/records/{theirs}/receipt.json"):
        response = page.goto(live_portal.url + path)
        assert response.status == 403
        assert "NORD" not in page.content()  # nothing of the record: not even its lot
    # ... and no page links to it.
    page.goto(live_portal.url + "/portal/records?limit=200")
    assert page.locator(f'a[href="/portal/records/{theirs}"]').count() == 0


def test_upload_takes_good_lines_and_refuses_tampered_ones(
    live_portal: LivePortal, page: Any, tmp_path: Path
) -> None:
    path = _signed_file(live_portal, tmp_path, ["UP-1", "UP-2", "UP-3"], "acme-steel")
    lines = path.read_text().splitlines()
    tampered = json.loads(lines[1])
    tampered["record"]["payload"]["qty"] = 500  # edited after signing
    lines[1] = json.dumps(tampered)
    other = _signed_file(live_portal, tmp_path, ["NOT-MINE"], "nordic-bearings").read_text()
    path.write_text("\n".join([*lines, other.strip(), "{not json"]) + "\n")
    before = live_portal.running.service.dep.log.size

    live_portal.sign_in(page, "acme-steel")
    page.set_input_files("#file", str(path))
    page.click("#upload-form button[type=submit]")
    summary = page.locator("#upload-summary")
    assert summary.get_attribute("data-accepted") == "2"
    assert summary.get_attribute("data-refused") == "3"
    results = page.locator("#upload-results tbody tr")
    assert [r.get_attribute("data-ok") for r in results.all()] == [
        "true", "false", "true", "false", "false",
    ]  # fmt: skip
    assert "signature" in results.nth(1).inner_text().lower()
    assert "nordic-bearings" in results.nth(3).inner_text()
    assert live_portal.running.service.dep.log.size == before + 2

    # The same file again: the good lines are duplicates, nothing is appended twice.
    page.goto(live_portal.url + "/portal/records")
    page.set_input_files("#file", str(path))
    page.click("#upload-form button[type=submit]")
    assert page.locator("#upload-summary").get_attribute("data-accepted") == "2"
    assert "duplicate" in page.locator("#upload-results").inner_text()
    assert live_portal.running.service.dep.log.size == before + 2


def test_receipt_download_once_anchored(live_portal: LivePortal, page: Any) -> None:
    live_portal.sign_in(page, "acme-steel")
    first = page.locator("#records tbody tr[data-index]").first
    index = first.get_attribute("data-index")
    deadline = time.monotonic() + 20
    while True:
        page.goto(f"{live_portal.url}/portal/records/{index}")
        if page.locator("#record-status").inner_text() == "anchored":
            break
        assert time.monotonic() < deadline, "the demo's records were never anchored"
        time.sleep(0.5)
    with page.expect_download() as download:
        page.click("#receipt-download")
    receipt = json.loads(Path(download.value.path()).read_text())
    assert receipt["leaf_index"] == int(index)
    assert receipt["anchor"] is not None
    # "Verify in this browser": the page fetches the receipt and checks it in JavaScript.
    page.click("#receipt-verify")
    page.wait_for_selector("#verdict[data-done=true]")
    assert page.locator("#verdict").get_attribute("data-ok") == "true"
    for check in ("format", "canonical", "signature", "inclusion"):
        assert page.locator(f'[data-check="{check}"]').first.get_attribute("data-status") == "ok"


def test_a_supplier_is_kept_off_other_roles_pages(live_portal: LivePortal, page: Any) -> None:
    live_portal.sign_in(page, "acme-steel")
    for path in ("/portal/operator", "/portal/audit", "/portal/assets"):
        response = page.goto(live_portal.url + path)
        assert response.status == 403, path
        assert page.locator("#error-detail").get_attribute("data-code") == "forbidden"
    # ... and the navigation offers none of them.
    nav = page.locator("nav").inner_text()
    assert "Operator" not in nav and "Provenance" not in nav and "Assets" not in nav
