"""Gas and throughput of anchoring: ProvenanceLedger checkpoints vs one transaction per record.

    python bench/chain.py            # full run (a few minutes at most)
    python bench/chain.py --quick    # fewer repetitions, under a minute
    python bench/chain.py --json     # ... and the figures as one JSON object on the last line
    python bench/chain.py --plot docs/chain-gas.png

Gas: the log grows by K records per checkpoint (K = 1, 64, 4096, 65536). At each log size
(just after the first checkpoint, around 2**20 and around 2**31 records) a fresh contract is
anchored at that size and then receives `repeats` further checkpoints of K records each, whose
gas is measured, on-chain consistency check included. Logs of 2**31 records are synthetic
(all leaves equal, so every subtree hash is known without building the tree); the proofs are
genuine and the contract cannot tell. The worst case below 2**32 records is (2**32 - 1 ->
2**32): the longest consistency proof (33 hashes) and the most hashing (63 compressions).

Baseline, measured in the same run: contracts/RecordAnchor.sol, one `anchor(bytes32)` storage
write per record, sent the same way (signed, gas-estimated, receipt checked).

Throughput: checkpoint transactions per second through ChainClient.publish_checkpoint (the
whole path: gas estimate, signing, sending, receipt, confirmation check), on the embedded
chain and on anvil, against baseline anchoring transactions per second.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from eth_account import Account
from rich.console import Console
from rich.table import Table
from web3 import Web3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench._common  # noqa: F401  (the development passphrase of bench deployments)
from ledger.chain import ChainClient, load_artifact
from ledger.chain._embedded import EmbeddedChain, fund_from_faucet, locked_provider
from ledger.chain.devnode import AnvilNode, find_anvil
from ledger.errors import ChainUnavailable
from ledger.merkle import (
    NodeID,
    consistency_plan,
    fold_right,
    hash_children,
    hash_leaf,
    materialize,
    range_nodes,
)

CHECKPOINT_SIZES = (1, 64, 4096, 65_536)
GOAL_GAS_PER_RECORD_AT_4096 = 30
GOAL_GAS_PER_CHECKPOINT = 150_000
# Log sizes 2**e at which 4096-record checkpoints are measured to show growth with the log.
GROWTH_EXPONENTS = (16, 20, 24, 28, 31, 32)


class UniformTree:
    """A synthetic log whose leaves are all equal: subtree hashes depend on height only."""

    def __init__(self) -> None:
        self.levels = [hash_leaf(b"forgeproof bench")]
        for _ in range(64):
            self.levels.append(hash_children(self.levels[-1], self.levels[-1]))

    def read(self, ids: Sequence[NodeID]) -> list[bytes]:
        return [self.levels[i.level] for i in ids]

    def root(self, size: int) -> bytes:
        return fold_right(self.read(range_nodes(0, size)))

    def consistency(self, size1: int, size2: int) -> list[bytes]:
        return materialize(consistency_plan(size1, size2), self.read)


class Chain:
    """A chain to measure on: deploys fresh contracts from fresh funded keys."""

    def __init__(self, name: str, w3: Web3, fund: Callable[[str], None]) -> None:
        self.name = name
        self.w3 = w3
        self.fund = fund

    def ledger(self) -> ChainClient:
        operator = Account.create()
        self.fund(operator.address)
        client, _ = ChainClient.deploy(self.w3, private_key=operator.key)
        return client

    def baseline(self) -> tuple[ChainClient, Any]:
        """A RecordAnchor deployment and a client whose key may call it."""
        client = self.ledger()
        artifact = load_artifact("RecordAnchor")
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        _, receipt = client._send({"data": factory.constructor().data_in_transaction}, "deploy")
        return client, self.w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def log_sizes(k: int) -> list[int]:
    """Where to measure: right after the first checkpoint, and around 2**20 and 2**31."""
    return [k, (2**20 // k) * k, (2**31 // k) * k]


def measure_gas(chain: Chain, tree: UniformTree, k: int, start: int, repeats: int) -> list[int]:
    client = chain.ledger()
    client.publish_checkpoint(start, tree.root(start), [])
    gas = []
    size = start
    for _ in range(repeats):
        anchor = client.publish_checkpoint(
            size + k, tree.root(size + k), tree.consistency(size, size + k)
        )
        assert anchor.gas_used is not None
        gas.append(anchor.gas_used)
        size += k
    return gas


def measure_baseline(chain: Chain, records: int) -> tuple[list[int], float]:
    """Gas per anchoring transaction, and transactions per second."""
    client, anchor = chain.baseline()
    gas = []
    started = time.perf_counter()
    for i in range(records):
        data = anchor.encode_abi("anchor", args=[hash_leaf(i.to_bytes(8, "big"))])
        tx, _ = client._send({"to": anchor.address, "data": data}, "anchor")
        gas.append(tx.gas_used)
    return gas, records / (time.perf_counter() - started)


def measure_registry(chain: Chain, repeats: int) -> dict[str, list[int]]:
    """Gas of each registry operation, as the service sends them: the operator's key sends
    every transaction; proofs of possession and consents are EIP-712 signatures it relays."""
    from ledger.signing import Signer, sign_key_binding, sign_key_change

    client = chain.ledger()
    domain = client.domain
    gas: dict[str, list[int]] = {}

    def fresh() -> Signer:
        return Signer.generate()

    def note(name: str, tx: Any) -> None:
        gas.setdefault(name, []).append(tx.gas_used)

    for i in range(repeats):
        pid = f"supplier-{i:03d}"
        first = fresh()
        proof = sign_key_binding(first, domain, pid, first.address, 0)
        note(
            "register participant (+ first key)",
            client.register_participant(pid, f"Supplier {i}", ["supplier"], first.address, proof),
        )
        second = fresh()
        nonce = client.key_nonce(pid)
        note(
            "add key (consent signed)",
            client.add_key(
                pid,
                second.address,
                sign_key_binding(second, domain, pid, second.address, nonce),
                sign_key_change(first, domain, pid, nonce, add=second.address),
            ),
        )
        third = fresh()
        nonce = client.key_nonce(pid)
        note(
            "rotate key (consent signed)",
            client.rotate_key(
                second.address,
                third.address,
                sign_key_binding(third, domain, pid, third.address, nonce),
                sign_key_change(
                    first, domain, pid, nonce, add=third.address, revoke=second.address
                ),
            ),
        )
        nonce = client.key_nonce(pid)
        note(
            "revoke key (consent signed)",
            client.revoke_key(
                third.address, sign_key_change(first, domain, pid, nonce, revoke=third.address)
            ),
        )
        note("revoke key (operator)", client.revoke_key(first.address))
        note("set roles", client.set_roles(pid, ["supplier", "manufacturer"]))
    return gas


def measure_rate(chain: Chain, tree: UniformTree, k: int, count: int) -> float:
    """Checkpoint transactions per second through publish_checkpoint."""
    client = chain.ledger()
    size = 2**20
    client.publish_checkpoint(size, tree.root(size), [])
    started = time.perf_counter()
    for _ in range(count):
        client.publish_checkpoint(size + k, tree.root(size + k), tree.consistency(size, size + k))
        size += k
    return count / (time.perf_counter() - started)


def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    repeats = 2 if args.quick else 4
    rate_runs, rate_count = (2, 5) if args.quick else (3, 15)
    baseline_records = 10 if args.quick else 30
    tree = UniformTree()
    results: dict[str, Any] = {"gas": [], "growth": [], "throughput": {}, "repeats": repeats}

    with tempfile.TemporaryDirectory() as tmp:
        embedded = EmbeddedChain(Path(tmp))
        w3 = Web3(locked_provider(embedded.tester))
        chains = [Chain("embedded", w3, lambda a: fund_from_faucet(w3, a))]
        node = None
        if not args.no_anvil and find_anvil() is not None:
            try:
                node = AnvilNode.start()
            except ChainUnavailable as exc:
                console.print(f"[yellow]anvil unavailable, skipped: {exc}")
        if node is not None:
            aw3 = Web3(Web3.HTTPProvider(node.url))

            def fund_anvil(address: str) -> None:
                aw3.provider.make_request("anvil_setBalance", [address, hex(10**22)])  # type: ignore[arg-type]

            chains.append(Chain("anvil", aw3, fund_anvil))
        try:
            primary = chains[0]
            base_gas, _ = measure_baseline(primary, baseline_records)
            base_mean, base_sd = mean_sd(base_gas)
            results["baseline"] = {
                "gas_per_record": base_mean,
                "gas_sd": base_sd,
                "n": len(base_gas),
            }

            for k in CHECKPOINT_SIZES:
                for start in log_sizes(k):
                    gas = measure_gas(primary, tree, k, start, repeats)
                    g_mean, g_sd = mean_sd(gas)
                    row = {
                        "checkpoint_size": k,
                        "log_size": start,
                        "gas_mean": g_mean,
                        "gas_sd": g_sd,
                        "gas_per_record": g_mean / k,
                        "baseline_ratio": base_mean / (g_mean / k),
                    }
                    if len(chains) > 1:
                        row["anvil_gas_equal"] = (
                            measure_gas(chains[1], tree, k, start, repeats) == gas
                        )
                    results["gas"].append(row)
            registry = measure_registry(primary, repeats)
            results["registry"] = {
                name: {"gas_mean": statistics.fmean(g), "gas_max": max(g), "n": len(g)}
                for name, g in registry.items()
            }
            if len(chains) > 1:
                # Signatures differ from chain to chain (the domain names the chain id), and
                # calldata gas depends on their bytes: compare means, not transactions.
                on_anvil = measure_registry(chains[1], repeats)
                results["registry_anvil_max_rel_diff"] = max(
                    abs(statistics.fmean(on_anvil[n]) / statistics.fmean(g) - 1)
                    for n, g in registry.items()
                )
            for exponent in GROWTH_EXPONENTS:
                # The checkpoints that reach 2**e: their proofs are the longest at that scale.
                start = 2**exponent - repeats * 4096
                gas = measure_gas(primary, tree, 4096, start, repeats)
                results["growth"].append(
                    {
                        "exponent": exponent,
                        "log_size": start,
                        "gas_mean": statistics.fmean(gas),
                        "gas_max": max(gas),
                    }
                )
            worst = measure_gas(primary, tree, 1, 2**32 - 1, 1)[0]
            aligned = measure_gas(primary, tree, 4096, 2**32 - 4096, 1)[0]
            results["worst_case"] = {
                "gas_any_sizes_below_2_32": worst,
                "gas_4096_aligned_at_2_32": aligned,
                "per_record_4096_aligned_at_2_32": aligned / 4096,
            }

            for chain in chains:
                rates = [measure_rate(chain, tree, 4096, rate_count) for _ in range(rate_runs)]
                b_rates = [measure_baseline(chain, rate_count)[1] for _ in range(rate_runs)]
                r_mean, r_sd = mean_sd(rates)
                b_mean, b_sd = mean_sd(b_rates)
                results["throughput"][chain.name] = {
                    "checkpoint_tx_per_s": r_mean,
                    "checkpoint_tx_per_s_sd": r_sd,
                    "records_per_s_at_4096": r_mean * 4096,
                    "baseline_tx_per_s": b_mean,
                    "baseline_tx_per_s_sd": b_sd,
                    "runs": rate_runs,
                    "tx_per_run": rate_count,
                }
        finally:
            if node is not None:
                node.stop()
            embedded.close()

    at_4096 = [r["gas_per_record"] for r in results["gas"] if r["checkpoint_size"] == 4096]
    at_4096 += [r["gas_max"] / 4096 for r in results["growth"]]
    results["goals"] = {
        "max_gas_per_record_at_4096": max(at_4096),
        "per_record_goal": GOAL_GAS_PER_RECORD_AT_4096,
        "max_gas_per_checkpoint": max(
            [r["gas_mean"] for r in results["gas"]]
            + [results["worst_case"]["gas_any_sizes_below_2_32"]]
        ),
        "checkpoint_goal": GOAL_GAS_PER_CHECKPOINT,
    }
    return results


def show(results: dict[str, Any], console: Console) -> None:
    base = results["baseline"]
    table = Table(title=f"Gas per checkpoint (embedded chain, mean ± sd of {results['repeats']})")
    for col in (
        "records per checkpoint",
        "log size",
        "gas / checkpoint",
        "gas / record",
        "baseline / ours",
    ):
        table.add_column(col, justify="right")
    if any("anvil_gas_equal" in r for r in results["gas"]):
        table.add_column("anvil same gas", justify="center")
    for r in results["gas"]:
        cells = [
            f"{r['checkpoint_size']:,}",
            f"{r['log_size']:,}",
            f"{r['gas_mean']:,.0f} ± {r['gas_sd']:,.0f}",
            f"{r['gas_per_record']:,.1f}",
            f"{r['baseline_ratio']:,.1f}×",
        ]
        if "anvil_gas_equal" in r:
            cells.append("yes" if r["anvil_gas_equal"] else "NO")
        table.add_row(*cells)
    console.print(table)
    growth = Table(title="4096-record checkpoints reaching 2^e records (mean and max)")
    for col in ("log size reached", "from", "gas / checkpoint", "max", "gas / record (max)"):
        growth.add_column(col, justify="right")
    for r in results["growth"]:
        growth.add_row(
            f"2^{r['exponent']}",
            f"{r['log_size']:,}",
            f"{r['gas_mean']:,.0f}",
            f"{r['gas_max']:,}",
            f"{r['gas_max'] / 4096:.1f}",
        )
    console.print(growth)
    w = results["worst_case"]
    console.print(
        f"Baseline, one anchor(bytes32) transaction per record: "
        f"{base['gas_per_record']:,.0f} ± {base['gas_sd']:,.0f} gas/record (n={base['n']})\n"
        f"Worst case below 2**32 records (2**32-1 -> 2**32, 33-hash proof): "
        f"{w['gas_any_sizes_below_2_32']:,} gas; 4096 records at 2**32: "
        f"{w['gas_4096_aligned_at_2_32']:,} gas"
        f" = {w['per_record_4096_aligned_at_2_32']:.1f} gas/record"
    )
    g = results["goals"]
    console.print(
        f"Goals: ≤{g['per_record_goal']} gas/record at 4096"
        f" → max {g['max_gas_per_record_at_4096']:.1f}; "
        f"≤{g['checkpoint_goal']:,} gas/checkpoint → max {g['max_gas_per_checkpoint']:,.0f}"
    )
    reg = Table(title="Registry operations (embedded chain; sent by the operator's key)")
    for col in ("operation", "gas (mean)", "gas (max)", "vs a 4096-record checkpoint"):
        reg.add_column(col, justify="right")
    checkpoint = next(
        r["gas_mean"]
        for r in results["gas"]
        if r["checkpoint_size"] == 4096 and r["log_size"] > 4096
    )
    for name, r in results["registry"].items():
        reg.add_row(
            name, f"{r['gas_mean']:,.0f}", f"{r['gas_max']:,}", f"{r['gas_mean'] / checkpoint:.2f}×"
        )
    reg.add_row("checkpoint, 4096 records at 2^20", f"{checkpoint:,.0f}", "", "1.00×")
    console.print(reg)
    if "registry_anvil_max_rel_diff" in results:
        console.print(
            "anvil's registry gas differs from the embedded chain's by at most "
            f"{results['registry_anvil_max_rel_diff']:.2%} (signature bytes in calldata)"
        )
    rate = Table(title="Publishing throughput (4096-record checkpoints, mean ± sd)")
    for col in ("chain", "checkpoint tx/s", "records/s", "baseline tx/s = records/s", "speed-up"):
        rate.add_column(col, justify="right")
    for name, t in results["throughput"].items():
        rate.add_row(
            name,
            f"{t['checkpoint_tx_per_s']:.1f} ± {t['checkpoint_tx_per_s_sd']:.1f}",
            f"{t['records_per_s_at_4096']:,.0f}",
            f"{t['baseline_tx_per_s']:.1f} ± {t['baseline_tx_per_s_sd']:.1f}",
            f"{t['records_per_s_at_4096'] / t['baseline_tx_per_s']:,.0f}×",
        )
    console.print(rate)
    n = results["end_to_end_records"]
    e2e = Table(title=f"End to end: {n:,} signed records checked, appended and anchored")
    for col in ("chain", "records/s", "baseline records/s (one tx each)", "speed-up"):
        e2e.add_column(col, justify="right")
    for name, rps in results["end_to_end"].items():
        base = (
            results["throughput"][name]["baseline_tx_per_s"]
            if name in results["throughput"]
            else float("nan")
        )
        e2e.add_row(name, f"{rps:,.0f}", f"{base:.1f}", f"{rps / base:,.0f}×")
    console.print(e2e)


def end_to_end(url: str | None, n: int) -> float:
    """Records/s from signed JSON lines to anchored checkpoints: check, append, publish.

    What `forgeproof append` plus the sequencer do, every 4096 records, on a fresh deployment
    (embedded chain when `url` is None). Producers' signing is not timed: it happens at them.
    """
    from ledger.deployment import Deployment, save_key
    from ledger.ingest import Accepted, check_lines, submission_json
    from ledger.records import Record
    from ledger.sequencer import Policy, Sequencer
    from ledger.signing import Signer

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        dep = Deployment.init(home, chain_url=url)
        chain = dep.open_chain()
        signer = Signer.generate()
        save_key(home, "acme", signer)
        dep.writer(chain).enrol("acme", "ACME", ["supplier"], signer)
        lines = []
        for i in range(n):
            rec = Record.new(
                "supplier_record", {"lot": f"L{i}"}, participant="acme", address=signer.address
            )
            lines.append(json.dumps(submission_json(rec, signer.sign(dep.domain, rec))).encode())
        seq = Sequencer(dep.log, chain, Policy(every=4096, interval_s=3600))
        keys = dep.registry.snapshot()
        start = time.perf_counter()
        batch: list[Accepted] = []
        for item in check_lines(lines, dep.domain, keys, workers=2):
            assert isinstance(item, Accepted), item
            batch.append(item)
            if len(batch) == 2048:
                dep.log.append(batch)
                batch = []
                seq.step()
        dep.log.append(batch)
        seq.step(force=True)
        elapsed = time.perf_counter() - start
        assert chain.latest_checkpoint().size == n
        chain.close()
        dep.close()
    return n / elapsed


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=120)
    rows = [
        r
        for r in results["gas"]
        if r["log_size"] == (2**20 // r["checkpoint_size"]) * r["checkpoint_size"]
    ]
    left.plot(
        [r["checkpoint_size"] for r in rows],
        [r["gas_per_record"] for r in rows],
        marker="o",
        label="checkpoint (log ≈ 2^20)",
    )
    left.axhline(
        results["baseline"]["gas_per_record"],
        color="grey",
        linestyle="--",
        label="one tx per record",
    )
    left.scatter(
        [4096],
        [GOAL_GAS_PER_RECORD_AT_4096],
        marker="v",
        color="red",
        zorder=5,
        label="goal ≤ 30 at 4096",
    )
    left.set_xscale("log", base=2)
    left.set_yscale("log")
    left.set_xlabel("records per checkpoint")
    left.set_ylabel("gas per record")
    left.set_title("Cost per record")
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)

    growth = results["growth"]
    xs = [r["exponent"] for r in growth]
    right.plot(
        xs, [r["gas_mean"] for r in growth], marker="o", label="4096-record checkpoint, mean"
    )
    right.plot(xs, [r["gas_max"] for r in growth], marker="^", linestyle=":", label="max")
    right.scatter(
        [32],
        [results["worst_case"]["gas_any_sizes_below_2_32"]],
        color="red",
        zorder=5,
        label="worst case below 2^32",
    )
    right.axhline(GOAL_GAS_PER_CHECKPOINT, color="red", linestyle="--", label="goal ≤ 150,000")
    right.set_ylim(0, GOAL_GAS_PER_CHECKPOINT * 1.1)
    ticks = [x for x in xs if x % 4 == 0]
    right.set_xticks(ticks)
    right.set_xticklabels([f"2^{x}" for x in ticks])
    right.set_xlabel("log size reached")
    right.set_ylabel("gas per checkpoint transaction")
    right.yaxis.set_major_formatter(lambda y, _: f"{y / 1000:.0f}k")
    right.set_title("Cost per checkpoint as the log grows")
    right.grid(True, alpha=0.3)
    right.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (under a minute)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON last")
    parser.add_argument("--no-anvil", action="store_true", help="embedded chain only")
    parser.add_argument("--plot", type=Path, help="write a PNG of gas per record")
    args = parser.parse_args(argv)
    console = Console(stderr=args.json, width=120)
    started = time.perf_counter()
    results = run(args, console)
    n = 8192 if args.quick else 40_960
    results["end_to_end"] = {"embedded": end_to_end(None, n)}
    if not args.no_anvil:
        from ledger.chain.devnode import AnvilNode, find_anvil

        if find_anvil():
            with AnvilNode.start() as node:
                results["end_to_end"]["anvil"] = end_to_end(node.url, n)
    results["end_to_end_records"] = n
    results["seconds"] = time.perf_counter() - started
    results["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    console.print(f"[dim]{results['machine']}, {results['seconds']:.0f} s")
    show(results, console)
    if args.plot:
        plot(results, args.plot)
        console.print(f"wrote {args.plot}")
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
