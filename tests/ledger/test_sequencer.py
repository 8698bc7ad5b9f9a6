"""The sequencer: policy, anchored receipts, recovery after a crash, fork detection, outages."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ledger.chain.devnode import AnvilNode, find_anvil
from ledger.deployment import Deployment
from ledger.errors import ChainUnavailable, VerificationError
from ledger.ingest import check_record
from ledger.receipts import build_receipt, chain_anchor_source, verify_receipt
from ledger.records import Record
from ledger.sequencer import Policy, Sequencer
from tests.conftest import missing
from tests.ledger.testonly.enrol import enrol

REPO = Path(__file__).resolve().parents[2]


def _deployment(home: Path, **kw: object) -> Deployment:
    dep = Deployment.init(home, **kw)  # type: ignore[arg-type]
    enrol(dep, "acme", ["supplier"])
    return dep


def _append(dep: Deployment, n: int) -> None:
    signer = dep.signer("acme")
    keys = dep.registry.snapshot()
    items = []
    for i in range(n):
        rec = Record.new("supplier_record", {"i": i}, participant="acme", address=signer.address)
        items.append(check_record(rec, signer.sign(dep.domain, rec), dep.domain, keys))
    dep.log.append(items)


def test_policy_anchors_and_receipts(tmp_path: Path) -> None:
    dep = _deployment(tmp_path / "h")
    chain = dep.open_chain()
    seq = Sequencer(dep.log, chain, Policy(every=10, interval_s=3600))
    _append(dep, 9)
    assert seq.step() is None  # 9 < 10 and not old enough
    _append(dep, 1)
    cp = seq.step()
    assert cp is not None and cp.size == 10
    assert chain.latest_checkpoint().size == 10  # type: ignore[union-attr]
    receipt = build_receipt(dep.log, 4, dep.domain)
    assert receipt["anchor"]["block_number"] >= 1
    verdict = verify_receipt(receipt, anchor_source=chain_anchor_source(chain))
    assert verdict.ok and {c.name: c.status for c in verdict.checks}["anchor"] == "ok"
    # Time alone triggers a checkpoint too.
    timed = Sequencer(dep.log, chain, Policy(every=1000, interval_s=0.05))
    _append(dep, 3)
    assert timed.step() is None
    time.sleep(0.06)
    assert timed.step().size == 13  # type: ignore[union-attr]
    chain.close()


def test_crash_between_publish_and_record_is_recovered(tmp_path: Path) -> None:
    dep = _deployment(tmp_path / "h")
    _append(dep, 5)
    chain = dep.open_chain()
    cp = dep.log.checkpoint()
    chain.publish_checkpoint(cp.size, cp.root, [])  # published, then "crashed" before recording
    assert not dep.log.checkpoint_at(5).anchored
    Sequencer(dep.log, chain).step()
    assert dep.log.checkpoint_at(5).anchored
    chain.close()


def test_a_rewritten_history_is_detected(tmp_path: Path) -> None:
    dep = _deployment(tmp_path / "h")
    _append(dep, 4)
    chain = dep.open_chain()
    Sequencer(dep.log, chain).step(force=True)
    # The operator rewrites history: same size, other records.
    with dep.store.transaction() as conn:
        for table in ("records", "nodes", "checkpoints"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
        conn.exec_driver_sql("UPDATE log_state SET size = 0")
    forged = Deployment.open(dep.home)
    _append(forged, 5)
    with pytest.raises(VerificationError, match="forked"):
        Sequencer(forged.log, chain).step(force=True)
    assert chain.latest_checkpoint().size == 4  # type: ignore[union-attr]
    chain.close()


def test_lost_records_are_detected(tmp_path: Path) -> None:
    dep = _deployment(tmp_path / "h")
    _append(dep, 6)
    chain = dep.open_chain()
    Sequencer(dep.log, chain).step(force=True)
    with dep.store.transaction() as conn:
        conn.exec_driver_sql("UPDATE log_state SET size = 3")
    with pytest.raises(VerificationError, match="lost records"):
        Sequencer(Deployment.open(dep.home).log, chain).step()
    chain.close()


@pytest.mark.node
def test_chain_outage_queues_then_publishes(tmp_path: Path) -> None:
    if find_anvil() is None:
        missing("anvil is not installed (npm install)")
    state = tmp_path / "anvil-state.json"
    node = AnvilNode.start("--state", str(state))
    port = node.port
    dep = _deployment(tmp_path / "h", chain_url=node.url)
    from ledger.chain import RetryPolicy

    chain = dep.open_chain(retry=RetryPolicy(attempts=2, initial_delay=0.01), timeout=5.0)
    seq = Sequencer(dep.log, chain, Policy(every=1))
    _append(dep, 3)
    assert seq.step().size == 3  # type: ignore[union-attr]
    node.stop(timeout=20)  # SIGINT: anvil dumps its state on the way out
    _append(dep, 4)  # the node is down: appends go on
    assert dep.log.committed_size() == 7
    with pytest.raises(ChainUnavailable):
        seq.step()
    node = AnvilNode.start("--state", str(state), port=port)
    try:
        cp = seq.step()
        assert cp is not None and cp.size == 7
        assert chain.latest_checkpoint().size == 7  # type: ignore[union-attr]
        assert verify_receipt(
            build_receipt(dep.log, 6, dep.domain), anchor_source=chain_anchor_source(chain)
        ).ok
    finally:
        chain.close()
        node.stop()


def _wait_until_running(proc: subprocess.Popen[str], timeout: float = 120.0) -> threading.Thread:
    """Read the sequencer's log until its loop runs (startup imports are not what we test).

    Returns the thread that keeps draining the pipe, so the child never blocks on it.
    """
    assert proc.stderr is not None
    stderr = proc.stderr
    deadline = time.monotonic() + timeout
    for line in stderr:
        if "sequencer running" in line:
            drain = threading.Thread(target=lambda: [None for _ in stderr], daemon=True)
            drain.start()
            return drain
        assert time.monotonic() < deadline, "the sequencer did not start"
    raise AssertionError(f"the sequencer exited before running (code {proc.wait()})")


@pytest.mark.slow
def test_kill_the_sequencer_fifty_times(tmp_path: Path) -> None:
    """SIGKILL at random moments and at named crash points while records stream in."""
    home = tmp_path / "h"
    _deployment(home).close()
    ack = tmp_path / "acks.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writer_cmd = [sys.executable, "-m", "tests.ledger.testonly.writer", str(home), str(ack)]
    # Records stream in during the whole run; the writer is stopped after the last kill.
    writer = subprocess.Popen([*writer_cmd, "100000000", "0.05"], env=env, cwd=REPO)
    rng = random.Random(5)
    points = ["", "", "after_local_checkpoint", "after_publish"]
    cmd = [sys.executable, "-m", "tests.ledger.testonly.crashing_sequencer"]
    # A killed sequencer's lease lapses before the next one takes over: keep that short here.
    args = ["sequencer", "--home", str(home), "--every", "7", "--interval", "0.2"]
    args += ["--lease-ttl", "0.5"]
    kills = 0
    try:
        while kills < 50:
            point = points[kills % len(points)]
            proc = subprocess.Popen(
                [*cmd, point, *args],
                env=env,
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            drain = _wait_until_running(proc)
            try:
                # At a crash point it ends itself; otherwise kill anywhere in the next rounds.
                proc.wait(timeout=60 if point else rng.uniform(0.0, 4.0))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            drain.join(timeout=10)
            assert proc.stderr is not None
            proc.stderr.close()
            kills += 1
            assert writer.poll() is None, "the writer died"
    finally:
        writer.kill()  # a kill between commit and acknowledgement only loses the ack line
        writer.wait()
    # Afterwards: one clean sequencer round anchors everything.
    dep = Deployment.open(home)
    chain = dep.open_chain()
    Sequencer(dep.log, chain).step(force=True)
    size = dep.log.committed_size()
    # No accepted record lost, none logged twice.
    acked = [line.split() for line in ack.read_text().splitlines()]
    assert len(acked) >= 200
    for index, leaf in acked:
        assert dep.log.get(int(index)).leaf_hash.hex() == leaf
    with dep.store.reading() as conn:
        counts = conn.exec_driver_sql(
            "SELECT COUNT(DISTINCT leaf_hash), COUNT(*) FROM records"
        ).one()
    assert counts[0] == counts[1] == size
    # Never two roots for one size, and every anchored root is the log's.
    events = chain.contract.events.CheckpointPublished.get_logs(from_block=0)
    roots: dict[int, bytes] = {}
    for e in events:
        size_, root = e["args"]["size"], bytes(e["args"]["root"])
        assert roots.setdefault(size_, root) == root
        assert dep.log.root(size_) == root
    assert max(roots) == size and len(roots) >= 10
    # The log resumes: more records, another checkpoint on top.
    subprocess.run([*writer_cmd, str(size + 5)], env=env, cwd=REPO, check=True)
    dep.log.refresh()
    again = Sequencer(dep.log, chain).step(force=True)
    assert again is not None and again.size >= size + 5
    print(json.dumps({"kills": kills, "records": size, "checkpoints": len(roots)}))
    chain.close()
