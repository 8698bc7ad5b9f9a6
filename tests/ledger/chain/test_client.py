"""ChainClient against both chains: the embedded one and (marked `node`) a real anvil process.

Each test deploys its own contract. What only a JSON-RPC node can do (reorgs, snapshots,
blocks arriving later) is tested on anvil alone, at the end of the file.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from web3 import Web3
from web3.types import RPCEndpoint, RPCResponse

from ledger.chain import DEPLOYMENT_FILE, ChainClient, Deployment, RetryPolicy
from ledger.errors import (
    ChainUnavailable,
    CheckpointConflict,
    ContractMismatch,
    NotFound,
    TransactionReverted,
    VerificationError,
)
from ledger.signing import Signer, sign_key_binding
from tests.ledger.chain.testonly import ChainEnv, free_port, register
from tests.ledger.testonly.trees import MemoryTree


@pytest.fixture(scope="module")
def tree() -> MemoryTree:
    return MemoryTree().extend_to(600)


def test_publish_and_read_back(env: ChainEnv, tree: MemoryTree) -> None:
    client = env.deploy()
    anchors = []
    previous = 0
    for size in (3, 64, 65, 200, 513):
        proof = tree.consistency(previous, size) if previous else []
        anchors.append(client.publish_checkpoint(size, tree.root(size), proof))
        previous = size
    latest = client.latest_checkpoint()
    assert latest is not None and (latest.size, latest.root) == (513, tree.root(513))
    assert client.checkpoint_count() == 5
    for anchor in anchors:
        assert anchor.chain_id == client.chain_id == env.w3.eth.chain_id
        assert anchor.contract == client.address
        assert anchor.gas_used is not None and 50_000 < anchor.gas_used < 150_000
        receipt = env.w3.eth.get_transaction_receipt(anchor.tx_hash)  # type: ignore[arg-type]
        assert receipt["status"] == 1 and receipt["blockNumber"] == anchor.block_number
        # Everything but gas can be recovered from chain state alone.
        recovered = client.anchor_of(anchor.size)
        assert recovered == Anchor_without_gas(anchor)
        assert client.require_checkpoint(anchor.size, tree.root(anchor.size)).block_number == (
            anchor.block_number
        )
    assert client.verify_inclusion(200, 150, tree.leaf_hash(150), tree.inclusion(150, 200)) == (
        tree.root(200)
    )
    assert anchors[0].to_json()["root"] == "0x" + tree.root(3).hex()


def Anchor_without_gas(anchor: Any) -> Any:
    return type(anchor)(**{**anchor.__dict__, "gas_used": None})


def test_check_anchor_against_chain_state(env: ChainEnv, tree: MemoryTree) -> None:
    client = env.deploy()
    anchor = client.publish_checkpoint(30, tree.root(30), [])
    claims = {k: v for k, v in anchor.to_json().items() if k in CLAIMS}
    assert client.check_anchor(30, tree.root(30), **claims).tx_hash == anchor.tx_hash
    for key, wrong, says in [
        ("chain_id", 1, "names chain 1"),
        ("contract", "0x" + "11" * 20, "names contract"),
        ("block_number", anchor.block_number + 1, "anchored in block"),
        ("tx_hash", "0x" + "22" * 32, "anchored by"),
    ]:
        with pytest.raises(VerificationError, match=says):
            client.check_anchor(30, tree.root(30), **{**claims, key: wrong})
    with pytest.raises(VerificationError, match="anchors root"):
        client.check_anchor(30, tree.root(31), **claims)
    with pytest.raises(NotFound):
        client.check_anchor(31, tree.root(31))


CLAIMS = ("chain_id", "contract", "tx_hash", "block_number")


def test_publish_is_idempotent_and_refuses_conflicts(env: ChainEnv, tree: MemoryTree) -> None:
    client = env.deploy()
    first = client.publish_checkpoint(10, tree.root(10), [])
    second = client.publish_checkpoint(20, tree.root(20), tree.consistency(10, 20))
    height = client.block_number()
    # A retry after a crash between sending and recording: no new transaction, same anchor.
    again = client.publish_checkpoint(10, tree.root(10), [])
    assert (again.tx_hash, again.block_number) == (first.tx_hash, first.block_number)
    assert client.publish_checkpoint(20, tree.root(20), []).tx_hash == second.tx_hash
    assert client.block_number() == height
    with pytest.raises(CheckpointConflict, match="size 10"):
        client.publish_checkpoint(10, tree.root(11), [])


def test_proof_source_is_asked_for_the_latest_size(env: ChainEnv, tree: MemoryTree) -> None:
    client = env.deploy()
    asked: list[int] = []

    def proof_from(latest: int) -> list[bytes]:
        asked.append(latest)
        return tree.consistency(latest, 300) if latest else []

    client.publish_checkpoint(100, tree.root(100), proof_from)
    client.publish_checkpoint(300, tree.root(300), proof_from)
    assert asked == [0, 100]


def test_reverts_decode_to_the_same_error_on_every_chain(env: ChainEnv, tree: MemoryTree) -> None:
    client = env.deploy()
    client.publish_checkpoint(6, tree.root(6), [])
    # Not an extension of the anchored log (6 is no power of two: the proof carries its root).
    other = MemoryTree(b"other").extend_to(16)
    with pytest.raises(TransactionReverted) as info:
        client.publish_checkpoint(16, other.root(16), other.consistency(6, 16))
    assert info.value.error_name == "OldRootMismatch"
    assert info.value.error_args == {
        "computed": "0x" + other.root(6).hex(),
        "expected": "0x" + tree.root(6).hex(),
    }
    outsider = client.with_account(env.new_account().key)
    with pytest.raises(TransactionReverted) as info:
        outsider.publish_checkpoint(16, tree.root(16), tree.consistency(6, 16))
    assert info.value.error_name == "NotOperator"
    assert info.value.error_args == {"sender": outsider.account.address.lower()}
    with pytest.raises(TransactionReverted) as info:
        client.call("participantIdAt", 7)
    assert (info.value.error_name, info.value.error_args) == (
        "ParticipantIndexOutOfRange",
        {"index": 7, "count": 1},
    )


def test_a_mined_failure_is_an_error_not_a_result(env: ChainEnv, tree: MemoryTree) -> None:
    """Too little gas: the node mines the transaction with status 0 and we must say so."""
    client = env.deploy()
    client.publish_checkpoint(8, tree.root(8), [])
    starved = ChainClient(
        env.w3,
        private_key=client.account.key,
        address=client.address,
        gas_margin=0.5,
        gas_headroom=0,
    )
    with pytest.raises(TransactionReverted, match=r"failed in block \d+ \(gas used") as info:
        starved.publish_checkpoint(16, tree.root(16), tree.consistency(8, 16))
    assert info.value.tx_hash is not None
    receipt = env.w3.eth.get_transaction_receipt(info.value.tx_hash)  # type: ignore[arg-type]
    assert receipt["status"] == 0
    assert client.latest_checkpoint() is not None
    assert client.latest_checkpoint().size == 8  # type: ignore[union-attr]


def test_nonce_is_resynchronised_when_someone_else_used_the_key(
    env: ChainEnv, tree: MemoryTree
) -> None:
    client = env.deploy()
    twin = client.with_account(client.account.key)
    register(client, "a", "A", ["supplier"])  # caches client's next nonce
    register(twin, "b", "B", ["supplier"])  # uses that nonce behind its back
    register(client, "c", "C", ["supplier"])  # must recover and re-sign
    assert [p.id for p in client.participants()] == ["operator", "a", "b", "c"]


def test_registry_round_trip(env: ChainEnv) -> None:
    client = env.deploy()
    first, second, third = (env.new_account() for _ in range(3))
    register(client, "acme", "Acme Steel", ["supplier", "model_publisher"], first)
    added = client.key_info(first.address).valid_from
    acme = client.with_account(first.key)

    def proof(account: Any) -> bytes:
        return sign_key_binding(
            Signer(bytes(account.key)), client.domain, "acme", account.address,
            client.key_nonce("acme"),
        )  # fmt: skip

    acme.add_key("acme", second.address, proof(second))
    rotated = acme.rotate_key(first.address, third.address, proof(third))
    effective = rotated.block_number
    revoked = client.revoke_key(second.address)
    env.mine()

    p = client.participant("acme")
    assert (p.name, p.roles) == ("Acme Steel", {"supplier", "model_publisher"})
    assert p.keys == tuple(a.address.lower() for a in (first, second, third))
    k = client.key_info(first.address)
    assert (k.participant_id, k.valid_from, k.revoked_from) == (
        "acme",
        added,
        effective,
    )
    assert client.key_info(third.address).valid_from == effective
    assert client.key_info(second.address).revoked_from == revoked.block_number
    for key, block, valid in [
        (first, effective - 1, True),
        (first, effective, False),
        (third, effective - 1, False),
        (third, effective, True),
        (second, revoked.block_number - 1, True),
        (second, revoked.block_number, False),
    ]:
        assert client.key_valid_at("acme", key.address, block=block) is valid
        assert client.key_info(key.address).valid_at(block) is valid
    stamp = int(env.w3.eth.get_block(effective)["timestamp"])
    assert client.key_valid_at("acme", third.address, timestamp=stamp)
    assert client.require_key("acme", third.address).address == third.address.lower()
    assert client.is_operator() and not client.is_operator(third.address)


def test_attach_to_other_code_is_refused(env: ChainEnv) -> None:
    from ledger.chain import load_artifact

    baseline = load_artifact("RecordAnchor")
    operator = env.new_account()
    client, _ = ChainClient.deploy(env.w3, private_key=operator.key)
    other = client.w3.eth.contract(abi=baseline.abi, bytecode=baseline.bytecode)
    data = other.constructor().data_in_transaction
    _, receipt = client._send({"data": data}, "deploy RecordAnchor")
    with pytest.raises(ContractMismatch, match="not this ProvenanceLedger build"):
        ChainClient(env.w3, private_key=operator.key, address=receipt["contractAddress"])


# ------------------------------------------------------------------------------- node failures
def flaky(env: ChainEnv, failures: list[int]) -> Web3:
    """A Web3 on `env`'s chain whose next `failures[0]` requests fail to connect."""
    provider = env.fresh_provider()
    real = provider.make_request

    def make_request(method: RPCEndpoint, params: Any) -> RPCResponse:
        if failures[0] > 0:
            failures[0] -= 1
            raise requests.exceptions.ConnectionError(f"simulated outage ({method})")
        return real(method, params)

    provider.make_request = make_request
    return Web3(provider)


