"""Federated training with every round in the log (api/federation, docs/federated.md).

One real federation (a server and three plant clients, each its own process, Flower over
loopback, two training rounds) and the audit of what it published, then the tamperings the
audit must name; the server's refusals are driven in-process through the same strategy and
plant code, without Flower's transport.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from api.federation.client import PlantNode
from api.federation.records import sha256_0x
from api.federation.server import LedgerStrategy, as_parameters, payload_bytes, publish
from api.federation.verify import verify_training
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("federation")]


def _simulate(shared_dir: Path, root: Path, *extra: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "api.cli", "fl", "simulate",
           "--data-dir", str(shared_dir / "data" / "cmapss"), "--out", str(root / "model"),
           "--home", str(root / "home"), "--rounds", "2", "--json", *extra]  # fmt: skip
    done = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=os.environ
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def federation(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("federation")
    summary = _simulate(shared_dir, root)
    return {"root": root, "home": root / "home", "model": root / "model", "summary": summary}


def test_a_real_federation_logs_every_round_and_passes_its_audit(federation: dict) -> None:
    rounds = federation["summary"]["rounds"]
    # normalisation, two training rounds, selection, calibration; three plants each, none refused
    assert [r["round"] for r in rounds] == [0, 1, 2, 3, 4]
    assert all(len(r["updates"]) == 3 and not r["refused"] for r in rounds)
    verdict = verify_training(federation["model"], home=federation["home"])
    assert verdict.ok and verdict.exit_code == 0, verdict.lines()
    offline = verify_training(federation["model"])
    assert not offline.failed and offline.exit_code == 3  # keys and anchors not checked
    manifest = json.loads((federation["model"] / "manifest.json").read_text())
    assert manifest["config"]["federation"]["rounds"] == [r["record"] for r in rounds]


def _copy(federation: dict, tmp_path: Path) -> Path:
    model = tmp_path / "model"
    shutil.copytree(federation["model"], model)
    return model


def _reasons(model: Path, home: Path | None = None) -> str:
    verdict = verify_training(model, home=home)
    assert verdict.exit_code == 1
    return " | ".join(f"{f.name}: {f.detail}" for f in verdict.failed)


def test_a_changed_update_is_named(federation: dict, tmp_path: Path) -> None:
    model = _copy(federation, tmp_path)
    # a training round's weights (the largest files; the selection round's are empty)
    update = max((model / "training" / "updates").glob("*.bin"), key=lambda f: f.stat().st_size)
    data = bytearray(update.read_bytes())
    data[-5] ^= 0x01
    update.write_bytes(bytes(data))
    assert "a changed update" in _reasons(model)


def test_a_missing_round_is_named(federation: dict, tmp_path: Path) -> None:
    model = _copy(federation, tmp_path)
    path = model / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["config"]["federation"]["rounds"][1]
    path.write_text(json.dumps(manifest))
    assert "a round is missing" in _reasons(model)
    # ... and lowering the manifest's plan to match does not hide it: round 0 signed the plan.
    manifest["config"]["training"]["rounds"] -= 1
    path.write_text(json.dumps(manifest))
    assert "the signed plan has 2 training rounds" in _reasons(model)


def test_swapped_final_weights_are_named(federation: dict, tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    from ml.manifest import sha256_file

    model = _copy(federation, tmp_path)
    weights = model / "weights.safetensors"
    # The round-0 weights, passed off as the result (the manifest fixed to match them).
    initial = load_file(str(model / "training" / "initial.safetensors"))
    save_file(initial, str(weights))
    path = model / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["weights_sha256"] = sha256_file(weights)
    path.write_text(json.dumps(manifest))
    assert "final weights" in _reasons(model)


# ---------------------------------------------------------------- in-process: the refusals


class _Clients:
    """Flower's client manager, as far as the strategy uses it."""

    def __init__(self, n: int) -> None:
        self.n = n

    def wait_for(self, n: int, timeout: int) -> bool:
        return True

    def num_available(self) -> int:
        return self.n

    def sample(self, num_clients: int) -> list[int]:
        return list(range(num_clients))


