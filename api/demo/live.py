"""A demo plant served on a loopback port from a thread: what the portal's browser tests, the
README's screenshots and the in-browser benchmark drive. The same `build` and `seed` as
`forgeproof up --demo`; only the server runs in a thread instead of owning the process."""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.cli import DEMO_PASSPHRASE
from ledger.keystore import PASSPHRASE_ENV


@dataclass
class LiveDemo:
    url: str
    keys: dict[str, str]  # participant (and "operator") -> API key
    running: Any  # api.server.Running


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def live_demo(home: Path, *, checkpoint_interval_s: float = 0.5) -> Iterator[LiveDemo]:
    """Seed a demo plant in `home` and serve it until the block ends."""
    import uvicorn
    from rich.console import Console

    from api.config import Settings
    from api.demo import seed
    from api.server import build

    os.environ.setdefault(PASSPHRASE_ENV, DEMO_PASSPHRASE)
    settings = Settings(
        home=home,
        checkpoint_interval_s=checkpoint_interval_s,
        allow_private_webhooks=True,
        sequencer=True,
    )
    running = build(settings)
    try:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        keys = seed(running, base_url=url, console=Console(file=io.StringIO()))
        running.start_background()
        config = uvicorn.Config(running.app, host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="portal", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the demo server did not start")
            time.sleep(0.05)
        try:
            yield LiveDemo(url, keys, running)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    finally:
        running.close()
