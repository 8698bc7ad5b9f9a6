"""`forgeproof up --demo`: a realistic plant, seeded through the same code paths as real use."""

from __future__ import annotations

import random
from typing import Any

from rich.console import Console
from sqlalchemy import insert, select

from api.auth import create_api_key
from api.demo.synthetic import PlantConfig, plant_document, plant_events
from api.predictions import export_inspection, sign_prediction
from api.server import Running
from api.tables import AssetAssignment
from ledger.deployment import save_key
from ledger.errors import NotFound
from ledger.records import Record
from ledger.sequencer import Sequencer
from ledger.signing import Signer
from ml.errors import MLError
from ml.shipped import SAMPLES

PARTICIPANTS = [
    ("acme-steel", "ACME Steel Coils", "supplier"),
    ("nordic-bearings", "Nordic Bearings AB", "supplier"),
    ("tuv-audit", "Independent auditor", "auditor"),
    ("fixit-services", "FixIt turbine services", "maintainer"),
]


def seed(running: Running, *, base_url: str, console: Console | None = None) -> dict[str, str]:
    """Seed the plant and print every participant's API key and a few curl lines to try."""
    console = console or Console()
    service = running.service
    dep = service.dep
    keys: dict[str, str] = {
        "operator": create_api_key(
            dep.store, dep.operator, "operator", "demo", registry=dep.registry
        )
    }
    writer = service.writer()
    for pid, name, role in PARTICIPANTS:
        try:
            dep.registry.participant(pid)
        except NotFound:
            # A key made here, bound on chain with its proof of possession, kept in HOME/keys.
            signer = Signer.generate()
            save_key(dep.home, pid, signer)
            writer.enrol(pid, name, [role], signer)
        keys[pid] = create_api_key(dep.store, pid, role, "demo", registry=dep.registry)
    service.registry_changed()

    rng = random.Random(11)
    for supplier in ("acme-steel", "nordic-bearings"):
        signer = dep.signer(supplier)
        for i in range(20):
            payload = {
                "lot": f"{supplier.upper()[:4]}-LOT-{i:04d}",
                "material": "hot-rolled coil" if "steel" in supplier else "bearing 6204-2RS",
                "quantity": rng.randint(20, 400),
                "certificate": {
                    "standard": "EN 10204 3.1",
                    "heat": f"H{rng.randint(10000, 99999)}",
                },
            }
            record = Record.new(
                "supplier_record", payload, participant=supplier, address=signer.address
            )
            service.submit(record, signer.sign(dep.domain, record))

    events = list(plant_events(PlantConfig(runs=8, stages=4, raw_lot_uses=3, seed=5)))
    captured = service.capture_epcis(plant_document(events))
    console.print(f"captured {captured.new} EPCIS events (a small plant history)")

    runner = service.runner
    assert runner is not None, "the server registers its models before seeding"
    scored = _score_engines(service, runner) + _score_images(service, runner)
    cp = (running.sequencer or Sequencer(dep.log, running.chain)).step(force=True)
    if cp is not None:
        cp = dep.log.checkpoint_at(cp.size)
        console.print(
            f"anchored checkpoint size {cp.size} in block {cp.block_number} on chain {cp.chain_id}"
        )
    _print_guide(console, keys, base_url, scored)
    return keys


def _score_engines(service: Any, runner: Any) -> list[dict[str, Any]]:
    try:
        digest = runner.digest_for("rul")
    except NotFound:
        return []
    from ml.data.cmapss import read_trajectories

    predictor = runner.predictor(digest)
    out: list[dict[str, Any]] = []
    sample = next((SAMPLES / "cmapss").glob("test_FD001*.txt"))
    # Engines too short for a window get no prediction yet; the rest are scored one by one.
    traj = read_trajectories(sample)
    for engine_id, rows in traj.engine_slices().items():
        asset = f"engine-{engine_id}"
        try:
            payload = predictor.predict_window(traj.rows[rows], asset=asset, source=sample.name)
        except MLError:
            continue
        out.append(sign_prediction(service, "prediction", payload, "operator"))
        with service.dep.store.transaction() as conn:
            exists = conn.execute(
                select(AssetAssignment).where(AssetAssignment.asset == asset)
            ).first()
            if exists is None:
                row = {"asset": asset, "maintainer": "fixit-services"}
                conn.execute(insert(AssetAssignment).values(**row))
    return out


def _score_images(service: Any, runner: Any) -> list[dict[str, Any]]:
    try:
        digest = runner.digest_for("defect")
    except NotFound:
        return []
    predictor = runner.predictor(digest)
    out: list[dict[str, Any]] = []
    for path in sorted((SAMPLES / "neu").glob("*.jpg")):
        payload = predictor.predict_image(path)
        item = f"urn:epc:id:sgtin:4012345.077889.{len(out) + 1}"
        payload["item"] = item
        signed = sign_prediction(service, "inspection", payload, "operator")
        signed["epcis_event_id"] = export_inspection(service, signed, item)
        out.append(signed)
    return out


def _print_guide(
    console: Console, keys: dict[str, str], base: str, scored: list[dict[str, Any]]
) -> None:
    console.rule("[bold]forgeproof demo plant")
    for who, key in keys.items():
        console.print(f"  {who:<18} {key}")
    some = scored[0]["id"] if scored else "0"
    a = '-H "Authorization: Bearer $AUDITOR"'
    console.print(
        f"""
[bold]Try it[/] (the server is starting on {base}; API docs at {base}/docs):

  export AUDITOR={keys["tuv-audit"]}
  export MAINT={keys["fixit-services"]}
  curl -s {a} '{base}/v1/records?kind=prediction&limit=3'
  curl -s {a} {base}/v1/records/{some}/receipt > r.json
  curl -s {a} -H 'content-type: application/json' -d @r.json {base}/v1/verify
  curl -s -H "Authorization: Bearer $MAINT" '{base}/v1/feed?limit=5'
  curl -s {a} '{base}/v1/epcis/events?eventType=TransformationEvent&perPage=2'
  python3 -c 'import json,sys; json.dump(json.load(sys.stdin)["receipt"], sys.stdout)' \\
      < r.json > receipt.json && forgeproof verify receipt.json --offline
"""
    )