def _run(strategy: LedgerStrategy, nodes: list[PlantNode], turn: Any = None) -> None:
    """Every round of a federation, the plants answering in turn; `turn(round)` is called
    after the normalisation round."""
    params = strategy.initialize_parameters(None)
    for server_round in range(1, strategy.flower_rounds + 1):
        if server_round == 2 and turn is not None:
            turn()
        asks = strategy.configure_fit(server_round, params, _Clients(len(nodes)))
        results = []
        for node, (_, ins) in zip(nodes, asks, strict=True):
            data, n, metrics = node.answer(payload_bytes(ins.parameters), ins.config)
            res = SimpleNamespace(parameters=as_parameters(data), num_examples=n, metrics=metrics)
            results.append((None, res))
        params, _ = strategy.aggregate_fit(server_round, results, [])


@pytest.fixture
def plant_deployment(shared_dir: Path, tmp_path: Path) -> Any:
    from api.config import Settings
    from api.federation.cli import enrol_plants, plant_participant
    from api.server import build
    from ml.federated import PlantClient, default_plants

    data = shared_dir / "data" / "cmapss"
    plants = default_plants(data, seed=0)
    names = [plant_participant(p.name) for p in plants]
    home = tmp_path / "home"
    keys = enrol_plants(home, names)
    running = build(Settings(home=home, checkpoint_every=1_000_000, checkpoint_interval_s=3600))
    clients = [PlantClient.from_dir(p, data, 0) for p in plants]
    yield SimpleNamespace(running=running, names=names, keys=keys, clients=clients, home=home)
    running.close()


def _signer(path: Path) -> Any:
    from ledger.keystore import decrypt_key

    return decrypt_key(path.read_bytes(), os.environ["FORGEPROOF_KEY_PASSPHRASE"])


def test_the_server_refuses_a_tampered_update_and_a_foreign_key(
    plant_deployment: Any, tmp_path: Path
) -> None:
    from ledger.signing import Signer
    from ml.federated import FedSettings

    d = plant_deployment
    honest = PlantNode(d.clients[0], _signer(d.keys[d.names[0]]), d.names[0])
    tampered = PlantNode(d.clients[1], _signer(d.keys[d.names[1]]), d.names[1])
    foreign = PlantNode(d.clients[2], _signer(d.keys[d.names[2]]), d.names[2])

    def turn() -> None:  # after the normalisation round, two plants go bad
        tampered.tamper = True
        foreign.signer = Signer.generate()  # not its registered key

    strategy = LedgerStrategy(
        d.running.service,
        federation="fl-test",
        plants=d.names,
        settings=FedSettings(rounds=1),
        seed=0,
        out=tmp_path / "model",
    )
    _run(strategy, [honest, tampered, foreign], turn)
    size = d.running.service.dep.log.size
    assert len(strategy.rounds[0].updates) == 3
    for entry in strategy.rounds[1:]:
        assert list(entry.updates) == [d.names[0]]
        reasons = {r["claimed_plant"]: r["reason"] for r in entry.refused}
        assert "not the update the plant signed" in reasons[d.names[1]]
        assert "the ledger refused its record" in reasons[d.names[2]]
    # Refused updates changed nothing: only the honest plant's records and the rounds' went in.
    log = d.running.service.dep.log
    records = [log.get(i).record() for i in range(size - 4, size)]
    assert [(r.kind, r.producer.participant) for r in records] == [
        ("fl_update", d.names[0]), ("fl_round", "operator"),
    ] * 2  # fmt: skip
    last = log.find(bytes.fromhex(strategy.rounds[-1].record[2:])).record()
    assert len(last.payload["refused"]) == 2
    assert last.payload["missing"] == d.names[1:]  # no accepted update: a fact, not a claim
    # The published model's audit passes: the refusals are in its rounds' records.
    summary = publish(strategy, d.running, tmp_path / "model")
    # An auditor's view over the API: the chain walked over the log, with its receipts.
    from fastapi.testclient import TestClient

    from api.auth import create_api_key

    store = d.running.service.dep.store
    url = f"/v1/models/{summary['manifest_digest']}/training"
    with TestClient(d.running.app) as client:
        auth = {"Authorization": f"Bearer {create_api_key(store, 'operator', 'operator')}"}
        body = client.get(url, headers=auth).json()
        plant = {"Authorization": f"Bearer {create_api_key(store, d.names[0], 'manufacturer')}"}
        assert client.get(url, headers=plant).status_code == 403
    assert body["failed"] == [] and body["federation"] == "fl-test"
    assert len(body["receipts"]) == 4 + 3 + 1 + 1 + 1  # four rounds; 3, then 1, 1, 1 updates
    statuses = {f["name"]: f["status"] for f in body["findings"]}
    assert statuses["chain"] == "ok" and statuses["final weights"] == "unmade"
    d.running.close()
    verdict = verify_training(tmp_path / "model", home=d.home)
    assert verdict.ok, verdict.lines()


