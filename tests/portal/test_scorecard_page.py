"""The drift demonstration in the demo plant: the FD001 model's scorecard on FD002 engines, its
figure and bundle on the model page, and the alarm in the maintainer's feed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.portal.conftest import LivePortal

pytestmark = pytest.mark.xdist_group("browser")
SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "examples" / "recompute_scorecard.py"


def _get(portal: LivePortal, who: str, path: str, **params: Any) -> Any:
    r = httpx.get(
        portal.url + path,
        params=params,
        headers={"Authorization": f"Bearer {portal.keys[who]}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r.json()


def _rul_model(portal: LivePortal) -> dict[str, Any]:
    models = _get(portal, "tuv-audit", "/v1/models", task="rul")
    return dict(models[0])


def test_the_drift_alarm_reaches_the_maintainers_feed(live_portal: LivePortal) -> None:
    digest = _rul_model(live_portal)["digest"]
    card = _get(live_portal, "tuv-audit", f"/v1/models/{digest}/scorecard")
    c90 = card["overall"]["coverage"]["90"]
    assert card["overall"]["n"] >= 10 and c90["p_value"] < 0.01
    feed = _get(live_portal, "fixit-services", "/v1/feed", limit=500)["data"]
    alarms = [r for r in feed if r["kind"] == "alarm"]
    assert alarms, "the maintainer of the FD002 engines sees the model's alarm"
    payload = alarms[0]["record"]["payload"]
    assert payload["model_manifest_digest"] == digest and payload["state"] == "raised"
    assert any(a.startswith("fd002-engine-") for a in payload["affected_assets"])


def test_the_model_page_shows_the_scorecard_and_its_bundle_recomputes(
    live_portal: LivePortal, page: Any, tmp_path: Path
) -> None:
    live_portal.sign_in(page, "tuv-audit")
    page.locator("#models tbody tr", has_text="rul").first.locator("a").click()
    page.wait_for_selector("#scorecard")
    assert page.locator("#scorecard-figure svg rect.realised").count() == 2
    assert "coverage" in page.inner_text("#scorecard-overall")
    with page.expect_download() as info:
        page.click("#scorecard-bundle")
    path = tmp_path / "bundle.json"
    info.value.save_as(path)
    bundle = json.loads(path.read_text())
    assert bundle["format"] == "forgeproof-scorecard/1"
    ran = subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_the_maintainer_portal_shows_the_alarm(live_portal: LivePortal, page: Any) -> None:
    live_portal.sign_in(page, "fixit-services")
    page.goto(live_portal.url + "/portal/assets")
    page.wait_for_selector("#model-alarms")
    text = page.inner_text("#model-alarms")
    assert "coverage_90" in text and "rul" in text
    page.locator("#model-alarms a").first.click()
    assert page.locator("text=alarm").count() >= 1  # the signed record opens for the maintainer
