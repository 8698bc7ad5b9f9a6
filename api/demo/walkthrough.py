"""The ledger demo: a small plant signs records, the log takes them, a receipt checks out."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from rich.console import Console

from ledger.deployment import CONFIG, Deployment, save_key
from ledger.errors import InputError
from ledger.ingest import Accepted, check_lines, submission_json
from ledger.receipts import (
    build_receipt,
    chain_anchor_source,
    chain_key_source,
    log_checkpoint_source,
    verify_receipt,
    write_json_atomic,
)
from ledger.records import Record, hex0x
from ledger.sequencer import Sequencer
from ledger.signing import Signer

PARTICIPANTS = [
    ("supplier-acme-steel", "ACME Steel Coils", "supplier"),
    ("supplier-nordic-bearings", "Nordic Bearings AB", "supplier"),
    ("plant-line-3", "Plant 1, line 3", "manufacturer"),
    ("auditor-tuv", "Independent auditor", "auditor"),
]


def _payloads(rng: random.Random, n: int) -> list[tuple[str, str, dict[str, object]]]:
    """(participant, kind, payload) triples that look like a week on a production line."""
    out: list[tuple[str, str, dict[str, object]]] = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.3:
            who = rng.choice(["supplier-acme-steel", "supplier-nordic-bearings"])
            out.append(
                (
                    who,
                    "supplier_record",
                    {
                        "lot": f"LOT-{who[9:13].upper()}-{i:05d}",
                        "material": "hot-rolled coil" if "steel" in who else "bearing 6204-2RS",
                        "quantity": rng.randint(10, 500),
                        "certificate": {
                            "standard": "EN 10204 3.1",
                            "heat": f"H{rng.randint(10000, 99999)}",
                        },
                    },
                )
            )
        else:
            verdict = rng.choices(["conformant", "non_conformant", "needs_review"], [90, 7, 3])[0]
            out.append(
                (
                    "plant-line-3",
                    "inspection",
                    {
                        "item": f"urn:epc:id:sgtin:4012345.011111.{i}",
                        "station": "vision-3",
                        "verdict": verdict,
                        "confidence": round(rng.uniform(0.8, 1.0), 4),
                    },
                )
            )
    return out


def run_demo(home: Path, *, records: int, console: Console) -> None:
    if home.exists():
        if not (home / CONFIG).exists():
            raise InputError(f"{home} exists and is not a forgeproof deployment; not touching it")
        shutil.rmtree(home)
    rng = random.Random(7)
    dep = Deployment.init(home)
    console.rule("[bold]forgeproof ledger demo")
    console.print(f"deployment in [bold]{home}[/], domain {json.dumps(dep.domain.to_json())}")

    chain = dep.open_chain()
    writer = dep.writer(chain)
    signers: dict[str, Signer] = {}
    for pid, name, role in PARTICIPANTS:
        signers[pid] = Signer.generate()
        save_key(home, pid, signers[pid])
        writer.enrol(pid, name, [role], signers[pid])
    console.print(
        f"registered {len(PARTICIPANTS)} participants on chain, each key with its proof of "
        "possession"
    )

    lines = []
    for who, kind, payload in _payloads(rng, records):
        rec = Record.new(kind, payload, participant=who, address=signers[who].address)
        lines.append(json.dumps(submission_json(rec, signers[who].sign(dep.domain, rec))).encode())
    accepted = [a for a in check_lines(lines, dep.domain, dep.registry.snapshot(), workers=1)]
    bad = [a for a in accepted if not isinstance(a, Accepted)]
    if bad:
        raise InputError(f"demo records were rejected: {bad[0]}")
    dep.log.append([a for a in accepted if isinstance(a, Accepted)])
    Sequencer(dep.log, chain).step(force=True)
    cp = dep.log.checkpoint_at(dep.log.committed_size())
    console.print(
        f"appended {records} signed records; checkpoint size {cp.size} root {hex0x(cp.root)}\n"
        f"anchored on chain {cp.chain_id}, contract {cp.contract}, block {cp.block_number}"
    )

    index = rng.randrange(records)
    receipt = build_receipt(dep.log, index, dep.domain)
    path = home / f"receipt-{index}.json"
    write_json_atomic(path, receipt)
    console.print(f"receipt for record {index} ({receipt['record']['kind']}) -> {path}")

    for label, kwargs in (
        ("offline (the receipt alone)", {}),
        (
            "against this deployment and its chain",
            {
                "key_source": chain_key_source(chain),
                "checkpoint_source": log_checkpoint_source(dep.log),
                "anchor_source": chain_anchor_source(chain),
            },
        ),
    ):
        verdict = verify_receipt(receipt, **kwargs)  # type: ignore[arg-type]
        console.print(
            f"verify {label}: " + ", ".join(f"{c.name} {c.status}" for c in verdict.checks)
        )
        if not verdict.ok:
            raise InputError(f"the demo receipt did not verify: {verdict.failed}")

    tampered = json.loads(json.dumps(receipt))
    tampered["record"]["payload"]["tampered"] = True
    verdict = verify_receipt(tampered)
    console.print(
        "tampered copy: "
        + ", ".join(f"{c.name} {c.status}" for c in verdict.failed)
        + " [bold red](rejected, as it must be)[/]"
    )
    chain.close()
    console.print(f"\ntry: forgeproof verify {path} --home {home}")
    dep.close()
