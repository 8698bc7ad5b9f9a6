"""Receipts verified in the browser (api/portal/static/verify.js) against Python's verify_receipt.

    python bench/browser_verify.py [--quick] [--json] [--receipts N]

Makes N receipts (default 1,000; --quick 250) of a log on SQLite: records of three kinds from
three producers, signed, appended and checkpointed once. They go into one JSON list, which is
uploaded into the standalone verifier page (api/portal/verifier.py) opened from disk in
headless Chromium, the way a partner would use it. Timed:

- in the page: performance.now() around `ForgeproofVerify.verifyAny` (strict reading of the
  file's text, every offline check of every receipt), on the first upload, JIT cold;
- upload to verdict: wall time from `set_input_files` to the verdict drawn (reading the file,
  verifying, drawing seven checks per receipt);
- warm: `verifyAny` again on the same text inside the page;
- Python: `loads_strict` and `verify_receipt` on the same receipts, one by one.

Every receipt must verify on both sides. Goal: 1,000 receipts in under 10 s in the browser.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import parser, report
from ledger.ingest import check_record
from ledger.log import Log
from ledger.receipts import build_receipt, loads_strict, verify_receipt
from ledger.records import Record
from ledger.registry import KeySnapshot
from ledger.signing import Domain, Signer
from ledger.store import Store, sqlite_url

DOMAIN = Domain(chain_id=131277322940537, verifying_contract="0x" + "ab" * 20)
GOAL_S = 10.0  # for 1,000 receipts
PRODUCERS = [
    ("acme", "supplier", "supplier_record"),
    ("line-3", "manufacturer", "inspection"),
    ("line-3", "manufacturer", "prediction"),
]


def make_receipts(n: int, tmp: Path) -> list[dict[str, Any]]:
    """`n` receipts of one checkpoint, as a partner receives them (JSON)."""
    signers = {who: Signer.generate() for who, _, _ in PRODUCERS}
    keys = KeySnapshot.of({signers[w].address: (w, [role]) for w, role, _ in PRODUCERS})
    store = Store.open(sqlite_url(tmp / "ledger.db"))
    try:
        log = Log(store)
        items = []
        for i in range(n):
            who, _, kind = PRODUCERS[i % len(PRODUCERS)]
            payload = {
                "lot": f"LOT-{i:06d}",
                "station": f"press-{i % 7}",
                "measurements": {
                    "force_kN": 41.5 + i % 13 / 10,
                    "temp_C": 61.25,
                    "ok": i % 11 != 0,
                },
                "operator_note": "visual check: no burrs, surface within spec",
                "sensors": [i % 5, i % 9, 0.125 * (i % 17)],
            }
            rec = Record.new(kind, payload, participant=who, address=signers[who].address)
            items.append(check_record(rec, signers[who].sign(DOMAIN, rec), DOMAIN, keys))
        log.append(items)
        cp = log.checkpoint()
        return [json.loads(json.dumps(build_receipt(log, i, DOMAIN, cp))) for i in range(n)]
    finally:
        store.close()


def python_seconds(texts: list[str]) -> float:
    t = time.perf_counter()
    for text in texts:
        verdict = verify_receipt(loads_strict(text))
        assert verdict.ok, verdict.checks
    return time.perf_counter() - t


def browser_seconds(page_path: Path, receipts_path: Path, n: int) -> dict[str, float]:
    """(in page, upload to verdict, warm) seconds for the receipts in `receipts_path`."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is not installed: run `make services`")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.goto(page_path.as_uri())
            t = time.perf_counter()
            page.set_input_files("#file", str(receipts_path))
            page.wait_for_selector('#verdict[data-run="1"][data-done="true"]', timeout=120_000)
            wall = time.perf_counter() - t
            done = page.evaluate("window.__verifyDone")
            assert done["ok"], done
            shown = page.eval_on_selector_all('section.receipt[data-ok="true"]', "e => e.length")
            assert shown == n, f"{shown} of {n} receipts shown as verified"
            warm_ms = page.evaluate(
                """async (text) => {
                  const t = performance.now();
                  const r = await ForgeproofVerify.verifyAny(text);
                  if (!r.ok || r.receipts.length === 0) throw new Error(r.summary);
                  return performance.now() - t;
                }""",
                receipts_path.read_text("utf-8"),
            )
        finally:
            browser.close()
    return {"in_page": done["ms"] / 1000, "upload_to_verdict": wall, "warm": warm_ms / 1000}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--receipts", type=int, default=None, help="how many (default 1,000; quick 250)")
    args = p.parse_args()
    n = args.receipts or (250 if args.quick else 1000)
    from api.portal.verifier import write_standalone

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        receipts = make_receipts(n, tmp)
        texts = [json.dumps(r) for r in receipts]
        receipts_path = tmp / "receipts.json"
        receipts_path.write_text("[" + ",\n".join(texts) + "]", encoding="utf-8")
        page_path = write_standalone(tmp / "verify.html")
        browser = browser_seconds(page_path, receipts_path, n)
        python_s = python_seconds(texts)

    in_page = browser["in_page"]
    scaled = in_page * 1000 / n  # the goal is stated for 1,000
    figures: dict[str, Any] = {
        "receipts": n,
        "browser_in_page_s": in_page,
        "browser_upload_to_verdict_s": browser["upload_to_verdict"],
        "browser_warm_s": browser["warm"],
        "python_s": python_s,
        "browser_over_python": in_page / python_s,
        "goal_s_per_1000": GOAL_S,
        "browser_s_per_1000": scaled,
        "goal_met": scaled < GOAL_S,
    }
    timed = [
        ("browser: in page, first run", in_page),
        ("browser: upload to verdict drawn", browser["upload_to_verdict"]),
        ("browser: in page, warm", browser["warm"]),
        ("Python: loads_strict + verify_receipt", python_s),
    ]
    rows: list[list[Any]] = [
        [what, f"{s:.3f}", f"{n / s:,.0f}", f"{1000 * s / n:.3f}"] for what, s in timed
    ]
    title = (
        f"{n:,} receipts verified offline; browser/Python {in_page / python_s:.1f}x; "
        f"goal < {GOAL_S:.0f} s per 1,000 in the browser: {'met' if scaled < GOAL_S else 'MISSED'}"
    )
    report(title, ["", "seconds", "receipts/s", "ms per receipt"], rows, figures, args.json)
    if scaled >= GOAL_S:
        raise SystemExit(f"browser took {scaled:.1f} s per 1,000 receipts, goal {GOAL_S:.0f} s")


if __name__ == "__main__":
    main()
