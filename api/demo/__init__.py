"""`forgeproof up --demo`: a realistic plant, seeded through the same code paths as real use."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import insert, select

from api.auth import create_api_key, list_api_keys, revoke_api_key
from api.demo.synthetic import PlantConfig, plant_document, plant_events
from api.predictions import export_inspection, save_explanation, sign_prediction
from api.server import Running
from api.tables import AssetAssignment
from ledger.deployment import save_key
from ledger.errors import NotFound
from ledger.records import Record, hex0x
from ledger.sequencer import Sequencer
from ledger.signing import Signer
from ledger.store import Store
from ledger.store.models import RecordRow
from ml.errors import MLError
from ml.shipped import SAMPLES

EVERY = 20  # cycles between an engine's predictions in the demo's history
MILL = "rolling-mill-1"  # the asset whose output the demo's inspections judge

PARTICIPANTS = [
    ("acme-steel", "ACME Steel Coils", "supplier"),
    ("nordic-bearings", "Nordic Bearings AB", "supplier"),
    ("tuv-audit", "Independent auditor", "auditor"),
    ("fixit-services", "FixIt turbine services", "maintainer"),
]
DEMO_LABEL = "demo"  # the label of the API keys `seed` issues, and revokes when it seeds again


def seed(running: Running, *, base_url: str, console: Console | None = None) -> dict[str, str]:
    """Seed the plant and print every participant's API key and a few curl lines to try.

    Once per deployment: on one seeded before (its suppliers' records are in the log), nothing
    is appended again, since a second plant on top of the first would double every record.
    The keys printed then were shown once and are lost, so every earlier key labelled "demo"
    is revoked and fresh ones are issued; the console says so. Returns the keys issued."""
    console = console or Console(soft_wrap=True)
    service = running.service
    dep = service.dep
    seeded = _seeded(dep.store)
    # Before issuing: a seed that failed half-way left keys nobody saw, too.
    revoked = _revoke_demo_keys(dep.store)
    if not seeded:
        _seed_plant(running, console)
    keys = {"operator": _demo_key(dep, dep.operator, "operator")}
    keys |= {pid: _demo_key(dep, pid, role) for pid, _, role in PARTICIPANTS}
    if seeded:
        earlier = f"{revoked} earlier ones are revoked" if revoked else "none was live"
        console.print(
            f"{dep.home} holds the demo plant already: nothing appended. Its demo API keys "
            f"are shown once: {earlier}, fresh ones below.",
            soft_wrap=True,
            highlight=False,
        )
    elif revoked:
        console.print(f"revoked {revoked} demo API keys of an unfinished seed", highlight=False)
    _print_guide(console, keys, base_url, _example_record(dep.store))
    return keys


def _demo_key(dep: Any, participant: str, role: str) -> str:
    return create_api_key(dep.store, participant, role, DEMO_LABEL, registry=dep.registry)


def _seeded(store: Store) -> bool:
    """Whether the plant was seeded here: the first supplier's records are its first appends,
    and nothing else in a deployment signs as that participant by accident."""
    supplier = PARTICIPANTS[0][0]
    query = select(RecordRow.leaf_index).where(
        RecordRow.participant == supplier, RecordRow.kind == "supplier_record"
    )
    with store.reading() as conn:
        return conn.execute(query.limit(1)).first() is not None


def _revoke_demo_keys(store: Store) -> int:
    """Revoke every live API key labelled "demo"; returns how many."""
    live = [k for k in list_api_keys(store) if k.label == DEMO_LABEL and k.revoked_us is None]
    for k in live:
        revoke_api_key(store, k.id)
    return len(live)


def _example_record(store: Store) -> str:
    """The id (0x leaf hash) of a record to try the API on: a prediction if the models scored
    any, else a supplier's record."""
    with store.reading() as conn:
        for kind in ("prediction", "inspection", "supplier_record"):
            row = conn.execute(
                select(RecordRow.leaf_hash)
                .where(RecordRow.kind == kind)
                .order_by(RecordRow.leaf_index)
                .limit(1)
            ).first()
            if row is not None:
                return hex0x(row.leaf_hash)
    return "0"


def _seed_plant(running: Running, console: Console) -> None:
    """Participants (keys made here, bound on chain), supplier records, a plant's EPCIS
    history, the shipped models' predictions, demand forecasts for the suppliers' products
    (`api.demo.demand`), and a checkpoint anchored on chain."""
    service = running.service
    dep = service.dep
    writer = service.writer()
    for pid, name, role in PARTICIPANTS:
        try:
            dep.registry.participant(pid)
        except NotFound:
            # A key made here, bound on chain with its proof of possession, kept in HOME/keys.
            signer = Signer.generate()
            save_key(dep.home, pid, signer)
            writer.enrol(pid, name, [role], signer)
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
    _score_engines(service, runner)
    for line in _score_drift(service, runner):
        console.print(line, highlight=False)
    _score_images(service, runner)
    from api.demo.demand import forecast_demand

    for line in forecast_demand(service, runner):
        console.print(line, highlight=False)
    cp = (running.sequencer or Sequencer(dep.log, running.chain)).step(force=True)
    if cp is not None:
        cp = dep.log.checkpoint_at(cp.size)
        console.print(
            f"anchored checkpoint size {cp.size} in block {cp.block_number} on chain {cp.chain_id}"
        )


def _score_engines(service: Any, runner: Any) -> list[dict[str, Any]]:
    """Each engine of the sample scored as its history grew, every `EVERY` cycles: the series a
    maintenance partner sees plotted against cycles (the last point is the whole history)."""
    try:
        digest = runner.digest_for("rul")
    except NotFound:
        return []
    from ml.data.cmapss import read_trajectories

    predictor = runner.predictor(digest)
    out: list[dict[str, Any]] = []
    sample = next((SAMPLES / "cmapss").glob("test_FD001*.txt"))
    traj = read_trajectories(sample)
    for engine_id, rows in traj.engine_slices().items():
        asset = f"engine-{engine_id}"
        history = traj.rows[rows]
        cuts = sorted({*range(EVERY, len(history), EVERY), len(history)})
        for cut in cuts:
            try:
                payload = predictor.predict_window(history[:cut], asset=asset, source=sample.name)
            except MLError:
                continue  # too short for the model yet: no prediction at this cycle
            out.append(sign_prediction(service, "prediction", payload, "operator"))
        _assign(service, asset)
    return out


DRIFT_CUTS = (0.45, 0.65, 0.85)  # where each engine's history is cut, as a share of life
OWN_SAMPLE = "holdout_FD001.txt"  # FD001 engines the shipped FD001 model held out of training
DRIFT_SAMPLE = "train_FD002.txt"  # FD002 engines: six operating conditions where FD001 has one


def _score_drift(service: Any, runner: Any) -> list[str]:
    """Both halves of a model's promise, each on engines run to failure, each cut at
    `DRIFT_CUTS` of its life and scored, then its failure (the trajectory's last cycle:
    training engines run to failure) logged as an operator-signed outcome settling those
    predictions; each outcome re-checks the model's promises (`api.promises`):

    1. its own subset: FD001 engines of the model's holdout split, never trained on (its
       conformal intervals were calibrated on residuals of these engines at other cuts, so
       this is the model's claim checked where it was made, not an independent test): its
       intervals hold, and no alarm is raised;
    2. drift: FD002 engines (six operating conditions where FD001 has one): its interval
       coverage collapses, and the alarm is signed and delivered to the operator and the
       engines' maintainer.

    The alarm is per model, its promises checked per prediction source (`api.promises`: the
    sample file each case's predictions name), so each case is judged on its own outcomes;
    the own-subset case also comes first, and the alarm's state is read before any FD002
    outcome is logged. Each line gives the case's own coverage (its assets' settled
    predictions) and the alarm's state after it.
    Returns the lines (none without a RUL model or the samples; the own-subset case is left
    out for a model that trained on those engines)."""
    try:
        digest = runner.digest_for("rul")
    except NotFound:
        return []
    own, drift = SAMPLES / "cmapss" / OWN_SAMPLE, SAMPLES / "cmapss" / DRIFT_SAMPLE
    predictor = runner.predictor(digest)
    lines = []
    if own.is_file() and _holds_out(predictor.manifest, own):
        assets = _run_to_failure(service, predictor, own, "fd001-engine")
        lines.append(
            _case_line(
                service,
                digest,
                assets,
                f"own subset: FD001 model on {{n}} cuts of {len(assets)} FD001 engines it held "
                "out of training",
            )
        )
    if drift.is_file():
        assets = _run_to_failure(service, predictor, drift, "fd002-engine")
        lines.append(_case_line(service, digest, assets, "drift: FD001 model on {n} FD002 cuts"))
    return [line for line in lines if line]


def _holds_out(manifest: Any, sample: Path) -> bool:
    """Whether every engine of `sample` is in the holdout split of the model, trained on the
    file the sample was cut from (train_FD001.txt)."""
    from ml.data.cmapss import read_trajectories

    split = manifest.config.get("training", {}).get("split", {})
    engines = set(read_trajectories(sample).engine_slices())
    return "train_FD001.txt" in manifest.training_data and engines <= set(split.get("holdout", []))


def _run_to_failure(service: Any, predictor: Any, sample: Path, prefix: str) -> list[str]:
    """Score each engine of `sample` at `DRIFT_CUTS` of its life and log its failure as an
    outcome settling those predictions; returns the engines' asset names."""
    from ml.data.cmapss import read_trajectories

    traj = read_trajectories(sample)
    dep = service.dep
    signer = dep.signer(dep.operator)
    assets = []
    for engine_id, rows in traj.engine_slices().items():
        asset = f"{prefix}-{engine_id}"
        _assign(service, asset)  # first: an alarm reaches the maintainer of these engines
        history = traj.rows[rows]
        settles = []
        for share in DRIFT_CUTS:
            cut = max(1, round(len(history) * share))
            try:
                payload = predictor.predict_window(history[:cut], asset=asset, source=sample.name)
            except MLError:
                continue
            settles.append(sign_prediction(service, "prediction", payload, "operator")["id"])
        if not settles:
            continue
        observed = {"failure_cycle": int(history[-1, 1])}
        outcome = {"settles": settles, "asset": asset, "observed": observed,
                   "source": f"{sample.name}: the trajectory's last cycle"}  # fmt: skip
        record = Record.new("outcome", outcome, participant=dep.operator, address=signer.address)
        service.submit(record, signer.sign(dep.domain, record))
        assets.append(asset)
    return assets


def _case_line(service: Any, digest: str, assets: list[str], what: str) -> str | None:
    """One case's figures (its assets' settled predictions) and the model's alarm state now."""
    from api.promises import ALPHA, alarm_name
    from api.scorecards import compute, gather
    from api.tables import AlarmRow

    chosen = set(assets)
    pairs = [p for p in gather(service, digest).pairs if p.asset in chosen]
    card = compute("rul", pairs)["overall"]
    cov = card.get("coverage", {})
    if "90" not in cov:
        return None
    with service.dep.store.reading() as conn:
        row = conn.execute(
            select(AlarmRow.raised_by).where(AlarmRow.name == alarm_name(digest))
        ).first()
    if row is None:
        alarm = "no alarm"
    elif row.raised_by is None:
        alarm = "no alarm now (raised earlier, cleared)"
    else:
        alarm = f"alarm raised (record {row.raised_by})"
    levels = [lv for lv in ("80", "90") if lv in cov]
    rates = "/".join(f"{cov[lv]['rate']:.2f}" for lv in levels)
    pvals = "/".join(f"{cov[lv]['p_value']:.2g}" for lv in levels)
    return (
        f"{what.format(n=card['n'])}: {'/'.join(f'{lv}%' for lv in levels)} interval coverage "
        f"{rates} (one-sided p {pvals}; alarm below {ALPHA}), RMSE {card['rmse']:.1f}; {alarm}"
    )


def _assign(service: Any, asset: str, maintainer: str = "fixit-services") -> None:
    with service.dep.store.transaction() as conn:
        exists = conn.execute(select(AssetAssignment).where(AssetAssignment.asset == asset)).first()
        if exists is None:
            conn.execute(insert(AssetAssignment).values(asset=asset, maintainer=maintainer))


def _score_images(service: Any, runner: Any) -> list[dict[str, Any]]:
    """The sample steel surfaces inspected on the rolling mill's exit: each verdict signed, its
    Grad-CAM overlay kept beside it (the record holds the overlay's digest), the inspected item
    captured as an EPCIS event. The mill is an asset its maintenance partner follows."""
    try:
        digest = runner.digest_for("defect")
    except NotFound:
        return []
    predictor = runner.predictor(digest)
    out: list[dict[str, Any]] = []
    for path in sorted((SAMPLES / "neu").glob("*.jpg")):
        payload, png = predictor.predict_image_with_overlay(path)
        item = f"urn:epc:id:sgtin:4012345.077889.{len(out) + 1}"
        payload["item"] = item
        payload["asset"] = MILL
        signed = sign_prediction(service, "inspection", payload, "operator")
        save_explanation(service, signed["index"], png)
        signed["epcis_event_id"] = export_inspection(service, signed, item)
        out.append(signed)
    if out:
        _assign(service, MILL)
    return out


def _print_guide(console: Console, keys: dict[str, str], base: str, record: str) -> None:
    """The keys and commands to paste. Each is written whole, never wrapped at the console's
    width: a curl line broken in two fails when pasted."""
    console.rule("[bold]forgeproof demo plant")
    for who, key in keys.items():
        console.print(f"  {who:<18} {key}", soft_wrap=True, highlight=False)
    console.print(
        f"\n[bold]In a browser[/]: open {base}/ and sign in with one of the keys above (each"
        f" partner sees its own portal); anyone can check a receipt at {base}/verify.\n"
        f"\n[bold]Try it[/] (the server is starting on {base}; API docs at {base}/docs):\n",
        soft_wrap=True,
        highlight=False,
    )
    a = '-H "Authorization: Bearer $AUDITOR"'
    lines = [
        f"export AUDITOR={keys['tuv-audit']}",
        f"export MAINT={keys['fixit-services']}",
        f"curl -s {a} '{base}/v1/records?kind=prediction&limit=3'",
        f"curl -s {a} {base}/v1/records/{record}/receipt > r.json",
        f"curl -s {a} -H 'content-type: application/json' -d @r.json {base}/v1/verify",
        f"curl -s -H \"Authorization: Bearer $MAINT\" '{base}/v1/feed?limit=5'",
        f"curl -s {a} '{base}/v1/epcis/events?eventType=TransformationEvent&perPage=2'",
        "forgeproof verify r.json --offline",
    ]
    for line in lines:
        console.print(f"  {line}", soft_wrap=True, markup=False, highlight=False)
    console.print()
