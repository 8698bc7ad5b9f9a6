"""The `forgeproof` command: the ledger's commands (`ledger/cli.py`), the provenance service's
(`up`, `api-keys`, the demo) and the models' (`ml`), composed at the top of the house."""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from api.federation.cli import app as fl_app
from api.federation.cli import verify_training_command
from ledger import cli as ledger_cli
from ledger.cli import (
    DEFAULT_HOME,
    DEMO_PASSPHRASE,
    Home,
    NewChainUrl,
    NewDatabaseUrl,
    ensure_passphrase,
    err,
    fail,
    format_us,
    open_deployment,
    out,
)
from ledger.errors import LedgerError
from ledger.keystore import PASSPHRASE_ENV
from ledger.registry import now_us
from ml.cli import app as ml_app

app = typer.Typer(
    no_args_is_help=True,
    help="forgeproof: signed ML and supply-chain records in a verifiable log.",
    pretty_exceptions_enable=False,
)
app.callback()(ledger_cli.close_when_done)
# The ledger's commands as they are, but `init`, which here also issues the first API key.
app.registered_commands += [
    c for c in ledger_cli.app.registered_commands if c.callback is not ledger_cli.init
]
app.registered_groups += ledger_cli.app.registered_groups
api_keys_app = typer.Typer(no_args_is_help=True, help="API keys of the provenance service.")
app.add_typer(api_keys_app, name="api-keys")
app.add_typer(ml_app, name="ml")
app.add_typer(fl_app, name="fl")
app.command("verify-training")(verify_training_command)


@app.command()
def init(
    home: Home = DEFAULT_HOME,
    database_url: NewDatabaseUrl = None,
    chain_url: NewChainUrl = None,
) -> None:
    """Create a deployment: operator key, contract on chain, database, first operator API key.

    Signing keys are encrypted with the passphrase in FORGEPROOF_KEY_PASSPHRASE (asked for on a
    terminal when unset)."""
    from api.auth import create_api_key

    dep = ledger_cli.init_deployment(home, database_url, chain_url)
    try:
        token = create_api_key(dep.store, dep.operator, "operator", "first", registry=dep.registry)
    except LedgerError as exc:
        fail(str(exc))
    finally:
        dep.close()
    out.print("the operator's API key (shown once, only its hash is kept):")
    out.print(f"  {token}", highlight=False)


