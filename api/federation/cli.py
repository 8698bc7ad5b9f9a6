"""`forgeproof fl ...`: run a federation (server, plant clients, a local simulation) and check
a federated model's training chain (`forgeproof verify-training`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Annotated

import typer

from ledger.cli import DEFAULT_HOME, Home, err, fail, out
from ledger.errors import LedgerError

app = typer.Typer(
    no_args_is_help=True, help="Federated training across plants, every round logged."
)

DataDir = Annotated[
    Path, typer.Option(help="C-MAPSS folder with train_FD00x.txt (and test_FD00x.txt)")
]
Strategy = Annotated[str, typer.Option(help="fedavg | fedprox (for non-IID plants)")]
Aggregation = Annotated[
    str, typer.Option(help="fedavg | trimmed | median (the last two resist poisoned updates)")
]


def _need_flower() -> None:
    try:
        import flwr  # noqa: F401
    except ImportError:
        fail("Flower is not installed: pip install --no-deps -r requirements-fl.txt")


def plant_participant(plant: str) -> str:
    return f"plant-{plant}"


@app.command()
def server(
    plants: Annotated[str, typer.Option(help="participant ids of the plants, comma-separated")],
    out_dir: Annotated[Path, typer.Option("--out", help="model directory to write")],
    home: Home = DEFAULT_HOME,
    address: Annotated[str, typer.Option(help="host:port to listen on")] = "127.0.0.1:8091",
    rounds: int = 20,
    local_epochs: int = 1,
    strategy: Strategy = "fedavg",
    aggregation: Aggregation = "fedavg",
    seed: int = 0,
    federation: Annotated[str | None, typer.Option(help="id; default a new one")] = None,
    wait: Annotated[float, typer.Option(help="seconds to wait for the plants")] = 120.0,
    round_timeout: Annotated[
        float, typer.Option(help="seconds a round waits for the plants' answers")
    ] = 1800.0,
    tls_ca: Annotated[Path | None, typer.Option(help="CA certificate (PEM), with TLS")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="server certificate (PEM)")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="server private key (PEM)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Run the federation's server (the operator's side): Flower on ADDRESS, the ledger in HOME."""
    _need_flower()
    from flwr.server import ServerConfig, start_server

    from api.config import Settings
    from api.federation.server import LedgerStrategy, publish
    from api.federation.server import strategy as flower_strategy
    from api.server import build
    from ml.errors import MLInputError
    from ml.federated import FedSettings

    try:
        settings = FedSettings(
            rounds=rounds, local_epochs=local_epochs, strategy=strategy, aggregation=aggregation
        )
    except MLInputError as exc:
        fail(str(exc))
    certs = None
    if tls_ca or tls_cert or tls_key:
        if not (tls_ca and tls_cert and tls_key):
            fail("TLS needs --tls-ca, --tls-cert and --tls-key together")
        certs = (tls_ca.read_bytes(), tls_cert.read_bytes(), tls_key.read_bytes())
    running = build(Settings(home=home, checkpoint_every=1_000_000, checkpoint_interval_s=3600))
    try:
        base = LedgerStrategy(
            running.service,
            federation=federation or f"fl-{uuid.uuid4().hex[:12]}",
            plants=[p.strip() for p in plants.split(",") if p.strip()],
            settings=settings,
            seed=seed,
            out=out_dir,
            wait_s=wait,
        )
        err.print(f"federation {base.federation}: listening on {address}", highlight=False)
        start_server(
            server_address=address,
            config=ServerConfig(num_rounds=base.flower_rounds, round_timeout=round_timeout),
            strategy=flower_strategy(base),
            certificates=certs,
        )
        summary = publish(base, running, out_dir)
    except Exception as exc:
        running.close()
        err.print(f"[bold red]error:[/] {base.failure or exc}", highlight=False)
        sys.stdout.flush()
        os._exit(2)  # Flower's gRPC threads would keep a failed server alive
    running.close()
    if as_json:
        out.print(json.dumps(summary, sort_keys=True), highlight=False, soft_wrap=True)
    else:
        for r in summary["rounds"]:
            refused = "; ".join(f"{x['claimed_plant']}: {x['reason']}" for x in r["refused"])
            out.print(
                f"round {r['round']:>3}: {len(r['updates'])} updates"
                + (f", refused {refused}" if refused else ""),
                highlight=False,
            )
        out.print(f"model {summary['model']} ({summary['manifest_digest']})", highlight=False)


