"""The auditor's export: receipts verify offline, tampering shows, the page stands alone."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ledger.epcis.audit import audit_bundle, audit_html, verify_audit, write_audit
from ledger.epcis.errors import NotCheckpointed
from ledger.epcis.genealogy import trace
from ledger.errors import VerificationError
from tests.ledger.conftest import DOMAIN
from tests.ledger.epcis.conftest import CapturedPlant, Repo

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "verify_receipt.py"


def _independent() -> Any:
    spec = importlib.util.spec_from_file_location("verify_receipt", EXAMPLE)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bundle(plant: CapturedPlant) -> dict[str, Any]:
    g = trace(plant.repo.store, plant.facts.runs[4][1])  # a mid-stage lot: up and down
    out = audit_bundle(plant.repo.log, g, DOMAIN)
    return json.loads(json.dumps(out))  # as an auditor reads it from disk


def test_bundle_verifies_offline(plant: CapturedPlant, bundle: dict[str, Any]) -> None:
    report = verify_audit(bundle)
    assert report.ok, report.problems
    report.raise_for_problems()
    g = trace(plant.repo.store, plant.facts.runs[4][1])
    assert {e["leaf_index"] for e in bundle["events"]} == set(g.events)
    assert len(bundle["checkpoints"]) == 1
    independent = _independent()
    for item in bundle["events"]:
        assert independent.verify(item["receipt"]) == ["canonical", "signature", "inclusion"]
        assert item["receipt"]["checkpoint"]["size"] == bundle["checkpoints"][0]["size"]


def _drop_edge_event(b: dict[str, Any]) -> None:
    leaf = b["genealogy"]["edges"][0]["events"][0]
    b["events"] = [e for e in b["events"] if e["leaf_index"] != leaf]


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        (lambda b: b["events"][0]["receipt"]["record"]["payload"].update(bizStep="shipping"), ""),
        (lambda b: b["events"][0].update(eventID="ni:///sha-256;" + "0" * 64 + "?ver=CBV2.0"),
         "bundle says"),
        (lambda b: b["genealogy"]["edges"][0].update(target="urn:epc:class:lgtin:1.2.3"),
         "does not follow from its events"),
        (lambda b: _drop_edge_event(b), "cites an event not in the bundle"),
        (lambda b: b["checkpoints"][0].update(root="0x" + "00" * 32), "unlisted checkpoint"),
        (lambda b: b["events"][0]["summary"].update(asserted_by="someone-else"),
         "its record is epcis-repository's"),
    ],
)  # fmt: skip
def test_tampering_shows(bundle: dict[str, Any], tamper: Any, problem: str) -> None:
    forged = copy.deepcopy(bundle)
    tamper(forged)
    report = verify_audit(forged)
    assert not report.ok
    assert problem in " ".join(report.problems) or any(not v.ok for v in report.events.values())
    with pytest.raises(VerificationError):
        report.raise_for_problems()


def test_checkpoint_must_cover_the_events(repo: Repo) -> None:
    doc = {
        "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
        "type": "ObjectEvent",
        "eventTime": "2026-02-01T00:00:00Z",
        "eventTimeZoneOffset": "+00:00",
        "epcList": ["urn:epc:id:sgtin:4012345.000123.1"],
        "action": "OBSERVE",
    }
    repo.capture(doc)
    g = trace(repo.store, "urn:epc:id:sgtin:4012345.000123.1")
    with pytest.raises(NotCheckpointed, match="no checkpoint"):
        audit_bundle(repo.log, g, DOMAIN)
    cp = repo.log.checkpoint()
    repo.capture({**doc, "eventTime": "2026-02-02T00:00:00Z"})
    g = trace(repo.store, "urn:epc:id:sgtin:4012345.000123.1")
    with pytest.raises(NotCheckpointed, match="does not cover leaf 1"):
        audit_bundle(repo.log, g, DOMAIN, checkpoint=cp)
    repo.log.checkpoint()
    assert verify_audit(audit_bundle(repo.log, g, DOMAIN)).ok


def test_page_is_self_contained(bundle: dict[str, Any], tmp_path: Path) -> None:
    json_path, html_path = write_audit(bundle, tmp_path, name="lot")
    page = html_path.read_text()
    assert json.loads(json_path.read_text()) == bundle
    # Nothing is fetched: no external scripts, styles, images or fonts.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "@import" not in page and "url(http" not in page
    embedded = re.search(r'<script type="application/json" id="bundle">(.*?)</script>', page, re.S)
    assert embedded and json.loads(embedded.group(1)) == bundle
    assert page.count('<g class="node') == len(bundle["genealogy"]["nodes"])
    assert page.count('<path class="edge ') == len(bundle["genealogy"]["edges"])
    assert "node lot root" in page
    assert audit_html(bundle) == page


@pytest.mark.browser
def test_page_renders_in_chromium(bundle: dict[str, Any], tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    # `make services` installs it (Debian's package): missing, this fails rather than skips.
    assert browser is not None, "chromium is not installed: run `make services`"
    _, html_path = write_audit(bundle, tmp_path)
    png = tmp_path / "page.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         f"--screenshot={png}", "--window-size=1400,900", html_path.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    from PIL import Image

    with Image.open(png) as img:
        grey = img.convert("L")
        extrema: Any = grey.getextrema()
        colours: Any = img.convert("RGB").getcolors(maxcolors=1 << 20) or []
    lo, hi = extrema
    assert hi - lo > 100  # something was drawn
    assert any(r > 150 and g < 80 and b < 80 for _, (r, g, b) in colours)  # a red flag, too