@api_keys_app.command("create")
def api_keys_create(
    participant: str,
    role: Annotated[str, typer.Option(help="the role it acts in (one the participant holds)")],
    label: str = "default",
    expires_in: Annotated[
        str | None, typer.Option(help="e.g. 90d, 12h, 30m; default: never")
    ] = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Issue an API key; the secret is printed once and only its hash is kept."""
    from api.auth import issue_api_key

    dep = open_deployment(home)
    expires = None
    if expires_in is not None:
        expires = now_us() + _duration_us(expires_in)
    try:
        token, info = issue_api_key(
            dep.store, participant, role, label, expires_us=expires, registry=dep.registry
        )
    except LedgerError as exc:
        fail(str(exc))
    err.print(f"API key {info.id} for {participant} as {role} (shown once):")
    sys.stdout.write(token + "\n")


def _duration_us(text: str) -> int:
    units = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not (number.isascii() and number.isdigit()) or int(number) == 0:
        fail(f"--expires-in: expected a positive number and one of d, h, m, s; got {text!r}")
    return int(number) * units[unit] * 1_000_000


@api_keys_app.command("list")
def api_keys_list(
    participant: Annotated[str | None, typer.Option(help="only this participant's")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON array")] = False,
    home: Home = DEFAULT_HOME,
) -> None:
    """API keys (never their secrets), with their state."""
    from api.auth import list_api_keys

    dep = open_deployment(home)
    keys = list_api_keys(dep.store, participant)
    now = now_us()
    if as_json:
        sys.stdout.write(json.dumps([asdict(k) for k in keys]) + "\n")
        return
    table = Table("id", "participant", "role", "label", "created", "expires", "state")
    for k in keys:
        state = "revoked" if k.revoked_us else ("expired" if not k.live(now) else "live")
        table.add_row(
            k.id,
            k.participant,
            k.role,
            k.label,
            format_us(k.created_us),
            format_us(k.expires_us),
            state,
        )
    out.print(table)


@api_keys_app.command("revoke")
def api_keys_revoke(key_id: str, home: Home = DEFAULT_HOME) -> None:
    """Revoke an API key: every server refuses it within a second."""
    from api.auth import revoke_api_key

    dep = open_deployment(home)
    try:
        info = revoke_api_key(dep.store, key_id)
    except LedgerError as exc:
        fail(str(exc))
    out.print(f"revoked API key {info.id} of {info.participant} ({info.role})")


@app.command()
def up(
    home: Home = DEFAULT_HOME,
    host: str = "127.0.0.1",
    port: int = 8000,
    demo: Annotated[
        bool, typer.Option("--demo", help="seed a realistic plant and print keys")
    ] = False,
    chain_url: Annotated[
        str | None, typer.Option(help="JSON-RPC node instead of the embedded chain")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="PostgreSQL URL instead of SQLite")
    ] = None,
    every: Annotated[int, typer.Option(help="checkpoint every N records")] = 256,
    interval: Annotated[float, typer.Option(help="... or every T seconds")] = 5.0,
    allow_private_webhooks: Annotated[
        bool,
        typer.Option(help="let webhooks target loopback and private addresses (development)"),
    ] = False,
    sequencer: Annotated[
        bool | None,
        typer.Option(
            "--sequencer/--no-sequencer",
            help="run a sequencer candidate here (default: yes, or FORGEPROOF_SEQUENCER)",
        ),
    ] = None,
) -> None:
    """Run the provenance service: API, a sequencer candidate, webhook delivery, the chain.

    Several may serve one deployment (PostgreSQL and a JSON-RPC node): one sequencer
    publishes at a time, chosen by a lease in the database."""
    sock = listen(host, port)  # first: a busy port fails now, not after building and seeding
    from api.config import Settings
    from api.server import serve

    if demo and not os.environ.get(PASSPHRASE_ENV):
        os.environ[PASSPHRASE_ENV] = DEMO_PASSPHRASE
        err.print(
            f"[yellow]demo: signing keys are encrypted with the development passphrase "
            f"{DEMO_PASSPHRASE!r}; set {PASSPHRASE_ENV} for anything real[/]",
            highlight=False,
        )
    else:
        ensure_passphrase(confirm=not (home / "config.json").exists())
    given: dict[str, Any] = {
        "chain_url": chain_url,
        "database_url": database_url,
        "sequencer": sequencer,
    }
    settings = Settings(
        home=home,
        checkpoint_every=every,
        checkpoint_interval_s=interval,
        allow_private_webhooks=allow_private_webhooks,
        **{k: v for k, v in given.items() if v is not None},  # else the environment's
    )
    try:
        serve(settings, sock, demo=demo)
    except LedgerError as exc:
        fail(str(exc))
    finally:
        sock.close()  # closed by `serve` already, unless it never got it


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) and listening, for `up` to hand to its server.

    Taken before anything slow (opening the deployment, loading models, seeding the demo), so a
    port in use is found within milliseconds; exits 1 with one line when it cannot be had."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror}", code=1)
    sock = socket.socket(family, kind, proto)
    # As uvicorn does: a port whose last server's connections linger in TIME_WAIT is free.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            fail(
                f"port {port} is in use: {exc.strerror} on {host} (another server? stop it, "
                "or choose a free port with --port)",
                code=1,
            )
        fail(f"cannot listen on {host}:{port}: {exc.strerror}", code=1)
    return sock


@app.command()
def demo(
    home: Home = Path("forgeproof-demo"),
    records: Annotated[int, typer.Option(help="signed records to append")] = 300,
) -> None:
    """The main job for now: init, append signed records, checkpoint, write and verify a receipt."""
    from api.demo.walkthrough import run_demo

    os.environ.setdefault(PASSPHRASE_ENV, DEMO_PASSPHRASE)
    try:
        run_demo(home, records=records, console=out)
    except LedgerError as exc:
        fail(str(exc))


@ml_app.command("scorecard")
def ml_scorecard(
    model: Annotated[str, typer.Argument(help="manifest digest (0x...) or registered model name")],
    home: Home = DEFAULT_HOME,
    bundle: Annotated[
        Path | None,
        typer.Option(help="write the forgeproof-scorecard/1 bundle (receipts included) here"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the scorecard as JSON")] = False,
) -> None:
    """A registered model's scorecard, computed from the log: how its signed promises held.

    Lives here, not in `ml`, because it reads the ledger (`api.scorecards`)."""
    from sqlalchemy import select

    from api.config import Settings
    from api.scorecards import bundle as make_bundle
    from api.scorecards import scorecard
    from api.service import Service
    from api.tables import ModelRow, ensure_schema
    from ledger.receipts import write_json_atomic

    dep = open_deployment(home)
    ensure_schema(dep.store.engine)
    with dep.store.reading() as conn:
        digest = conn.execute(
            select(ModelRow.digest)
            .where((ModelRow.digest == model) | (ModelRow.name == model))
            .order_by(ModelRow.registered_us.desc())
            .limit(1)
        ).scalar()
    if digest is None:
        fail(f"no registered model {model!r} (by digest or name) in {home}")
    service = Service(dep, Settings(home=home))
    try:
        card = scorecard(service, digest)
        if bundle is not None:
            write_json_atomic(bundle, make_bundle(service, digest))
    except LedgerError as exc:
        fail(str(exc))
    if as_json:
        print(json.dumps(card, indent=2))
    else:
        _print_scorecard(card)
    if bundle is not None:
        err.print(f"wrote {bundle}: check it with docs/examples/recompute_scorecard.py")


def _print_scorecard(card: dict[str, Any]) -> None:
    overall = card["overall"]
    out.print(f"{card['name']} ({card['task']}) {card['model']}", highlight=False)
    out.print(f"  settled predictions: {overall.get('n', 0)}")
    for key in ("rmse", "mae", "phm08_score", "precision", "recall", "f1", "pr_auc",
                "accuracy", "ece", "mase", "smape"):  # fmt: skip
        if overall.get(key) is not None:
            out.print(f"  {key:<12} {overall[key]:.4f}")
    for level, c in overall.get("coverage", {}).items():
        lo, hi = c["wilson95"]
        out.print(
            f"  coverage {level}% {c['rate']:.3f} ({c['covered']}/{c['n']}, Wilson 95% "
            f"{lo:.3f}-{hi:.3f}, one-sided p {c['p_value']:.2g})"
        )
    if overall.get("scale_zero"):
        out.print(f"  mase leaves out {overall['scale_zero']} weeks of flat histories (scale 0)")
    for group in ("by_product", "by_supplier"):
        for name, m in card.get(group, {}).items():
            mase = "n/a" if m.get("mase") is None else f"{m['mase']:.3f}"
            out.print(
                f"  {group[3:]} {name}: {m['n']} settled weeks, mase {mase}, "
                f"smape {m['smape']:.3f}, mae {m['mae']:.2f}",
                highlight=False,
            )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
