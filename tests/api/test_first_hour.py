"""A new user's first hour: `init`, `up`, `up --demo`, the keys and commands they are handed, and
the docs they read, each as they would meet it."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from typer.testing import CliRunner

from api.cli import app
from api.config import Settings
from api.demo import seed
from api.main import create_app
from api.server import Running, build
from api.service import Service
from ledger.deployment import Deployment
from tests.conftest import REPO

runner = CliRunner()
BASE = "http://127.0.0.1:8000"


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


@dataclass
class Seeded:
    running: Running
    keys: dict[str, str]
    text: str  # what `up --demo` printed, at 80 columns

    def get(self, path: str, key: str) -> httpx.Response:
        return TestClient(self.running.app).get(path, headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    running = build(Settings(home=tmp_path / "demo", checkpoint_every=10_000))
    try:
        out = io.StringIO()
        keys = seed(running, base_url=BASE, console=Console(file=out, width=80))
        yield Seeded(running, keys, out.getvalue())
    finally:
        running.close()


def test_demo_commands_are_printed_whole_at_80_columns(seeded: Seeded) -> None:
    """Issue: every curl line was broken at the terminal's width, and failed when pasted."""
    lines = seeded.text.splitlines()
    curls = [shlex.split(line) for line in lines if line.strip().startswith("curl ")]
    assert len(curls) >= 5
    for words in curls:
        assert words[0] == "curl"
        urls = [w for w in words if w.startswith(BASE + "/v1/")]
        assert len(urls) == 1, words
        headers = [words[i + 1] for i, w in enumerate(words) if w == "-H"]
        assert any(re.fullmatch(r"Authorization: Bearer \$(AUDITOR|MAINT)", h) for h in headers)
    exports = dict(
        line.strip().removeprefix("export ").split("=", 1)
        for line in lines
        if line.strip().startswith("export ")
    )
    assert exports == {
        "AUDITOR": seeded.keys["tuv-audit"],
        "MAINT": seeded.keys["fixit-services"],
    }
    for who, key in seeded.keys.items():
        assert f"{who} " in seeded.text and any(line.split()[-1:] == [key] for line in lines)


def test_demo_receipt_response_verifies_with_the_cli(seeded: Seeded, tmp_path: Path) -> None:
    """The response of GET .../receipt, saved as the demo says (`> r.json`), is what
    `forgeproof verify r.json --offline` takes, unedited."""
    curl = next(line for line in seeded.text.splitlines() if "/receipt > r.json" in line)
    path = next(w for w in shlex.split(curl) if w.startswith(BASE)).removeprefix(BASE)
    response = seeded.get(path, seeded.keys["tuv-audit"])
    assert response.status_code == 200 and response.json()["status"] == "anchored"
    saved = tmp_path / "r.json"
    saved.write_bytes(response.content)
    out = run("verify", str(saved), "--offline")
    assert "verified offline: not checked: key (chain), checkpoint, anchor" in out


def test_seeding_again_appends_nothing_and_replaces_the_demo_keys(seeded: Seeded) -> None:
    """Issue: `up --demo` on an existing home seeded a second plant on top of the first."""
    dep = seeded.running.service.dep
    size = dep.log.committed_size()
    participants = len(dep.registry.participants())
    out = io.StringIO()
    again = seed(seeded.running, base_url=BASE, console=Console(file=out, width=80))
    text = out.getvalue()
    assert "holds the demo plant already: nothing appended" in text
    assert "5 earlier ones are revoked" in text
    assert dep.log.committed_size() == size
    assert len(dep.registry.participants()) == participants
    assert set(again) == set(seeded.keys) and not set(again.values()) & set(seeded.keys.values())
    time.sleep(0.6)  # the key cache re-reads a key after 0.5 s
    for who in seeded.keys:
        assert seeded.get("/v1/records?limit=1", seeded.keys[who]).status_code == 401, who
        assert seeded.get("/v1/records?limit=1", again[who]).status_code == 200, who
    assert again["tuv-audit"] in text and f"export AUDITOR={again['tuv-audit']}" in text


