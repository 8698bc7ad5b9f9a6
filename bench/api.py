"""Provenance service under load: requests/s and p50/p99 latency at 32 concurrent clients.

    python bench/api.py [--quick] [--json]

A real server (uvicorn, SQLite, embedded chain) runs in a child process on loopback; an
asyncio client in this process keeps 32 requests in flight for each endpoint in turn:
get-receipt (anchored), verify (POST a receipt), submit-record (fresh signed records). The
baseline is GET /healthz, the cheapest route, measured the same way in the same run.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import parser, report
from ledger.records import Record
from ledger.signing import Domain, Signer

REPO = Path(__file__).resolve().parent.parent
CONCURRENCY = 32

SETUP = """
import json, sys
from pathlib import Path
from api.auth import create_api_key
from ledger.deployment import Deployment, save_key
from ledger.sequencer import Sequencer
from ledger.signing import Signer
home = Path(sys.argv[1])
dep = Deployment.init(home)
dep.registry.add_participant("acme", "ACME", ["supplier"])
signer = Signer.generate()
save_key(home, "acme", signer)
dep.registry.add_key("acme", signer.address, valid_from_us=1)
print(json.dumps({"key": create_api_key(dep.store, "acme", "supplier"),
                  "secret": signer.private_key.hex(), "domain": dep.domain.to_json()}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def load(
    client: httpx.AsyncClient, make: Any, seconds: float, expect: set[int]
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal errors
        i = 0
        while time.perf_counter() < stop:
            method, url, body = make(w, i)
            i += 1
            t = time.perf_counter()
            r = await client.request(method, url, json=body)
            latencies.append(time.perf_counter() - t)
            if r.status_code not in expect:
                errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    n = len(latencies)
    return {
        "rps": n / elapsed,
        "p50_ms": latencies[n // 2] * 1e3,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1e3,
        "requests": n,
        "errors": errors,
    }


async def run(
    base: str, api_key: str, signer: Signer, domain: Domain, seconds: float
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {api_key}"}
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=30
    ) as client:
        # History to read: 2,000 records, anchored.
        ids = []
        for i in range(2000):
            rec = Record.new(
                "supplier_record", {"lot": f"L{i}"}, participant="acme", address=signer.address
            )
            body = {"record": rec.to_json(), "signature": "0x" + signer.sign(domain, rec).hex()}
            ids.append((await client.post("/v1/records", json=body)).json()["id"])
        while (await client.get(f"/v1/records/{ids[-1]}/receipt")).json()["status"] != "anchored":
            await asyncio.sleep(0.2)
        receipt = (await client.get(f"/v1/records/{ids[7]}/receipt")).json()["receipt"]
        fresh = [
            Record.new(
                "supplier_record", {"lot": f"N{i}"}, participant="acme", address=signer.address
            )
            for i in range(20_000)
        ]
        bodies = [
            {"record": r.to_json(), "signature": "0x" + signer.sign(domain, r).hex()} for r in fresh
        ]
        counter = iter(range(len(bodies)))
        phases = {
            "healthz (baseline)": (lambda w, i: ("GET", "/healthz", None), {200}),
            "get-receipt": (
                lambda w, i: ("GET", f"/v1/records/{ids[(w * 7919 + i) % len(ids)]}/receipt", None),
                {200},
            ),
            "verify": (lambda w, i: ("POST", "/v1/verify", {"receipt": receipt}), {200}),
            "submit-record": (lambda w, i: ("POST", "/v1/records", bodies[next(counter)]), {201}),
        }
        results = {}
        for name, (make, expect) in phases.items():
            results[name] = await load(client, make, seconds, expect)
        return results


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    seconds = 4.0 if args.quick else 15.0
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        setup = json.loads(
            subprocess.run(
                [sys.executable, "-c", SETUP, str(home)],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ledger.cli",
                "up",
                "--home",
                str(home),
                "--port",
                str(port),
                "--every",
                "1000",
                "--interval",
                "1",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            signer = Signer(bytes.fromhex(setup["secret"]))
            results = asyncio.run(
                run(base, setup["key"], signer, Domain.from_json(setup["domain"]), seconds)
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    base_rps = results["healthz (baseline)"]["rps"]
    rows = [
        [name, r["rps"], r["p50_ms"], r["p99_ms"], f"{r['rps'] / base_rps:.2f}x", r["errors"]]
        for name, r in results.items()
    ]
    report(
        f"forgeproof API, {CONCURRENCY} concurrent clients, {seconds:.0f}s each",
        ["endpoint", "requests/s", "p50 ms", "p99 ms", "vs healthz", "errors"],
        rows,
        {"concurrency": CONCURRENCY, "seconds": seconds, "results": results},
        args.json,
    )


if __name__ == "__main__":
    main()
