"""Headless Chromium for the portal's browser tests (Playwright over the Debian package that
`scripts/services.sh` installs: no browser download). A missing Chromium fails, never skips."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from api.demo.live import LiveDemo, live_demo


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError(
            "chromium is not installed: run `make services` (apt-get install chromium)"
        )
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module: Playwright's sync API keeps an event loop running while it
    is open, which would refuse `asyncio.run` to whatever test the worker runs next."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"]
        )
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    p = context.new_page()
    yield p
    context.close()


class LivePortal(LiveDemo):
    """A real `forgeproof up --demo` on a free loopback port (api/demo/live.py): the demo plant
    seeded through the same code paths as real use, the sequencer anchoring every half second."""

    def sign_in(self, page: Any, who: str) -> None:
        page.goto(f"{self.url}/signin")
        page.fill("#api_key", self.keys[who])
        page.click("button[type=submit]")
        page.wait_for_selector("#signed-in")


@pytest.fixture(scope="session")
def live_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePortal]:
    with live_demo(tmp_path_factory.mktemp("portal") / "home") as demo:
        yield LivePortal(demo.url, demo.keys, demo.running)