def test_init_then_api_keys_create_gives_keys_the_app_accepts(tmp_path: Path) -> None:
    """`forgeproof init`, then `forgeproof api-keys create` with no server running: both
    keys authenticate against the app `forgeproof up` builds on that home."""
    h = tmp_path / "plant"
    out = run("init", "--home", str(h))
    operator = next(w for w in out.split() if w.startswith("fp_"))
    run("participants", "add", "acme", "--role", "supplier", "--home", str(h))
    created = runner.invoke(
        app, ["api-keys", "create", "acme", "--role", "supplier", "--home", str(h)]
    )
    assert created.exit_code == 0, created.output
    acme = created.stdout.strip()
    assert acme.startswith("fp_") and "\n" not in acme  # stdout holds the key alone
    running = build(Settings(home=h, sequencer=False))
    try:
        client = TestClient(running.app)
        for token, who in ((operator, "operator"), (acme, "acme")):
            r = client.get("/v1/records?limit=1", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, (who, r.text)
        bad = client.get("/v1/records", headers={"Authorization": "Bearer fp_not-a-key"})
        assert bad.status_code == 401
    finally:
        running.close()


def _held_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


def test_up_on_a_busy_port_fails_at_once_and_seeds_nothing(tmp_path: Path) -> None:
    """Issue: `up --demo` on a busy port seeded for a while, printed keys for a server that
    never started, then failed."""
    with _held_port() as held:
        port = held.getsockname()[1]
        h = tmp_path / "demo"
        result = runner.invoke(app, ["up", "--demo", "--home", str(h), "--port", str(port)])
    # Refused before anything was made: no home, no keys (how fast is the benchmark's business;
    # it is the bind before any import of the service, well under a second here).
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"port {port} is in use" in lines[0], result.output
    assert "fp_" not in result.output and not h.exists()


def test_up_says_where_it_listens_once_it_serves(tmp_path: Path) -> None:
    """The "listening on" line comes once the socket is served: a request sent the moment it
    is printed is answered."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "up", "--home", str(tmp_path / "h"), "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "FORGEPROOF_SEQUENCER": "false"},
    )
    try:
        assert proc.stdout is not None
        seen = []
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("listening on "):
                break
            assert time.monotonic() < deadline, seen
        found = re.fullmatch(
            r"listening on (http://127\.0\.0\.1:\d+) \(portal: \1/ · API docs: \1/docs\)\n",
            seen[-1],
        )
        assert found, seen
        assert httpx.get(found.group(1) + "/healthz", timeout=5).status_code == 200
        assert any(line.strip().startswith("fp_") for line in seen)  # the new home's key
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# `GET /healthz`, `POST /v1/verify`, /v1/genealogy/audit?id=...: a path as the docs name one,
# with the names of the query parameters it shows.
_NAMED = re.compile(r"\b(?:(GET|POST|PUT|DELETE|PATCH) +)?(/[^\s`?)>|,;]*)(\?[^\s`)>|,;]*)?")
Named = tuple[str | None, str, frozenset[str]]  # method (None: not said), path, query names


def _named_paths() -> dict[Named, set[str]]:
    """Every endpoint the docs and the README name: `/v1/...` wherever it appears, any other
    path where a method precedes it; with the files naming it."""
    named: dict[Named, set[str]] = {}
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for found in _NAMED.finditer(doc.read_text()):
            method, path = found.group(1), found.group(2).rstrip(".:")
            query = frozenset(re.findall(r"[?&]([A-Za-z_]\w*)=", found.group(3) or ""))
            if method or path.startswith("/v1/"):
                named.setdefault((method, path, query), set()).add(doc.name)
    return named


def _pattern(route: str) -> re.Pattern[str]:
    """A route's path as a regular expression: a parameter matches any one segment, its name
    written `{...}` as docs write them included."""
    parts = re.split(r"(\{[^}]+\})", route)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


def test_docs_name_only_endpoints_that_exist(tmp_path: Path) -> None:
    """Issue: docs/epcis.md named /audit/{id}.html and /recall?lot=, which never existed.

    What the OpenAPI document publishes is checked by path, method and query parameters (of
    an operation that declares any: the EPCIS query reads its own); a page outside it (the
    portal's) by asking the app."""
    dep = Deployment.init(tmp_path / "home")
    chain = dep.open_chain()
    try:
        api = create_app(Service(dep, Settings(home=tmp_path / "home", sequencer=False), chain))
        client = TestClient(api)
        published = [
            (
                _pattern(path),
                method.upper(),
                {p["name"] for p in op.get("parameters", []) if p["in"] == "query"},
            )
            for path, ops in client.get("/openapi.json").json()["paths"].items()
            for method, op in ops.items()
        ]

        def exists(method: str | None, path: str, query: frozenset[str]) -> bool:
            ops = [(m, q) for pattern, m, q in published if pattern.fullmatch(path)]
            if ops:
                return any(method in (None, m) and (not q or query <= q) for m, q in ops)
            return "{" not in path and client.request(method or "GET", path).status_code != 404

        named = _named_paths()
        assert {"/v1/genealogy/audit", "/v1/recall"} <= {path for _, path, _ in named}
        assert exists("GET", "/v1/recall", frozenset({"supplier_lot"}))
        wrong: list[tuple[str | None, str, frozenset[str]]] = [
            ("GET", "/v1/recall", frozenset({"lot"})),
            (None, "/v1/audit/{id}.html", frozenset()),
        ]
        assert not any(exists(*w) for w in wrong)  # what the docs named once is caught
        missing = {
            f"{method or 'any'} {path} {sorted(query)}": sorted(files)
            for (method, path, query), files in named.items()
            if not exists(method, path, query)
        }
    finally:
        chain.close()
        dep.close()
    assert not missing, json.dumps(missing, indent=1)