def test_transient_failures_are_retried_with_backoff(env: ChainEnv, tree: MemoryTree) -> None:
    client = env.deploy()
    failures = [0]
    flaky_client = ChainClient(
        flaky(env, failures),
        private_key=client.account.key,
        address=client.address,
        retry=RetryPolicy(attempts=4, initial_delay=0.01),
    )
    failures[0] = 3
    started = time.monotonic()
    flaky_client.publish_checkpoint(5, tree.root(5), [])
    assert time.monotonic() - started >= 0.01 + 0.02 + 0.04  # three backoffs, doubling
    assert client.checkpoint(5).root == tree.root(5)
    failures[0] = 4
    with pytest.raises(ChainUnavailable, match="after 4 attempt"):
        flaky_client.latest_checkpoint()


def test_unreachable_node_is_chain_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(ChainUnavailable, match="unreachable"):
        ChainClient.from_url(
            url,
            private_key=b"\x01" * 32,
            retry=RetryPolicy(attempts=2, initial_delay=0.01),
            request_timeout=1.0,
        )


# ------------------------------------------------------------------------------- anvil only
@pytest.mark.node
def test_reorg_dropping_a_checkpoint_republishes_it(anvil_env: ChainEnv, tree: MemoryTree) -> None:
    env = anvil_env
    client = env.deploy()
    client.publish_checkpoint(50, tree.root(50), [])
    pending = client.submit_checkpoint(120, tree.root(120), tree.consistency(50, 120))
    sent = pending.anchor
    env.rpc("anvil_reorg", [1, []])  # replace the block that held it, without the tx
    assert client.find_checkpoint(120) is None
    anchor = client.wait_anchored(pending)
    assert pending.republished == 1
    assert anchor.block_hash != sent.block_hash
    assert client.require_checkpoint(120, tree.root(120)).block_number == anchor.block_number


