"""The embedded chain survives its process: real restarts, and kills at random moments."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from eth_account import Account

from ledger.chain import DEPLOYMENT_FILE, ChainClient, contract_address
from ledger.errors import ChainUnavailable
from tests.ledger.chain.testonly import register
from tests.ledger.testonly.trees import MemoryTree

REPO = Path(__file__).resolve().parents[3]

# A child process: open the embedded chain at argv[1] and run argv[2] against `client`.
CHILD = textwrap.dedent(
    """
    import json, sys
    from ledger.chain import ChainClient
    from tests.ledger.chain.testonly import register
    from tests.ledger.testonly.trees import MemoryTree
    tree = MemoryTree().extend_to(2000)
    client = ChainClient.embedded(sys.argv[1])
    def say(**kw):
        print(json.dumps(kw), flush=True)
    exec(sys.argv[2])
    """
)


def child(path: Path, code: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), textwrap.dedent(code)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
        **kwargs,  # type: ignore[call-overload]
    )


def run_child(path: Path, code: str) -> list[dict[str, object]]:
    proc = child(path, code)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_state_survives_a_restart(chain_dir: Path) -> None:
    key = Account.create()
    [written] = run_child(
        chain_dir,
        f"""
        from eth_account import Account
        register(client, "acme", "Acme Steel", ["supplier"], Account.from_key("{key.key.hex()}"))
        anchors = [
            client.publish_checkpoint(10, tree.root(10), []),
            client.publish_checkpoint(100, tree.root(100), tree.consistency(10, 100)),
        ]
        say(address=client.address, block=client.block_number(),
            anchors=[a.to_json() for a in anchors])
        """,
    )
    assert (chain_dir / DEPLOYMENT_FILE).exists()

    # This process never wrote the chain: all it knows comes from disk.
    with ChainClient.embedded(chain_dir) as client:
        assert client.address == written["address"]
        assert client.block_number() == written["block"]
        assert client.participant("acme").keys == (key.address.lower(),)
        assert client.key_valid_at("acme", key.address)
        tree = MemoryTree().extend_to(100)
        for anchor in written["anchors"]:  # type: ignore[attr-defined]
            size = anchor["size"]
            recovered = client.anchor_of(size).to_json()
            assert {k: v for k, v in recovered.items() if k != "gas_used"} == {
                k: v for k, v in anchor.items() if k != "gas_used"
            }
            # An old receipt still verifies against chain state alone.
            assert client.verify_inclusion(size, 7, tree.leaf_hash(7), tree.inclusion(7, size)) == (
                tree.root(size)
            )

    # And the log resumes in yet another process.
    [resumed] = run_child(
        chain_dir,
        """
        a = client.publish_checkpoint(300, tree.root(300), tree.consistency(100, 300))
        say(address=client.address, latest=client.latest_checkpoint().size, block=a.block_number)
        """,
    )
    assert resumed["address"] == written["address"]
    assert resumed["latest"] == 300
    assert resumed["block"] == int(written["block"]) + 1


def test_one_process_at_a_time(chain_dir: Path) -> None:
    proc = child(chain_dir, "say(open=True)\nsys.stdin.read()", stdin=subprocess.PIPE)
    try:
        assert proc.stdout is not None and json.loads(proc.stdout.readline()) == {"open": True}
        with pytest.raises(ChainUnavailable, match="open in another process"):
            ChainClient.embedded(chain_dir)
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.wait(30)
        proc.stdout.close()
    ChainClient.embedded(chain_dir).close()  # free again once it exited


@pytest.mark.slow
def test_killed_at_random_moments_loses_nothing_it_confirmed(chain_dir: Path) -> None:
    """SIGKILL while publishing: every checkpoint a process saw anchored is still there,
    the chain reopens, and publishing carries on from where the chain stands."""
    rng = random.Random(6962)
    confirmed: list[int] = []
    for _ in range(3):
        proc = child(
            chain_dir,
            """
            latest = client.latest_checkpoint()
            size = latest.size if latest else 0
            while size < 2000:
                new = size + 7
                client.publish_checkpoint(new, tree.root(new),
                                          tree.consistency(size, new) if size else [])
                size = new
                say(anchored=size)
            """,
        )
        assert proc.stdout is not None
        for _ in range(rng.randint(1, 4)):
            confirmed.append(json.loads(proc.stdout.readline())["anchored"])
        time.sleep(rng.uniform(0, 0.15))  # land somewhere inside the next transaction
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc.stdout.close()

    with ChainClient.embedded(chain_dir) as client:
        tree = MemoryTree().extend_to(2000)
        for size in confirmed:
            client.require_checkpoint(size, tree.root(size))
        latest = client.latest_checkpoint()
        assert latest is not None and latest.size >= confirmed[-1]
        sizes = [c.size for c in client.checkpoints()]
        assert sizes == list(range(7, latest.size + 1, 7))
        client.publish_checkpoint(
            latest.size + 1,
            tree.root(latest.size + 1),
            tree.consistency(latest.size, latest.size + 1),
        )


def test_a_fresh_operator_key_deploys_at_its_first_create_address(chain_dir: Path) -> None:
    """The key is funded from the test accounts without spending its own nonce, so the
    contract lands at CREATE(operator, 0): an EIP-712 domain can name it before deployment."""
    key = Account.create()
    with ChainClient.embedded(
        chain_dir, private_key=key.key, operator_id="op", operator_name="Op"
    ) as client:
        assert client.address == contract_address(key.address, 0)
        assert client.participant("op").keys == (key.address.lower(),)
        assert client.is_operator()
    with ChainClient.embedded(chain_dir, private_key=key.key) as again:
        assert again.address == client.address


def test_a_lost_deployment_file_finds_the_contract_again(chain_dir: Path) -> None:
    """A crash after deploying but before writing deployment.json must not deploy twice."""
    key = Account.create()
    with ChainClient.embedded(chain_dir, private_key=key.key) as client:
        first = (client.address, client.deployment_block)
        register(client, "acme", "Acme", ["supplier"])  # the key's nonce moves on
    (chain_dir / DEPLOYMENT_FILE).unlink()
    with ChainClient.embedded(chain_dir, private_key=key.key) as again:
        assert (again.address, again.deployment_block) == first
        assert again.participant("acme").name == "Acme"
    assert (chain_dir / DEPLOYMENT_FILE).exists()
