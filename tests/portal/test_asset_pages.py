"""A maintenance partner in the portal, in a real browser: its assets, one engine's signed
predictions drawn with their intervals, an inspection's Grad-CAM overlay checked against its
record, and a webhook subscribed, delivered to and stopped from the page.

The data is made here through the service, as the server's models would make it: several
predictions of one engine at different cycles (the shipped RUL model on growing parts of a
C-MAPSS engine's history) and an inspection about it with its overlay kept."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from api.predictions import save_explanation, sign_prediction
from ml.shipped import SAMPLES
from tests.api.conftest import Hook
from tests.portal.conftest import LivePortal

pytestmark = pytest.mark.xdist_group("browser")
ASSET = "engine-portal-qa"


def _assign(portal: LivePortal, asset: str, maintainer: str) -> None:
    r = httpx.post(
        portal.url + "/v1/participants/assignments",
        json={"asset": asset, "maintainer": maintainer},
        headers={"Authorization": f"Bearer {portal.keys['operator']}"},
    )
    assert r.status_code in (201, 409), r.text


def _score(portal: LivePortal, asset: str, cuts: int = 4) -> tuple[list[int], int]:
    """Predictions of one sample engine at `cuts` points of its history, and an inspection
    with its overlay kept, all about `asset`; their leaf indexes."""
    from ml.data.cmapss import read_trajectories

    service = portal.running.service
    runner = service.runner
    rul = runner.predictor(runner.digest_for("rul"))
    sample = next((SAMPLES / "cmapss").glob("test_FD001*.txt"))
    traj = read_trajectories(sample)
    history = traj.rows[max(traj.engine_slices().values(), key=lambda s: len(traj.rows[s]))]
    predictions = []
    for k in range(1, cuts + 1):
        part = history[: len(history) * k // cuts]
        payload = rul.predict_window(part, asset=asset, source=sample.name)
        predictions.append(sign_prediction(service, "prediction", payload, "operator")["index"])
    defect = runner.predictor(runner.digest_for("defect"))
    payload, png = defect.predict_image_with_overlay(sorted((SAMPLES / "neu").glob("*.jpg"))[0])
    payload["asset"] = asset
    inspection = sign_prediction(service, "inspection", payload, "operator")["index"]
    save_explanation(service, inspection, png)
    return predictions, inspection


def test_a_maintainer_follows_its_engine_and_its_webhook(
    live_portal: LivePortal, page: Any
) -> None:
    hook = Hook()
    try:
        _assign(live_portal, ASSET, "fixit-services")
        live_portal.sign_in(page, "fixit-services")
        assert page.url.endswith("/portal/assets")
        assert page.locator(f'#assets tr[data-asset="{ASSET}"]').count() == 1

        # Subscribe: the secret is shown once, on the answer to the form.
        page.fill("#webhook-url", hook.url)
        page.click("#subscribe-form button[type=submit]")
        page.wait_for_selector("#sub-secret")
        assert len(page.inner_text("#sub-secret").strip()) == 64
        sub_id = page.inner_text("#sub-id").strip()

        predictions, inspection = _score(live_portal, ASSET)

        # The plot: one point per prediction, each a link to its row, both interval bands.
        page.goto(f"{live_portal.url}/portal/assets/{ASSET}")
        plot = page.locator("svg#rul-plot")
        assert plot.count() == 1
        assert page.locator('#rul-plot polygon.band[data-level="80"]').count() == 1
        assert page.locator('#rul-plot polygon.band[data-level="90"]').count() == 1
        assert page.locator("#rul-plot polyline.rul-line").count() == 1
        points = page.locator("#rul-plot a.point-link")
        assert sorted(
            int(points.nth(i).get_attribute("data-index")) for i in range(points.count())
        ) == sorted(predictions)
        legend = plot.text_content() or ""
        assert "80 % interval" in legend and "90 % interval" in legend
        points.first.click()
        assert page.url.endswith(f"#rec-{points.first.get_attribute('data-index')}")
        for index in predictions:
            row = page.locator(f"#predictions tr#rec-{index}")
            assert row.locator("a.receipt-link").get_attribute("href") == (
                f"/portal/records/{index}/receipt.json"
            )

        # The inspection's overlay: shown, and said to be the image its record signs.
        card = page.locator(f"#inspections .card#rec-{inspection}")
        assert card.get_attribute("data-overlay") == "match"
        assert "matches the signed digest" in card.inner_text()
        width = card.locator("img.gradcam").evaluate("img => img.complete && img.naturalWidth")
        assert width and width > 0

        # Deliveries of this engine's records reach the hook; the log says so.
        deadline = time.monotonic() + 30
        while len(hook.calls) < len(predictions) + 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(hook.calls) >= len(predictions) + 1
        page.goto(f"{live_portal.url}/portal/assets/webhooks/{sub_id}")
        deadline = time.monotonic() + 15
        while page.locator("#deliveries .badge.delivered").count() < len(predictions) + 1:
            assert time.monotonic() < deadline, page.inner_text("#deliveries")
            time.sleep(0.3)
            page.reload()
        delivered = {
            int(page.locator("#deliveries tr[data-record]").nth(i).get_attribute("data-record"))
            for i in range(page.locator("#deliveries tr[data-record]").count())
        }
        assert set(predictions) | {inspection} <= delivered

        # Unsubscribe from the page.
        page.goto(f"{live_portal.url}/portal/assets")
        page.locator(
            f'#subscriptions tr[data-subscription="{sub_id}"] .unsubscribe-form button'
        ).click()
        page.wait_for_selector("#unsubscribed")
        row = page.locator(f'#subscriptions tr[data-subscription="{sub_id}"]')
        assert "stopped" in row.inner_text()
        assert row.locator(".unsubscribe-form").count() == 0
    finally:
        hook.close()


def test_a_maintainer_is_refused_an_asset_that_is_not_its(
    live_portal: LivePortal, page: Any
) -> None:
    live_portal.sign_in(page, "fixit-services")
    for asset in ("no-such-engine", "ENGINE-1"):
        response = page.goto(f"{live_portal.url}/portal/assets/{asset}")
        assert response.status == 403
        assert page.inner_text("#error-detail") == "no such asset assigned to this participant"
    live_portal.sign_in(page, "tuv-audit")  # reads every record, but services no asset
    for path in ("/portal/assets", "/portal/assets/engine-1"):
        assert page.goto(live_portal.url + path).status == 403
    assert page.locator('nav a[href="/portal/assets"]').count() == 0