@pytest.mark.node
def test_reorg_deeper_than_the_previous_checkpoint_reproves(
    anvil_env: ChainEnv, tree: MemoryTree
) -> None:
    """A snapshot revert takes two checkpoints away; a proof source re-proves from the one
    that survived."""
    env = anvil_env
    client = env.deploy()
    client.publish_checkpoint(40, tree.root(40), [])
    snapshot = env.rpc("evm_snapshot", [])
    client.publish_checkpoint(90, tree.root(90), tree.consistency(40, 90))
    asked: list[int] = []

    def proof_from(latest: int) -> list[bytes]:
        asked.append(latest)
        return tree.consistency(latest, 150)

    pending = client.submit_checkpoint(150, tree.root(150), proof_from)
    env.rpc("evm_revert", [snapshot])
    env.mine(3)  # the chain moves on without them
    anchor = client.wait_anchored(pending)
    assert asked == [90, 40]
    assert pending.republished == 1
    assert client.find_checkpoint(90) is None
    cp = client.require_checkpoint(150, tree.root(150))
    assert (cp.previous_size, cp.block_number) == (40, anchor.block_number)


@pytest.mark.node
def test_confirmation_depth_waits_for_later_blocks(anvil_env: ChainEnv, tree: MemoryTree) -> None:
    env = anvil_env
    client = env.deploy(confirmations=3, poll_interval=0.01, timeout=30)
    stop = threading.Event()

    def miner() -> None:  # blocks keep coming, as on a live chain
        while not stop.wait(0.05):
            env.mine()

    thread = threading.Thread(target=miner)
    thread.start()
    try:
        anchor = client.publish_checkpoint(4, tree.root(4), [])
    finally:
        stop.set()
        thread.join()
    assert client.block_number() >= anchor.block_number + 2