@app.command()
def client(
    plant: Annotated[str, typer.Option(help="which engines: fd001, fd002-a, fd002-b, ...")],
    key: Annotated[Path, typer.Option(help="the plant's keystore file (its signing key)")],
    data_dir: DataDir,
    participant: Annotated[str | None, typer.Option(help="default: plant-PLANT")] = None,
    server_address: Annotated[str, typer.Option("--server")] = "127.0.0.1:8091",
    seed: int = 0,
    fd001_plants: int = 1,
    fd002_plants: int = 2,
    tls_ca: Annotated[Path | None, typer.Option(help="CA certificate (PEM) to trust")] = None,
    poison: Annotated[
        float | None, typer.Option(help="drills only: scale the honest update by this")
    ] = None,
    tamper: Annotated[bool, typer.Option(help="drills only: send other bytes than signed")] = False,
    wait: Annotated[float, typer.Option(help="seconds to keep trying to reach the server")] = 300,
) -> None:
    """Run one plant's client: its rows stay here, its signed updates go to the server."""
    _need_flower()
    from flwr.client import start_client

    from api.federation.client import PlantNode, flower_client
    from ledger.keystore import decrypt_key
    from ledger.settings import LedgerSettings
    from ml.errors import MLInputError
    from ml.federated import PlantClient, default_plants

    try:
        plants = {
            p.name: p
            for p in default_plants(data_dir, seed=seed, fd001=fd001_plants, fd002=fd002_plants)
        }
        if plant not in plants:
            fail(f"no plant {plant!r}; expected one of {', '.join(plants)}")
        signer = decrypt_key(key.read_bytes(), LedgerSettings.read().passphrase)
        node = PlantNode(
            PlantClient.from_dir(plants[plant], data_dir, seed),
            signer,
            participant or plant_participant(plant),
            poison=poison,
            tamper=tamper,
        )
    except (MLInputError, LedgerError, FileNotFoundError) as exc:
        fail(str(exc))
    start_client(
        server_address=server_address,
        client=flower_client(node),
        insecure=tls_ca is None,
        root_certificates=tls_ca.read_bytes() if tls_ca else None,
        max_wait_time=wait,  # keep trying to reach a server that is not up yet
    )


