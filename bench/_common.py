"""Shared bits of the benchmark scripts: argument parsing, tables, the JSON line."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

# Benchmark deployments are throwaway: their keys get a development passphrase and a cheap
# scrypt (real keys keep eth-account's standard cost; see ledger/keystore.py).
os.environ.setdefault("FORGEPROOF_KEY_PASSPHRASE", "benchmarks only, not a secret")
os.environ.setdefault("FORGEPROOF_KEYSTORE_SCRYPT_N", "1024")


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes, finishes within a minute")
    p.add_argument("--json", action="store_true", help="print the figures as JSON on the last line")
    return p


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def rate(fn: Callable[[], Any], n: int) -> float:
    """Calls per second of `fn`, run `n` times."""
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - t)


def best_of(fn: Callable[[], Any], repeats: int, *, warmup: bool = False) -> float:
    """Best of `repeats` wall times in seconds (after one untimed call when `warmup`): the
    machine is shared, and the minimum is the least noisy figure."""
    if warmup:
        fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def report(
    title: str, columns: list[str], rows: list[list[Any]], figures: dict[str, Any], as_json: bool
) -> None:
    console = Console()
    table = Table(*columns, title=f"{title} ({machine()})")
    for row in rows:
        table.add_row(*[f"{v:,.1f}" if isinstance(v, float) else str(v) for v in row])
    console.print(table)
    if as_json:
        print(json.dumps({"machine": machine(), **figures}, sort_keys=True))
