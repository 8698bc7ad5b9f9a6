"""Provenance service under load: requests/s and p50/p99 latency at 32 concurrent clients.

    python bench/api.py [--quick] [--json] [--client wrk|python]

A real server (`forgeproof up`: uvicorn, SQLite, embedded chain, sequencer) runs in a child
process on loopback, and a load generator keeps 32 requests in flight for each endpoint in
turn: get-receipt (anchored, cached), verify (POST a receipt), submit-record (fresh signed
records). The load generator is wrk when it is installed (`apt-get install wrk`): a C client
that needs a fraction of a core. Otherwise an asyncio httpx client in this process, which
needs most of a core for itself and so measures the client as much as the server; the table
says which one ran. The baseline is GET /healthz, the cheapest route, measured the same way
in the same run; a second baseline restarts the server with its receipt cache off (one entry),
so every get-receipt takes the route's full path, and the POST fast path off
(`FORGEPROOF_FAST_POST=0`), so every verify and submit-record does too.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import parser, report
from ledger.records import Record
from ledger.signing import Domain, Signer

REPO = Path(__file__).resolve().parent.parent
CONCURRENCY = 32
WRK_THREADS = 2  # 16 connections each; wrk needs connections divisible by threads
JSON = {"Content-Type": "application/json"}

SETUP = """
import json, sys
from pathlib import Path
from api.auth import create_api_key
from ledger.deployment import Deployment, save_key
from ledger.signing import Signer
home = Path(sys.argv[1])
dep = Deployment.init(home)
signer = Signer.generate()
save_key(home, "acme", signer)
chain = dep.open_chain()
dep.writer(chain).enrol("acme", "ACME", ["supplier"], signer)
chain.close()
print(json.dumps({"key": create_api_key(dep.store, "acme", "supplier", registry=dep.registry),
                  "secret": signer.private_key.hex(), "domain": dep.domain.to_json()}))
