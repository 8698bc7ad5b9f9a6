"""The README's screenshots, taken from the demo plant in headless Chromium.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Seeds a fresh demo (api/demo/live.py, the same code as `forgeproof up --demo`) in a temporary
home, waits until its records are anchored, then photographs three pages: the in-browser
verifier checking a receipt, the auditor's genealogy of a finished lot, and the maintenance
partner's page of an engine (its RUL predictions with their intervals).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page  # noqa: E402

from api.demo.live import LiveDemo, live_demo  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium is not installed: run `make services`")
    with tempfile.TemporaryDirectory() as tmp, live_demo(Path(tmp) / "home") as demo:
        _wait_anchored(demo)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            _verify(demo, page, Path(tmp), args.out / "verify.png")
            _sign_in(demo, page, "tuv-audit")
            _genealogy(demo, page, args.out / "genealogy.png")
            page.context.clear_cookies()
            _sign_in(demo, page, "fixit-services")
            _asset(demo, page, args.out / "asset.png")
            _inspections(demo, page, args.out / "inspections.png")
            browser.close()
    for name in ("verify", "genealogy", "asset", "inspections"):
        print(args.out / f"{name}.png")


def _wait_anchored(demo: LiveDemo, timeout_s: float = 60) -> None:
    log = demo.running.service.dep.log
    deadline = time.monotonic() + timeout_s
    while True:
        cp = log.latest_checkpoint()
        if cp is not None and cp.anchored and cp.size == log.size:
            return
        if time.monotonic() > deadline:
            sys.exit("the demo's records were not anchored in time")
        time.sleep(0.2)


def _sign_in(demo: LiveDemo, page: Page, who: str) -> None:
    page.goto(f"{demo.url}/signin")
    page.fill("#api_key", demo.keys[who])
    page.click("button[type=submit]")
    page.wait_for_selector("#signed-in")


def _verify(demo: LiveDemo, page: Page, tmp: Path, out: Path) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {demo.keys['acme-steel']}"}
    listing = httpx.get(f"{demo.url}/v1/records?limit=1", headers=headers).json()
    index = listing["data"][0]["index"]
    receipt = httpx.get(f"{demo.url}/v1/records/{index}/receipt", headers=headers).json()
    path = tmp / f"receipt-{index}.json"
    path.write_text(json.dumps(receipt, indent=2))
    page.goto(f"{demo.url}/verify")
    page.set_input_files("#file", str(path))
    page.wait_for_selector("#verdict[data-ok]")
    page.screenshot(path=str(out), full_page=True)


def _genealogy(demo: LiveDemo, page: Page, out: Path) -> None:
    page.goto(f"{demo.url}/portal/audit")
    lot = _finished_lot(demo)
    page.set_viewport_size({"width": 1600, "height": 1000})
    page.goto(f"{demo.url}/portal/audit/trace?id={lot}")
    page.wait_for_selector("svg")
    page.screenshot(path=str(out), full_page=False)
    page.set_viewport_size({"width": 1280, "height": 900})


def _finished_lot(demo: LiveDemo) -> str:
    """A lot the demo's plant finished: the output of its last stage."""
    from api.demo.synthetic import PlantConfig, plant_events

    events = list(plant_events(PlantConfig(runs=8, stages=4, raw_lot_uses=3, seed=5)))
    outputs = [
        q["epcClass"]
        for e in events
        for q in e.get("outputQuantityList", [])
        if e.get("type") == "TransformationEvent"
    ]
    return str(outputs[-1])


def _asset(demo: LiveDemo, page: Page, out: Path) -> None:
    page.goto(f"{demo.url}/portal/assets")
    page.goto(f"{demo.url}/portal/assets/engine-3")
    page.wait_for_selector("svg")
    page.screenshot(path=str(out), full_page=True)


def _inspections(demo: LiveDemo, page: Page, out: Path) -> None:
    """The rolling mill's inspections: each verdict with its Grad-CAM overlay."""
    from api.demo import MILL

    page.goto(f"{demo.url}/portal/assets/{MILL}")
    page.wait_for_selector("img")
    page.locator("h2", has_text="Inspections").scroll_into_view_if_needed()
    page.screenshot(path=str(out), full_page=False)


if __name__ == "__main__":
    main()
