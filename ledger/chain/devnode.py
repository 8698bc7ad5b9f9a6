"""A local anvil node for tests, benchmarks and demos (`@foundry-rs/anvil` from npm).

    with AnvilNode.start() as node:
        chain = ChainClient.from_url(node.url, private_key=...)

It listens on a free loopback port, runs the fork eth-tester's py-evm runs (so gas figures
agree between the two chains), and is stopped (only it) on exit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from ledger.errors import ChainUnavailable

REPO = Path(__file__).resolve().parents[2]
HARDFORK = "prague"


def find_anvil() -> str | None:
    """$FORGEPROOF_ANVIL, else node_modules/.bin/anvil, else `anvil` on PATH; None if absent."""
    configured = os.environ.get("FORGEPROOF_ANVIL")
    candidate = configured or str(REPO / "node_modules" / ".bin" / "anvil")
    if Path(candidate).exists():
        return candidate
    return shutil.which(configured or "anvil")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AnvilNode:
    """An anvil child process answering JSON-RPC at `url`."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    @classmethod
    def start(
        cls,
        *extra_args: str,
        binary: str | None = None,
        port: int | None = None,
        startup_timeout: float = 30.0,
    ) -> AnvilNode:
        """Start anvil and wait until it answers.

        Raises:
            ChainUnavailable: no anvil binary, or it exited or stayed silent.
        """
        binary = binary or find_anvil()
        if binary is None:
            raise ChainUnavailable("anvil not found: run `npm install` or set FORGEPROOF_ANVIL")
        port = port or free_port()
        proc = subprocess.Popen(
            [binary, "--host", "127.0.0.1", "--port", str(port), "--hardfork", HARDFORK]
            + ["--silent", *extra_args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # npm's `anvil` is a node script that runs the binary as its child: signals go to
            # the process group, or a kill -9 would leave the node itself running.
            start_new_session=True,
        )
        node = cls(proc, port)
        deadline = time.monotonic() + startup_timeout
        while not node.answers():
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                node.stop()
                raise ChainUnavailable(f"anvil exited with code {proc.returncode}: {err}")
            if time.monotonic() > deadline:
                node.stop()
                raise ChainUnavailable(f"anvil did not answer on {node.url}")
            time.sleep(0.05)
        return node

    def answers(self) -> bool:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        try:
            return requests.post(self.url, json=body, timeout=1).ok
        except requests.RequestException:
            return False

    def send(self, signum: int) -> None:
        """Send `signum` to the node (and the npm launcher it runs under)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signum)

    def stop(self, *, timeout: float = 5.0) -> None:
        """Terminate the node (kill it after `timeout` s) and release its pipe.

        SIGINT first: with `--state FILE` anvil writes its state on the way out."""
        if self.proc.poll() is None:
            self.send(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.send(signal.SIGKILL)  # anything of the group still there
        if self.proc.stderr:
            self.proc.stderr.close()

    def kill(self) -> None:
        """kill -9: gone at once, nothing saved."""
        self.send(signal.SIGKILL)
        self.proc.wait()

    def __enter__(self) -> AnvilNode:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