@app.command()
def simulate(
    data_dir: DataDir,
    out_dir: Annotated[Path, typer.Option("--out", help="model directory to write")],
    home: Home = DEFAULT_HOME,
    fd001_plants: int = 1,
    fd002_plants: int = 2,
    rounds: int = 20,
    local_epochs: int = 1,
    strategy: Strategy = "fedavg",
    aggregation: Aggregation = "fedavg",
    seed: int = 0,
    port: int = 0,
    poison: Annotated[
        str | None, typer.Option(help="drills: PLANT=FACTOR, that plant's update scaled")
    ] = None,
    tamper: Annotated[str | None, typer.Option(help="drills: PLANT sends other bytes")] = None,
    timeout: Annotated[float, typer.Option(help="seconds before giving up")] = 1800.0,
    foreign: Annotated[
        str | None, typer.Option(help="drills: PLANT signs with a key not registered to it")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A federation on this machine: the plants enrolled in HOME (keys under HOME/keys), then a
    server and one client per plant, each its own process, over Flower on loopback."""
    _need_flower()
    from ledger.cli import ensure_passphrase
    from ml.federated import default_plants

    ensure_passphrase(confirm=False)
    plants = [
        p.name for p in default_plants(data_dir, seed=seed, fd001=fd001_plants, fd002=fd002_plants)
    ]
    keys = enrol_plants(home, [plant_participant(p) for p in plants])
    if foreign:
        keys[plant_participant(foreign)] = _foreign_key(home)
    address = f"127.0.0.1:{port or _free_port()}"
    exe = [sys.executable, "-m", "api.cli", "fl"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    srv = [*exe, "server", "--home", str(home), "--plants",
           ",".join(plant_participant(p) for p in plants), "--out", str(out_dir),
           "--address", address, "--rounds", str(rounds), "--local-epochs", str(local_epochs),
           "--strategy", strategy, "--aggregation", aggregation, "--seed", str(seed),
           "--json"]  # fmt: skip
    server_proc = subprocess.Popen(srv, stdout=subprocess.PIPE, env=env)
    clients = []
    poisoned = dict([poison.split("=")]) if poison else {}
    try:
        _wait_listening(address, server_proc, timeout_s=120)
        for p in plants:
            cmd = [*exe, "client", "--plant", p, "--key", str(keys[plant_participant(p)]),
                   "--data-dir", str(data_dir), "--server", address, "--seed", str(seed),
                   "--fd001-plants", str(fd001_plants),
                   "--fd002-plants", str(fd002_plants)]  # fmt: skip
            if p in poisoned:
                cmd += ["--poison", poisoned[p]]
            if p == tamper:
                cmd += ["--tamper"]
            clients.append(subprocess.Popen(cmd, env=env))
        stdout, _ = server_proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        fail(f"the federation did not finish in {timeout:.0f} s; stopped")
    finally:
        for c in clients:
            try:
                c.wait(timeout=60)
            except subprocess.TimeoutExpired:
                c.kill()
        if server_proc.poll() is None:
            server_proc.kill()
    if server_proc.returncode != 0:
        fail(f"the server stopped with exit code {server_proc.returncode}")
    summary = json.loads(stdout.decode().strip().splitlines()[-1])
    if as_json:
        out.print(json.dumps(summary, sort_keys=True), highlight=False, soft_wrap=True)
    else:
        out.print(f"{len(plants)} plants, {rounds} rounds: {summary['model']}", highlight=False)


def enrol_plants(home: Path, participants: list[str]) -> dict[str, Path]:
    """Each plant a participant with the manufacturer role and a key held under HOME/keys
    (created with the deployment if need be). Returns participant -> keystore file."""
    from ledger.deployment import Deployment, key_path, save_key

    dep, _ = Deployment.open_or_init(home)
    try:
        missing = [p for p in participants if not dep.registry.keys(p)]
        if missing:
            chain = dep.open_chain()
            try:
                writer = dep.writer(chain)
                for p in missing:
                    signer = writer.enrol(p, p, ["manufacturer"])
                    save_key(home, p, signer)
            finally:
                chain.close()
        return {p: key_path(home, p, dep.registry.keys(p)[-1].address) for p in participants}
    finally:
        dep.close()


def _foreign_key(home: Path) -> Path:
    """A keystore whose key is registered to nobody (drills)."""
    from ledger.keystore import encrypt_key
    from ledger.settings import LedgerSettings
    from ledger.signing import Signer

    path = home / "keys" / "foreign.json"
    path.write_bytes(encrypt_key(Signer.generate(), LedgerSettings.read().passphrase or ""))
    return path


def _wait_listening(address: str, proc: subprocess.Popen[bytes], *, timeout_s: float) -> None:
    """Until the server accepts connections (its clients would otherwise find no one there)."""
    import socket

    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            fail(f"the server stopped with exit code {proc.returncode} before listening")
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    fail(f"the server did not listen on {address} in {timeout_s:.0f} s")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def verify_training_command(
    model: Annotated[Path, typer.Argument(help="the federated model's directory")],
    home: Annotated[
        Path | None, typer.Option(help="check keys and anchors on this deployment's chain")
    ] = None,
    rpc: Annotated[str | None, typer.Option(help="check keys and anchors on this node")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Walk a federated model's training chain: every round's record and every update it
    aggregated, through their receipts, and the published weights against the selected round's
    aggregate.
    Exit 0 when it holds, 1 with the reasons when it does not, 3 when chain checks were not
    made (no --home or --rpc)."""
    from api.federation.verify import verify_training

    started = time.perf_counter()
    result = verify_training(model, home=home, rpc=rpc)
    if as_json:
        out.print(json.dumps(result.to_json(), sort_keys=True), highlight=False, soft_wrap=True)
    else:
        for line in result.lines():
            out.print(line, highlight=False)
        err.print(f"checked in {time.perf_counter() - started:.2f} s", highlight=False)
    raise typer.Exit(result.exit_code)
