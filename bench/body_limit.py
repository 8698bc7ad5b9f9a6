"""Server memory under oversized uploads: the body limit holds on the stream.

    python bench/body_limit.py [--quick] [--json]

A real server (`forgeproof up`, as in bench/api.py) runs in a child process; a raw-socket
client posts bodies to /v1/records, chunked (no Content-Length, so only the stream can tell
the size) or with a declared length, and keeps sending until the server answers or hangs up.
After each upload the table gives the answer, how much the client got to send before it (the
kernel's socket buffers on loopback take a few MiB the server never reads), and the server's
resident memory (VmRSS) and peak (VmHWM, never goes down) from /proc. The
baseline is a body just under the 4 MiB limit, which the server must read whole: an attack
should cost no more memory than that.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import parser, report
from bench.api import REPO, SETUP, server

MiB = 1024 * 1024
CHUNK = 64 * 1024


def memory(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of `pid` in MiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def upload(base: str, api_key: str, total: int, *, chunked: bool) -> tuple[int, int, float]:
    """POST `total` bytes (not JSON) to /v1/records; (status, bytes sent, seconds).

    Sends until the whole body is out, the server answers, or it closes the connection."""
    url = urlsplit(base)
    sock = socket.create_connection((url.hostname, url.port))
    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    head = (
        f"POST /v1/records HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {api_key}\r\n"
        f"Content-Type: application/json\r\n{length}\r\n\r\n"
    )
    start = time.perf_counter()
    sock.sendall(head.encode())
    sent, answer = 0, b""
    try:
        while not answer:
            readable, writable, _ = select.select([sock], [sock] if sent < total else [], [], 30)
            if readable:
                answer = sock.recv(65536) or b"closed"
                break
            if not writable:
                break
            piece = b"x" * min(CHUNK, total - sent)
            frame = b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
            if chunked and sent + len(piece) >= total:
                frame += b"0\r\n\r\n"
            sock.sendall(frame)
            sent += len(piece)
    except (BrokenPipeError, ConnectionResetError):
        pass
    seconds = time.perf_counter() - start
    sock.close()
    parts = answer.split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return status, sent, seconds


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    big = 20 * MiB if args.quick else 50 * MiB
    cases = [
        ("baseline: chunked, under the limit", 4 * MiB - CHUNK, True),
        (f"chunked, {big // MiB} MiB", big, True),
        (f"declared length, {big // MiB} MiB", big, False),
        ("chunked, 200 MiB", 200 * MiB, True),
    ]
    if args.quick:
        cases = cases[:3]
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
        with server(home, env) as (base, pid):
            upload(base, setup["key"], 1000, chunked=True)  # warm up the route
            rss0, hwm0 = memory(pid)
            rows: list[list[Any]] = [["server at rest", "", "", "", rss0, hwm0]]
            results: dict[str, Any] = {"at_rest": {"rss_mib": rss0, "peak_rss_mib": hwm0}}
            for name, total, chunked in cases:
                status, sent, seconds = upload(base, setup["key"], total, chunked=chunked)
                time.sleep(0.5)
                rss, hwm = memory(pid)
                rows.append([name, status, sent / MiB, seconds * 1000, rss, hwm])
                results[name] = {
                    "status": status,
                    "sent_mib": sent / MiB,
                    "seconds": seconds,
                    "rss_mib": rss,
                    "peak_rss_mib": hwm,
                }
    report(
        "Body limit on the stream (POST /v1/records, 4 MiB limit)",
        ["upload", "answer", "MiB sent", "ms", "RSS MiB", "peak MiB"],
        rows,
        {"results": results},
        args.json,
    )


if __name__ == "__main__":
    main()