def test_an_update_from_a_foreign_key_fails_the_audit_even_if_the_server_took_it(
    plant_deployment: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compromised server that appends an update signed by a key not registered to its
    plant (straight into the log, past the checks) cannot pass the audit: the receipt's key
    check is made against the chain, not the server."""
    from ledger.ingest import Accepted
    from ledger.registry import now_us
    from ledger.signing import Signer
    from ml.federated import FedSettings

    d = plant_deployment
    service = d.running.service
    nodes = [PlantNode(c, _signer(d.keys[n]), n) for c, n in zip(d.clients, d.names, strict=True)]
    real_submit = service.submit

    def lax_submit(record: Any, signature: bytes) -> Any:
        if record.producer.address == nodes[2].signer.address:
            accepted = Accepted(record.canonical_bytes(), record.leaf_hash(), signature,
                                record.kind, record.producer.participant,
                                record.producer.address, now_us())  # fmt: skip
            return service.append([accepted], [record.payload])[0]
        return real_submit(record, signature)

    monkeypatch.setattr(service, "submit", lax_submit)
    strategy = LedgerStrategy(
        service,
        federation="fl-forged",
        plants=d.names,
        settings=FedSettings(rounds=1),
        seed=0,
        out=tmp_path / "model",
    )

    def turn() -> None:
        nodes[2].signer = Signer.generate()

    _run(strategy, nodes, turn)
    assert all(len(r.updates) == 3 for r in strategy.rounds)
    publish(strategy, d.running, tmp_path / "model")
    d.running.close()
    reasons = _reasons(tmp_path / "model", home=d.home)
    assert "round 1 update" in reasons and "key" in reasons


def test_update_digests_are_over_the_bytes_sent() -> None:
    data = np.arange(10, dtype=np.uint8).tobytes()
    assert payload_bytes(as_parameters(data)) == data
    assert sha256_0x(data).startswith("0x") and len(sha256_0x(data)) == 66


def test_an_outsider_and_a_crashed_plant_change_nothing(
    plant_deployment: Any, tmp_path: Path
) -> None:
    """A participant that is not one of the federation's plants is refused before the ledger
    sees its record; a plant whose process died is a transport failure, and the round's record
    lists it as missing (a fact), not by anyone's claim."""
    from ledger.signing import Signer
    from ml.federated import FedSettings

    d = plant_deployment
    nodes = [PlantNode(c, _signer(d.keys[n]), n) for c, n in zip(d.clients, d.names, strict=True)]
    outsider = PlantNode(d.clients[0], Signer.generate(), "acme")
    strategy = LedgerStrategy(
        d.running.service,
        federation="fl-outsider",
        plants=d.names,
        settings=FedSettings(rounds=1),
        seed=0,
        out=tmp_path / "model",
    )
    asks = strategy.configure_fit(1, strategy.initialize_parameters(None), _Clients(4))
    results = []
    for node, (_, ins) in zip([nodes[0], nodes[1], outsider], asks, strict=False):
        data, n, metrics = node.answer(payload_bytes(ins.parameters), ins.config)
        res = SimpleNamespace(parameters=as_parameters(data), num_examples=n, metrics=metrics)
        results.append((None, res))
    size = d.running.service.dep.log.size
    strategy.aggregate_fit(1, results, [ConnectionError("plant-fd002-b went away")])
    entry = strategy.rounds[0]
    assert list(entry.updates) == d.names[:2]
    reasons = [(r["claimed_plant"], r["reason"]) for r in entry.refused]
    assert ("acme", "'acme' is not a plant of this federation") in reasons
    assert any(p is None and "failed to answer" in why for p, why in reasons)
    assert entry.missing == [d.names[2]]
    # Two plants' records and the round's went in; nothing of the outsider's.
    log = d.running.service.dep.log
    appended = [log.get(i).record() for i in range(size, log.size)]
    assert [r.producer.participant for r in appended] == [*d.names[:2], "operator"]