@pytest.mark.node
def test_from_url_deploys_once_then_attaches(anvil_env: ChainEnv, tmp_path: Path) -> None:
    operator = anvil_env.new_account()
    file = tmp_path / DEPLOYMENT_FILE
    client = ChainClient.from_url(anvil_env.url, private_key=operator.key, deployment_file=file)
    again = ChainClient.from_url(anvil_env.url, private_key=operator.key, deployment_file=file)
    deployment = Deployment.load(file)
    assert again.address == client.address == deployment.contract
    assert again.deployment_block == deployment.block_number
    assert (deployment.deployer, deployment.chain_id) == (operator.address.lower(), 31337)
    by_address = ChainClient.from_url(
        anvil_env.url, private_key=operator.key, address=client.address
    )
    assert by_address.is_operator()
    with pytest.raises(ContractMismatch, match="no contract"):
        ChainClient(anvil_env.w3, private_key=operator.key, address=operator.address)


@pytest.mark.node
def test_confirmation_timeout_is_chain_unavailable(anvil_env: ChainEnv, tree: MemoryTree) -> None:
    client = anvil_env.deploy(confirmations=5, timeout=0.3, max_poll_interval=0.05)
    with pytest.raises(ChainUnavailable, match="5 confirmations"):
        client.publish_checkpoint(4, tree.root(4), [])
    # It is on chain all the same; the next attempt finds it and waits again.
    assert client.find_checkpoint(4) is not None
