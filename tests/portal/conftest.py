"""Headless Chromium for the portal's browser tests (Playwright over the Debian package that
`scripts/services.sh` installs: no browser download). A missing Chromium fails, never skips."""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from ledger.cli import DEMO_PASSPHRASE
from ledger.keystore import PASSPHRASE_ENV


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError(
            "chromium is not installed: run `make services` (apt-get install chromium)"
        )
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
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


@dataclass
class LivePortal:
    """A real `forgeproof up --demo` on a free loopback port: the demo plant seeded through the
    same code paths as real use, the sequencer anchoring every half second."""

    url: str
    keys: dict[str, str]  # participant (and "operator") -> API key
    running: Any

    def sign_in(self, page: Any, who: str) -> None:
        page.goto(f"{self.url}/signin")
        page.fill("#api_key", self.keys[who])
        page.click("button[type=submit]")
        page.wait_for_selector("#signed-in")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def live_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePortal]:
    import uvicorn
    from rich.console import Console

    from api.config import Settings
    from api.demo import seed
    from api.server import build

    os.environ.setdefault(PASSPHRASE_ENV, DEMO_PASSPHRASE)
    home = tmp_path_factory.mktemp("portal") / "home"
    settings = Settings(
        home=home, checkpoint_interval_s=0.5, allow_private_webhooks=True, sequencer=True
    )
    running = build(settings)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    keys = seed(running, base_url=url, console=Console(file=io.StringIO()))
    running.start_background()
    server = uvicorn.Server(
        uvicorn.Config(running.app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the portal did not start")
        time.sleep(0.05)
    try:
        yield LivePortal(url, keys, running)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        running.close()
