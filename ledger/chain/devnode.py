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

from eth_utils import to_checksum_address
from web3 import Web3
from web3.types import RPCEndpoint

from ledger.errors import ChainUnavailable
from ledger.retry import Backoff, NotYet, call_with_retry, is_not_yet
from ledger.settings import LedgerSettings

REPO = Path(__file__).resolve().parents[2]
HARDFORK = "prague"
STARTUP_POLL_S = 0.05  # how often a starting node is asked whether it answers


def find_anvil(configured: str | None = None) -> str | None:
    """The anvil binary: `configured` (default $FORGEPROOF_ANVIL, a path or a name on PATH),
    else node_modules/.bin/anvil, else `anvil` on PATH; None if absent."""
    if configured is None:
        configured = LedgerSettings.read().anvil
    candidate = configured or str(REPO / "node_modules" / ".bin" / "anvil")
    if Path(candidate).exists():
        return candidate
    return shutil.which(configured or "anvil")


def native(binary: str) -> str:
    """The anvil executable itself when `binary` is npm's launcher (a node script that runs the
    platform package's binary as its child and exits on SIGINT before the node has written its
    state); `binary` otherwise."""
    launcher = Path(binary).resolve()
    if launcher.suffix != ".mjs":
        return binary
    found = sorted(launcher.parent.parent.glob("anvil-*/bin/anvil"))
    return str(found[0]) if found else binary


def fund_dev_account(w3: Web3, address: str, wei: int = 10**21) -> None:
    """On a development node (anvil), give `address` `wei` of gas money if it has none; any
    other node ignores the request (fund the account yourself there).

    Raises:
        what web3 raises when the node cannot be reached.
    """
    who = to_checksum_address(address)
    if w3.eth.get_balance(who) == 0:
        # A node without anvil's methods answers with an error object, which we ignore.
        w3.provider.make_request(RPCEndpoint("anvil_setBalance"), [who, hex(wei)])


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
        self._probe = Web3(
            Web3.HTTPProvider(
                self.url, request_kwargs={"timeout": 1}, exception_retry_configuration=None
            )
        )

    @classmethod
    def start(
        cls,
        *extra_args: str,
        binary: str | None = None,
        port: int | None = None,
        startup_timeout: float = 30.0,
    ) -> AnvilNode:
        """Start anvil and wait until it answers.

        Args:
            extra_args: more anvil arguments (`--state FILE`, say).
            binary: the anvil binary (default: `find_anvil()`).
            port: the port to listen on (default: a free one).
            startup_timeout: seconds to wait for its first answer.

        Raises:
            ChainUnavailable: no anvil binary, or it exited or stayed silent.
        """
        binary = binary or find_anvil()
        if binary is None:
            raise ChainUnavailable("anvil not found: run `npm install` or set FORGEPROOF_ANVIL")
        binary = native(binary)
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

        def answering() -> None:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise ChainUnavailable(f"anvil exited with code {proc.returncode}: {err}")
            if not node.answers():
                raise NotYet

        try:
            call_with_retry(
                answering,
                backoff=Backoff(
                    initial=STARTUP_POLL_S,
                    cap=STARTUP_POLL_S,
                    attempts=None,
                    deadline=startup_timeout,
                ),
                transient=is_not_yet,
                give_up=lambda _, __: ChainUnavailable(f"anvil did not answer on {node.url}"),
            )
        except BaseException:
            node.stop()
            raise
        return node

    def answers(self) -> bool:
        """Whether the node answers JSON-RPC now (one request, 1 s at most)."""
        return self._probe.is_connected()

    def send(self, signum: int) -> None:
        """Send `signum` to the node (and the npm launcher it runs under)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signum)

    def stop(self, *, timeout: float = 5.0) -> None:
        """Terminate the node (kill it after `timeout` s) and release its pipe.

        SIGINT first: with `--state FILE` anvil writes its state on the way out. The whole
        process group is waited for: npm's launcher exits at once, the node itself only once
        its state is written (killing it then would leave half a file)."""
        if self.proc.poll() is None or self._group_alive():
            self.send(signal.SIGINT)
            deadline = time.monotonic() + timeout
            while self._group_alive() and time.monotonic() < deadline:
                time.sleep(0.02)
                self.proc.poll()  # reap the launcher, or the group never looks empty
        self.send(signal.SIGKILL)  # anything of the group still there after `timeout`
        if self.proc.poll() is None:
            self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

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
