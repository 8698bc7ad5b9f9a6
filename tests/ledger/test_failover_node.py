"""Against a real node (anvil): processes started together, a node that is down at start-up,
and a node that loses its newest blocks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from fastapi.testclient import TestClient

from api.auth import create_api_key
from api.config import Settings
from api.server import build
from ledger.chain.devnode import AnvilNode, find_anvil
from ledger.errors import ChainUnavailable
from ledger.log import Log
from ledger.receipts import build_receipt, chain_anchor_source, verify_receipt
from ledger.records import Record
from ledger.sequencer import Policy, Sequencer
from tests.ledger.test_sequencer import REPO, _append, _deployment

pytestmark = pytest.mark.node


@pytest.fixture(autouse=True)
def _anvil() -> None:
    if find_anvil() is None:
        pytest.fail("anvil is not installed (npm install)")


def _rpc(url: str, method: str, *params: Any) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    return requests.post(url, json=body, timeout=10).json()["result"]


BUILD = """
import json, sys
from api.config import Settings
from api.server import build
running = build(Settings(home=sys.argv[1], chain_url=sys.argv[2]))
print(json.dumps({"contract": running.service.dep.domain.verifying_contract,
                  "created": running.first_api_key is not None}))
running.close()
"""


def test_processes_started_together_make_one_deployment(tmp_path: Path) -> None:
    """Three `up` at the same moment on a fresh HOME: one deploys the contract and writes the
    deployment; the others open it. (Both deployed; the loser's address overwrote the file.)"""
    home = tmp_path / "h"
    with AnvilNode.start() as node:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", BUILD, str(home), node.url],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        outs = [p.communicate(timeout=240) for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in outs]
        results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
        assert len({r["contract"] for r in results}) == 1
        assert sorted(r["created"] for r in results) == [False, False, True]
        contract = results[0]["contract"]
        written = json.loads((home / "chain-deployment.json").read_text())["contract"]
        assert written == contract.lower()
        # One contract on the node: the operator's key sent one deployment.
        deployed = [
            tx
            for n in range(int(_rpc(node.url, "eth_blockNumber"), 16) + 1)
            for tx in _rpc(node.url, "eth_getBlockByNumber", hex(n), True)["transactions"]
            if tx["to"] is None
        ]
        assert len(deployed) == 1


@pytest.mark.postgres
def test_a_database_serves_one_deployment(tmp_path: Path, postgres_url: str) -> None:
    """Hosts do not share a home lock: a second `init` against a database in use (another
    host's fresh home, say) is refused before it deploys anything, and a home whose contract
    is not the database's cannot open it."""
    from ledger.deployment import CLAIM, Deployment
    from ledger.errors import ContractMismatch, InputError
    from tests.conftest import postgres_schema

    with postgres_schema(postgres_url) as url, AnvilNode.start() as node:
        first = Deployment.init(tmp_path / "a", database_url=url, chain_url=node.url)
        contract = first.domain.verifying_contract.lower()
        first.close()
        blocks = _rpc(node.url, "eth_blockNumber")
        with pytest.raises(InputError, match=f"already serves a deployment \\(contract {contract}"):
            Deployment.init(tmp_path / "b", database_url=url, chain_url=node.url)
        assert _rpc(node.url, "eth_blockNumber") == blocks  # no second contract deployed
        assert not (tmp_path / "b" / "config.json").exists()

        other = Deployment.init(tmp_path / "c", chain_url=node.url)  # its own database
        config = json.loads((tmp_path / "c" / "config.json").read_text())
        other.close()
        config["database_url"] = url  # pointed at the first deployment's database
        (tmp_path / "c" / "config.json").write_text(json.dumps(config))
        with pytest.raises(ContractMismatch, match=f"serves the deployment of contract {contract}"):
            Deployment.open(tmp_path / "c")

        reopened = Deployment.open(tmp_path / "a")
        with reopened.store.reading() as conn:
            from sqlalchemy import text

            holder = conn.execute(
                text("SELECT holder FROM leases WHERE name = :n"), {"n": CLAIM}
            ).scalar()
        assert holder == contract
        reopened.close()


def test_up_starts_serves_and_appends_while_the_node_is_down(tmp_path: Path) -> None:
    state = tmp_path / "anvil-state.json"
    node = AnvilNode.start("--state", str(state))
    home = tmp_path / "h"
    dep = _deployment(home, chain_url=node.url)
    signer = dep.signer("acme")
    dep.close()
    port = node.port
    node.stop(timeout=20)  # SIGINT: anvil dumps its state on the way out

    running = build(Settings(home=home, chain_url=f"http://127.0.0.1:{port}"))
    try:
        service = running.service
        key = create_api_key(service.dep.store, "acme", "supplier", registry=service.dep.registry)
        client = TestClient(running.app)
        rec = Record.new(
            "supplier_record", {"lot": "L1"}, participant="acme", address=signer.address
        )
        body = {"record": rec.to_json(), "signature": "0x" + signer.sign(dep.domain, rec).hex()}
        auth = {"Authorization": f"Bearer {key}"}
        posted = client.post("/v1/records", json=body, headers=auth)
        assert posted.status_code == 201, posted.text
        got = client.get(f"/v1/records/{posted.json()['id']}/receipt", headers=auth)
        assert got.status_code == 202 and got.json()["status"] == "pending"
        service.monitor.probe_chain()
        assert client.get("/healthz").json()["chain"] == {
            "reachable": False,
            "block": None,
            "error": "ChainUnavailable",
            "probed_seconds_ago": pytest.approx(0, abs=5),
        }
        assert running.sequencer is not None
        with pytest.raises(ChainUnavailable):
            running.sequencer.step(force=True)

        node = AnvilNode.start("--state", str(state), port=port)  # the node returns
        deadline = time.monotonic() + 30
        while True:
            try:
                cp = running.sequencer.step(force=True)
                break
            except ChainUnavailable:
                assert time.monotonic() < deadline
                time.sleep(0.5)
        assert cp is not None and cp.size == service.dep.log.committed_size()
        receipt = client.get(f"/v1/records/{posted.json()['id']}/receipt", headers=auth).json()
        assert receipt["status"] == "anchored"
    finally:
        running.close()
        node.stop()


def test_a_node_that_lost_blocks_gets_its_anchors_republished(tmp_path: Path) -> None:
    """The node is restored from a state taken before the last anchor: the database must not
    keep calling that checkpoint anchored, and the next publication must not wait forever on
    a nonce the node has rolled back."""
    with AnvilNode.start() as node:
        dep = _deployment(tmp_path / "h", chain_url=node.url)
        chain = dep.open_chain(timeout=60.0)
        seq = Sequencer(dep.log, chain, Policy(every=1))
        _append(dep, 3)
        assert seq.step().size == 3  # type: ignore[union-attr]
        snapshot = _rpc(node.url, "evm_snapshot")
        _append(dep, 2)
        assert seq.step().size == 5  # type: ignore[union-attr]
        assert dep.log.checkpoint_at(5).anchored
        assert _rpc(node.url, "evm_revert", snapshot) is True  # checkpoint 5 is gone

        # Sent as before, the next transaction would carry a nonce the node no longer expects
        # and never be mined: it is found out within seconds, not at the 60 s timeout.
        started = time.monotonic()
        with pytest.raises(ChainUnavailable, match="cannot be mined"):
            chain.publish_checkpoint(5, dep.log.root(5), dep.log.consistency_proof(3, 5).hashes)
        assert time.monotonic() - started < 15

        _append(dep, 1)
        assert seq.step().size == 6  # type: ignore[union-attr]
        assert not dep.log.checkpoint_at(5).anchored  # pending again, never served as anchored
        assert seq.unanchored == 1
        source = chain_anchor_source(chain)
        for index in range(6):
            verdict = verify_receipt(
                build_receipt(dep.log, index, dep.domain), anchor_source=source
            )
            assert verdict.ok, (index, verdict)

        # Lost, then covered again from elsewhere: the chain holds 6 (ours) but not 5, which a
        # second database's sequencer had anchored before the rollback. Checked on start-up.
        snapshot = _rpc(node.url, "evm_snapshot")
        _append(dep, 1)
        assert seq.step().size == 7  # type: ignore[union-attr]
        _rpc(node.url, "evm_revert", snapshot)
        chain.resync()
        _append(dep, 1)
        assert dep.log.checkpoint().size == 8
        chain.publish_checkpoint(8, dep.log.root(8), dep.log.consistency_proof(6, 8).hashes)
        restarted = Sequencer(Log(dep.store), chain, Policy(every=1))
        restarted.step()
        assert not dep.log.checkpoint_at(7).anchored and dep.log.checkpoint_at(8).anchored
        chain.close()