"""

# One wrk script for every phase: `items` is a file of request paths or bodies, one a line,
# which the threads take in turn (thread t takes items t, t + threads, ...); statuses other
# than the expected one are counted; `done` prints the figures as one JSON line.
WRK_LUA = r"""
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  wrk.method = args[1]
  expect = tonumber(args[2])
  kind = args[3]
  nthreads = tonumber(args[5])
  items = {}
  for line in io.lines(args[4]) do items[#items + 1] = line end
  if kind == "body" then wrk.headers["Content-Type"] = "application/json" end
  i = id
  bad = 0
end
function request()
  local item = items[(i % #items) + 1]
  i = i + nthreads
  if kind == "path" then return wrk.format(nil, item) end
  return wrk.format(nil, nil, nil, item)
end
function response(status, headers, body)
  if status ~= expect then bad = bad + 1 end
end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("bad") end
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"bad":%d,"socket":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    bad, e.connect + e.read + e.write + e.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wrk_version() -> str | None:
    """`wrk 4.1.0` when wrk is on PATH, else None."""
    exe = shutil.which("wrk")
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"wrk (\S+)", out)
    return f"wrk {m[1]}" if m else "wrk"


def parse_wrk(output: str) -> dict[str, float]:
    """The figures of one wrk run from the line our script's `done` prints.

    Raises:
        RuntimeError: wrk printed no such line (it failed; its output is in the message).
    """
    m = re.search(r"^WRK (\{.*\})$", output, re.MULTILINE)
    if m is None:
        raise RuntimeError(f"wrk printed no result line; its output was:\n{output}")
    w = json.loads(m[1])
    n = w["requests"]
    return {
        "rps": n / (w["duration_us"] / 1e6),
        "p50_ms": w["p50_us"] / 1e3,
        "p99_ms": w["p99_us"] / 1e3,
        "requests": n,
        "errors": w["bad"] + w["socket"],
    }


@dataclass(frozen=True)
class Phase:
    """Requests of one kind: GETs of `items` (paths), or POSTs of `items` (bodies) to `path`."""

    method: str
    items: list[str]
    expect: int  # the status every response should have
    path: str | None = None

    @property
    def kind(self) -> str:
        return "path" if self.path is None else "body"


def load_wrk(base: str, api_key: str, phase: Phase, seconds: float, tmp: Path) -> dict[str, float]:
    script, lines = tmp / "bench.lua", tmp / "items.txt"
    script.write_text(WRK_LUA)
    lines.write_text("\n".join(phase.items) + "\n")
    url = base + (phase.path or phase.items[0])
    cmd = ["wrk", f"-t{WRK_THREADS}", f"-c{CONCURRENCY}", f"-d{seconds:g}s", "--timeout", "10s"]
    cmd += ["-H", f"Authorization: Bearer {api_key}", "-s", str(script), url, "--"]
    cmd += [phase.method, str(phase.expect), phase.kind, str(lines), str(WRK_THREADS)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


async def load_python(client: httpx.AsyncClient, phase: Phase, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < stop:
            item = phase.items[next(counter) % len(phase.items)]
            t = time.perf_counter()
            if phase.path is None:
                r = await client.request(phase.method, item)
            else:
                r = await client.request(phase.method, phase.path, content=item, headers=JSON)
            latencies.append(time.perf_counter() - t)
            if r.status_code != phase.expect:
                errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
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


@contextmanager
def server(home: Path, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """`forgeproof up` on a free port; yields (base URL, process id) once /healthz answers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "up", "--home", str(home), "--port", str(port)]
        + ["--every", "1000", "--interval", "1"],
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
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def populate(
    base: str, api_key: str, signer: Signer, domain: Domain, records: int
) -> tuple[list[str], dict[str, Any]]:
    """`records` signed records, anchored, their receipts fetched once; (ids, one receipt)."""
    headers = {"Authorization": f"Bearer {api_key}"}
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as c:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def submit(i: int) -> str:
            rec = Record.new(
                "supplier_record", {"lot": f"L{i}"}, participant="acme", address=signer.address
            )
            body = {"record": rec.to_json(), "signature": "0x" + signer.sign(domain, rec).hex()}
            async with gate:
                return str((await c.post("/v1/records", json=body)).json()["id"])

        async def fetch(id: str) -> None:
            async with gate:
                (await c.get(f"/v1/records/{id}/receipt")).raise_for_status()

        ids = list(await asyncio.gather(*(submit(i) for i in range(records))))
        while (await c.get(f"/v1/records/{ids[-1]}/receipt")).json()["status"] != "anchored":
            await asyncio.sleep(0.2)
        await asyncio.gather(*(fetch(id) for id in ids))
        receipt = (await c.get(f"/v1/records/{ids[7]}/receipt")).json()["receipt"]
        return ids, receipt


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--client", choices=["wrk", "python"], help="default: wrk if installed")
    args = p.parse_args()
    seconds = 4.0 if args.quick else 15.0
    history = 1000 if args.quick else 2000
    wrk = wrk_version() if args.client != "python" else None
    if args.client == "wrk" and wrk is None:
        sys.exit("wrk is not installed (apt-get install wrk), or pass --client python")
    generator = wrk or f"python httpx {httpx.__version__} (in-process asyncio client)"

    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        home = tmp / "home"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        out = subprocess.run(
            [sys.executable, "-c", SETUP, str(home)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        setup = json.loads(out)
        api_key = setup["key"]
        signer = Signer(bytes.fromhex(setup["secret"]))
        domain = Domain.from_json(setup["domain"])

        # Enough fresh records that no submission repeats (6,000/s), one set per server.
        def signed(prefix: str) -> list[str]:
            out = []
            for i in range(int(seconds * 6_000)):
                r = Record.new(
                    "supplier_record", {"lot": f"{prefix}{i}"}, participant="acme",
                    address=signer.address,
                )  # fmt: skip
                body = {"record": r.to_json(), "signature": "0x" + signer.sign(domain, r).hex()}
                out.append(json.dumps(body, separators=(",", ":")))
            return out

        fresh, fresh_off = signed("N"), signed("B")

        def measure(base: str, phases: dict[str, Phase]) -> dict[str, dict[str, float]]:
            if wrk:
                return {n: load_wrk(base, api_key, ph, seconds, tmp) for n, ph in phases.items()}

            async def go() -> dict[str, dict[str, float]]:
                headers = {"Authorization": f"Bearer {api_key}"}
                limits = httpx.Limits(
                    max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY
                )
                async with httpx.AsyncClient(
                    base_url=base, headers=headers, limits=limits, timeout=30
                ) as client:
                    return {n: await load_python(client, ph, seconds) for n, ph in phases.items()}

            return asyncio.run(go())

        def receipts(ids: list[str]) -> list[str]:
            return [f"/v1/records/{id}/receipt" for id in ids]

        with server(home, env) as (base, _):
            ids, receipt = asyncio.run(populate(base, api_key, signer, domain, history))
            verify_body = json.dumps({"receipt": receipt}, separators=(",", ":"))
            results = measure(
                base,
                {
                    "healthz (baseline)": Phase("GET", ["/healthz"], 200),
                    "get-receipt": Phase("GET", receipts(ids), 200),
                    "verify": Phase("POST", [verify_body], 200, "/v1/verify"),
                    "submit-record": Phase("POST", fresh, 201, "/v1/records"),
                },
            )
        # The baselines: the same requests with the receipt cache and the POST fast path off,
        # so that every request takes the route's full path.
        off = {**env, "FORGEPROOF_RECEIPT_CACHE_ENTRIES": "1", "FORGEPROOF_FAST_POST": "0"}
        with server(home, off) as (base, _):
            results |= measure(
                base,
                {
                    "get-receipt, cache off (baseline)": Phase("GET", receipts(ids), 200),
                    "verify, fast path off (baseline)": Phase(
                        "POST", [verify_body], 200, "/v1/verify"
                    ),
                    "submit-record, fast path off (baseline)": Phase(
                        "POST", fresh_off, 201, "/v1/records"
                    ),
                },
            )

    base_rps = results["healthz (baseline)"]["rps"]
    rows = [
        [name, r["rps"], r["p50_ms"], r["p99_ms"], f"{r['rps'] / base_rps:.2f}x", r["errors"]]
        for name, r in results.items()
    ]
    report(
        f"forgeproof API, {CONCURRENCY} concurrent clients, {seconds:.0f}s each, load: {generator}",
        ["endpoint", "requests/s", "p50 ms", "p99 ms", "vs healthz", "errors"],
        rows,
        {
            "concurrency": CONCURRENCY,
            "seconds": seconds,
            "load_generator": generator,
            "results": results,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
