"""The ledger's commands: a deployment's log, participants, receipts, checkpoints, sequencer.

The product's `forgeproof` command (`api/cli.py`) adds the service's and the models' own.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ledger.deployment import Deployment, save_key
from ledger.errors import InvalidLines, LedgerError, RegistryMismatch
from ledger.ingest import append_lines, submission_json
from ledger.keystore import PASSPHRASE_ENV
from ledger.receipts import (
    build_receipt,
    chain_anchor_source,
    chain_key_source,
    loads_strict,
    log_checkpoint_source,
    verify_receipt,
    write_json_atomic,
)
from ledger.records import Record, format_time, hex0x, unhex
from ledger.registry import ROLES, KeyInfo
from ledger.sequencer import Policy, Sequencer
from ledger.signing import Signer, sign_key_binding, sign_key_change

if TYPE_CHECKING:
    from ledger.chain import ChainClient

app = typer.Typer(
    no_args_is_help=True,
    help="forgeproof: signed ML and supply-chain records in a verifiable log.",
    pretty_exceptions_enable=False,
)
participants_app = typer.Typer(
    no_args_is_help=True, help="Participants, roles and signing keys (on chain)."
)
app.add_typer(participants_app, name="participants")
registry_app = typer.Typer(no_args_is_help=True, help="The database's mirror of the registry.")
app.add_typer(registry_app, name="registry")
epcis_app = typer.Typer(no_args_is_help=True, help="EPCIS 2.0 events as signed records.")
app.add_typer(epcis_app, name="epcis")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

Home = Annotated[
    Path,
    typer.Option("--home", envvar="FORGEPROOF_HOME", help="deployment folder"),
]
DEFAULT_HOME = Path("forgeproof-home")
# Where a new deployment keeps its database and its chain (`init`, here and in api/cli.py).
NewDatabaseUrl = Annotated[str | None, typer.Option(help="default: SQLite in HOME")]
NewChainUrl = Annotated[
    str | None, typer.Option(help="JSON-RPC node; default: an embedded chain in HOME")
]


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


_opened: list[Deployment] = []


@app.callback()
def close_when_done(ctx: typer.Context) -> None:
    # Deployments a command opened are closed (their database connections returned) when
    # the command ends, however it ends.
    ctx.call_on_close(_close_opened)


def _close_opened() -> None:
    while _opened:
        _opened.pop().close()


DEMO_PASSPHRASE = "forgeproof demo, not a secret"


def ensure_passphrase(*, confirm: bool) -> None:
    """FORGEPROOF_KEY_PASSPHRASE, asked for on a terminal when unset."""
    if os.environ.get(PASSPHRASE_ENV) or not sys.stdin.isatty():
        return
    os.environ[PASSPHRASE_ENV] = typer.prompt(
        "passphrase of the signing keys", hide_input=True, confirmation_prompt=confirm
    )


def open_deployment(home: Path) -> Deployment:
    try:
        dep = Deployment.open(home)
    except LedgerError as exc:
        fail(str(exc))
    _opened.append(dep)
    return dep


@contextmanager
def _chain(dep: Deployment) -> Iterator[ChainClient]:
    """The deployment's chain (as the operator), with the registry mirror synced; exits 2 with
    the reason when it cannot be had."""
    try:
        chain = dep.open_chain()
    except LedgerError as exc:
        fail(str(exc))
    try:
        yield chain
    finally:
        chain.close()


@app.command()
def init(
    home: Home = DEFAULT_HOME,
    database_url: NewDatabaseUrl = None,
    chain_url: NewChainUrl = None,
) -> None:
    """Create a deployment: operator key, contract on chain, database.

    Signing keys are encrypted with the passphrase in FORGEPROOF_KEY_PASSPHRASE (asked for on a
    terminal when unset)."""
    dep = init_deployment(home, database_url, chain_url)
    dep.close()


def init_deployment(home: Path, database_url: str | None, chain_url: str | None) -> Deployment:
    """`init`'s work, for commands that build on it; exits 2 with the reason on failure."""
    ensure_passphrase(confirm=True)
    try:
        dep = Deployment.init(home, database_url=database_url, chain_url=chain_url)
    except LedgerError as exc:
        fail(str(exc))
    out.print(f"initialised [bold]{home}[/]: operator key {dep.signer(dep.operator).address}")
    out.print(f"contract {dep.domain.verifying_contract} on chain {dep.domain.chain_id}")
    return dep


@participants_app.command("list")
def participants_list(home: Home = DEFAULT_HOME) -> None:
    """List participants, roles and keys, with the blocks their keys are valid over."""
    dep = open_deployment(home)
    if not dep.registry.synced:
        err.print("[yellow]as the database mirrors the chain (not checked now)[/]")
    table = Table("participant", "name", "roles", "key", "valid from", "revoked at", "added by")
    keys = dep.registry.keys()
    for p in dep.registry.participants():
        mine: list[KeyInfo | None] = [k for k in keys if k.participant == p.id] or [None]
        for i, k in enumerate(mine):
            table.add_row(
                p.id if i == 0 else "",
                p.name if i == 0 else "",
                (",".join(sorted(p.roles)) or "(suspended)") if i == 0 else "",
                k.address if k else "-",
                f"block {k.valid_from}" if k else "",
                f"block {k.revoked_from}" if k and k.revoked_from is not None else "",
                (k.added_by or "") if k else "",
            )
    out.print(table)


def _sig(value: str | None, what: str) -> bytes:
    if value is None:
        return b""
    try:
        return unhex(value, size=65, what=what)
    except LedgerError as exc:
        fail(str(exc))


@participants_app.command("add")
def participants_add(
    participant: Annotated[str, typer.Argument(help="participant id, e.g. supplier-acme")],
    role: Annotated[list[str], typer.Option(help=f"one of {', '.join(ROLES)}; repeatable")],
    name: Annotated[str | None, typer.Option(help="display name")] = None,
    address: Annotated[
        str | None, typer.Option(help="a key held elsewhere; default: generate one here")
    ] = None,
    key_proof: Annotated[
        str | None, typer.Option(help="with --address: its KeyBinding signature (nonce 0)")
    ] = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Register a participant on chain with its first signing key."""
    dep = open_deployment(home)
    if (address is None) != (key_proof is None):
        fail("give --address and --key-proof together, or neither (a key is made here)")
    with _chain(dep) as chain:
        writer = dep.writer(chain)
        try:
            if address is None:
                signer = Signer.generate()
                save_key(home, participant, signer)
                writer.enrol(participant, name or participant, role, signer)
                address = signer.address
            else:
                writer.register(
                    participant, name or participant, role, address, _sig(key_proof, "key proof")
                )
        except LedgerError as exc:
            fail(f"{exc}; nothing was registered")
    out.print(f"added {participant} ({', '.join(role)}) with key {address.lower()}")


@participants_app.command("rotate")
def participants_rotate(
    participant: str,
    old: Annotated[str | None, typer.Option(help="key to replace; default: the only one")] = None,
    address: Annotated[
        str | None, typer.Option(help="new key held elsewhere; default: generate one here")
    ] = None,
    key_proof: Annotated[
        str | None, typer.Option(help="with --address: its KeyBinding signature")
    ] = None,
    authorization: Annotated[
        str | None,
        typer.Option(help="KeyChange signature by a valid key; default: sign with one held here"),
    ] = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Replace one of a participant's keys by a new one, in one transaction, with the consent of
    a valid key (held here, or given as --authorization)."""
    dep = open_deployment(home)
    if (address is None) != (key_proof is None):
        fail("give --address and --key-proof together, or neither (a key is made here)")
    with _chain(dep) as chain:
        writer = dep.writer(chain)
        active = [k.address for k in dep.registry.keys(participant) if k.active]
        if not active:
            fail(
                f"{participant} has no unrevoked key to rotate from; the operator binds a new "
                f"one with `forgeproof participants recover {participant}`"
            )
        old = (old or (active[0] if len(active) == 1 else "")).lower()
        if old not in active:
            fail(f"name the unrevoked key of {participant} to replace (--old): {active}")
        new = Signer.generate() if address is None else None
        nonce = writer.nonce(participant)
        new_address = new.address if new else str(address).lower()
        proof = (
            sign_key_binding(new, writer.domain, participant, new.address, nonce)
            if new
            else _sig(key_proof, "key proof")
        )
        if authorization is None:
            try:
                held = dep.signer(participant)
            except LedgerError as exc:
                fail(f"{exc}; give --authorization (a KeyChange signature by a valid key)")
            consent = sign_key_change(
                held, writer.domain, participant, nonce, add=new_address, revoke=old
            )
        else:
            consent = _sig(authorization, "authorization")
        try:
            writer.rotate_key(old, new_address, proof, consent)
        except LedgerError as exc:
            fail(f"{exc}; nothing was changed")
    if new is not None:
        save_key(home, participant, new)
    out.print(f"{participant} now signs with {new_address} ({old} revoked)")


@participants_app.command("revoke")
def participants_revoke(address: str, home: Home = DEFAULT_HOME) -> None:
    """Revoke a key (as the operator), effective at this block: it signs nothing new, and what
    it signed and was anchored before stays valid."""
    dep = open_deployment(home)
    with _chain(dep) as chain:
        try:
            key = dep.writer(chain).revoke_key(address)
        except LedgerError as exc:
            fail(f"{exc}; nothing was changed")
    out.print(f"revoked {key.address} of {key.participant} from block {key.revoked_from}")


@participants_app.command("recover")
def participants_recover(participant: str, home: Home = DEFAULT_HOME) -> None:
    """Bind a new key, made here, to a participant that has no unrevoked key left (operator
    recovery: the chain records that the operator, not the participant, consented)."""
    dep = open_deployment(home)
    with _chain(dep) as chain:
        writer = dep.writer(chain)
        signer = Signer.generate()
        proof = sign_key_binding(
            signer, writer.domain, participant, signer.address, writer.nonce(participant)
        )
        try:
            writer.add_key(participant, signer.address, proof)
        except LedgerError as exc:
            fail(f"{exc}; nothing was changed")
    save_key(home, participant, signer)
    out.print(f"{participant} recovered with key {signer.address}")


@participants_app.command("roles")
def participants_roles(
    participant: str,
    role: Annotated[
        list[str] | None, typer.Option(help="the roles from now on; none suspends it")
    ] = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Replace a participant's roles on chain (none: suspended, it signs nothing new)."""
    dep = open_deployment(home)
    with _chain(dep) as chain:
        try:
            p = dep.writer(chain).set_roles(participant, role or [])
        except LedgerError as exc:
            fail(f"{exc}; nothing was changed")
    out.print(f"{participant}: {', '.join(sorted(p.roles)) or 'suspended'}")


@registry_app.command("sync")
def registry_sync(
    repair: Annotated[
        bool, typer.Option(help="rewrite the mirror from the chain instead of refusing")
    ] = False,
    home: Home = DEFAULT_HOME,
) -> None:
    """Bring the database's registry mirror up to the chain and check it, event by event and
    against the contract's storage; exit 1 when they disagree."""
    from ledger.errors import RegistryMismatch

    dep = open_deployment(home)
    try:
        chain = dep.open_chain(sync=False)
        try:
            dep.registry.sync(chain, repair=repair)
            dep.registry.check(chain)
        finally:
            chain.close()
    except RegistryMismatch as exc:
        for d in exc.differences:
            err.print(f"  {d}", highlight=False, markup=False)
        fail("the registry mirror disagrees with the chain (repair: --repair)", code=1)
    except LedgerError as exc:
        fail(str(exc))
    state = dep.registry.state()
    out.print(
        f"registry mirror agrees with the chain: {len(state.participants)} participants, "
        f"{len(state.keys)} keys"
    )


def format_us(us: int | None) -> str:
    from datetime import UTC, datetime

    return format_time(datetime.fromtimestamp(us / 1e6, UTC)) if us else ""


def _lines(path: Path | None) -> Iterator[bytes]:
    if path is None or str(path) == "-":
        yield from sys.stdin.buffer
        return
    try:
        with path.open("rb") as f:
            yield from f
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


def _count_lines(path: Path | None) -> int | None:
    if path is None or str(path) == "-" or not path.is_file():
        return None
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


@app.command()
def sign(
    participant: Annotated[str, typer.Option("--as", help="participant whose key signs")],
    kind: Annotated[str, typer.Option(help="record kind, e.g. inspection")],
    input: Annotated[
        Path | None, typer.Argument(help="JSON lines of payloads; - for stdin")
    ] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output")] = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Wrap payloads into records and sign them with a locally held key."""
    dep = open_deployment(home)
    try:
        signer = dep.signer(participant)
    except LedgerError as exc:
        fail(str(exc))
    lines = []
    for n, line in enumerate(_lines(input), start=1):
        if not line.strip():
            continue
        try:
            payload = json.loads(line)
        except json.JSONDecodeError as exc:
            fail(f"line {n}: malformed JSON: {exc}")
        if not isinstance(payload, dict):
            fail(f"line {n}: a payload is a JSON object, got {type(payload).__name__}")
        try:
            rec = Record.new(kind, payload, participant=participant, address=signer.address)
            sig = signer.sign(dep.domain, rec)
        except LedgerError as exc:
            fail(f"line {n}: {exc}")
        lines.append(json.dumps(submission_json(rec, sig), separators=(",", ":")))
    text = "\n".join(lines) + ("\n" if lines else "")
    if output:
        tmp = output.with_name(f".{output.name}.tmp")
        tmp.write_text(text)
        tmp.replace(output)
        err.print(f"signed {len(lines)} records -> {output}")
    else:
        sys.stdout.write(text)


@epcis_app.command("sign")
def epcis_sign(
    participant: Annotated[str, typer.Option("--as", help="participant whose key signs")],
    document: Annotated[Path, typer.Argument(help="an EPCISDocument or one event (JSON)")],
    output: Annotated[Path | None, typer.Option("-o", "--output")] = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Sign each event of an EPCIS document as a record of `participant` (kind epcis_event, the
    event with its @context and CBV 2.0 hash ID): the body of POST /v1/epcis/capture/signed.
    The log then names `participant` as who asserted each event."""
    from ledger.epcis.capture import KIND, prepare

    dep = open_deployment(home)
    try:
        signer = dep.signer(participant)
        doc = json.loads(document.read_text())
        prepared, warnings = prepare(doc)
    except OSError as exc:
        fail(f"cannot read {document}: {exc.strerror}")
    except json.JSONDecodeError as exc:
        fail(f"{document} is not JSON: {exc}")
    except LedgerError as exc:
        fail(str(exc))
    for w in warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)
    subs = []
    for p in prepared:
        rec = Record.new(KIND, p.payload, participant=participant, address=signer.address)
        subs.append(submission_json(rec, signer.sign(dep.domain, rec)))
    text = json.dumps(subs, separators=(",", ":")) + "\n"
    if output:
        write_json_atomic(output, subs)
        err.print(f"signed {len(subs)} events as {participant} -> {output}")
    else:
        sys.stdout.write(text)


@app.command()
def append(
    input: Annotated[
        Path | None, typer.Argument(help="JSON lines of signed records; - for stdin")
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option(help="append the valid lines and report the others")
    ] = False,
    workers: Annotated[
        int | None, typer.Option(help="processes for checking (default: cores)")
    ] = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Verify signed records and append them to the log, all or nothing.

    Signers are checked against the registry mirror, first brought up to the chain and checked
    against it; when the chain cannot be reached (a server holds the embedded chain), against
    the mirror as the database has it, and the command says so."""
    dep = open_deployment(home)
    try:
        dep.open_chain().close()
    except RegistryMismatch as exc:
        fail(f"{exc}; nothing was appended")
    except LedgerError as exc:
        err.print(
            f"[yellow]registry not checked against the chain ({exc}); signers are checked "
            "against the database's mirror[/]",
            highlight=False,
        )
    total = _count_lines(input)
    try:
        with _progress() as progress:
            task = progress.add_task("appending", total=total, rate="")

            def advance(n: int) -> None:
                progress.advance(task, n)
                speed = progress.tasks[0].speed
                progress.update(task, rate=f"{speed:,.0f}/s" if speed else "")

            done = append_lines(
                dep.log,
                _lines(input),
                dep.domain,
                dep.registry.snapshot(),
                workers=workers,
                skip_invalid=skip_invalid,
                progress=advance,
            )
    except InvalidLines as exc:
        for line, error in exc.rejected:
            err.print(f"line {line}: {error}", highlight=False, markup=False)
        fail(str(exc))
    except LedgerError as exc:
        fail(f"{exc}; nothing was appended")
    for r in done.rejected:
        err.print(f"skipped line {r.line}: {r.error}", highlight=False, markup=False)
    out.print(
        f"appended {done.appended} records ({done.duplicates} already logged, "
        f"{len(done.rejected)} skipped); log size {done.size}"
    )
    if done.rejected:
        raise typer.Exit(1)


@app.command()
def checkpoint(
    home: Home = DEFAULT_HOME,
    local: Annotated[bool, typer.Option(help="commit locally, do not anchor on chain")] = False,
) -> None:
    """Commit to the log as it stands and anchor the checkpoint on chain."""
    dep = open_deployment(home)
    try:
        if local:
            cp = dep.log.checkpoint()
            out.print(f"checkpoint size {cp.size} root {hex0x(cp.root)} (not anchored)")
            return
        chain = dep.open_chain()
        try:
            Sequencer(dep.log, chain).step(force=True)
        finally:
            chain.close()
    except LedgerError as exc:
        fail(str(exc))
    latest = dep.log.latest_checkpoint()
    if latest is None:
        fail("the log is empty: nothing to checkpoint")
    cp = latest
    out.print(
        f"checkpoint size {cp.size} root {hex0x(cp.root)} anchored in block {cp.block_number}"
        f" (tx {cp.tx_hash})"
    )


@app.command()
def sequencer(
    home: Home = DEFAULT_HOME,
    every: Annotated[int, typer.Option(help="publish when this many records wait")] = 256,
    interval: Annotated[float, typer.Option(help="... or when they waited this long (s)")] = 5.0,
    lease_ttl: Annotated[
        float, typer.Option(help="seconds before a silent leader's lease is taken over")
    ] = 6.0,
) -> None:
    """Run a sequencer: publish checkpoints to the chain as records arrive, until stopped.

    Any number may run, beside `up` processes too: one holds the lease and publishes, the
    others stand by and take over when it dies. Outages of the database or the node are
    waited out; only an integrity failure (the chain anchors what the log does not hold)
    ends it, with exit status 2."""
    import logging
    import signal
    import threading

    from ledger import logs
    from ledger.lease import Lease, candidate_id

    logs.configure()
    dep = open_deployment(home)
    if dep.chain_url:
        chain: Any = dep.lazy_chain()  # starts while the node is down
    else:
        try:
            chain = dep.open_chain()
        except LedgerError as exc:
            fail(str(exc))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    lease = Lease(dep.store, candidate_id("sequencer"), ttl_s=lease_ttl)
    logging.getLogger("forgeproof.sequencer").info(
        "sequencer running as candidate %s: every %d records or %.1fs, contract %s",
        lease.holder,
        every,
        interval,
        dep.domain.verifying_contract,
    )
    try:
        Sequencer(dep.log, chain, Policy(every=every, interval_s=interval), lease=lease).run(stop)
    except KeyboardInterrupt:
        pass
    except LedgerError as exc:
        fail(str(exc))
    finally:
        chain.close()


@app.command()
def receipt(
    id: Annotated[str, typer.Argument(help="leaf index, or 0x leaf hash")],
    output: Annotated[Path, typer.Option("-o", "--output", help="receipt file to write")],
    home: Home = DEFAULT_HOME,
) -> None:
    """Write a self-contained receipt for a record."""
    dep = open_deployment(home)
    try:
        index = dep.log.find(bytes.fromhex(id[2:])).index if id.startswith("0x") else int(id)
        data = build_receipt(dep.log, index, dep.domain)
    except ValueError:
        fail(f"{id!r} is neither a leaf index nor a 0x leaf hash")
    except LedgerError as exc:
        fail(str(exc))
    write_json_atomic(output, data)
    cp = data["checkpoint"]
    out.print(f"receipt for record {index} (checkpoint size {cp['size']}) -> {output}")


@app.command()
def verify(
    receipt_file: Annotated[Path, typer.Argument(metavar="RECEIPT")],
    home: Annotated[
        Path | None,
        typer.Option("--home", envvar="FORGEPROOF_HOME", help="also check against this deployment"),
    ] = None,
    rpc: Annotated[
        str | None, typer.Option(help="check the anchor on this JSON-RPC node (read only)")
    ] = None,
    offline: Annotated[bool, typer.Option(help="check the receipt alone")] = False,
) -> None:
    """Check a receipt: canonical hash, signature, key, inclusion, checkpoint and chain anchor."""
    try:
        data = loads_strict(receipt_file.read_bytes())
    except OSError as exc:
        fail(f"cannot read {receipt_file}: {exc.strerror}")
    except LedgerError as exc:
        fail(f"{receipt_file}: {exc}")
    keys = source = anchor = None
    chain = None
    home = home or (DEFAULT_HOME if DEFAULT_HOME.joinpath("config.json").is_file() else None)
    try:
        if rpc and not offline:
            chain = _read_only_chain(rpc, data)
        if home is not None and not offline:
            dep = open_deployment(home)
            source = log_checkpoint_source(dep.log)
            if chain is None:
                try:
                    chain = dep.open_chain()
                except LedgerError as exc:
                    err.print(f"[yellow]chain not checked:[/] {exc}", highlight=False)
        if chain is not None:
            anchor = chain_anchor_source(chain)
            keys = chain_key_source(chain)
        verdict = verify_receipt(
            data, key_source=keys, checkpoint_source=source, anchor_source=anchor
        )
    finally:
        if chain is not None:
            chain.close()
    style = {"ok": "green", "failed": "bold red", "skipped": "yellow"}
    for c in verdict.checks:
        out.print(f"[{style[c.status]}]{c.status:>7}[/]  {c.name:<10} {c.detail}", highlight=False)
    if verdict.ok:
        skipped = ", ".join(c.name for c in verdict.skipped)
        if skipped:
            out.print(f"[bold green]receipt verified[/] [yellow](not checked: {skipped})[/]")
        else:
            out.print("[bold green]receipt verified[/]")
        return
    names = ", ".join(c.name for c in verdict.failed) or "an essential check did not run"
    fail(f"receipt does NOT verify: {names}", code=1)


def _read_only_chain(url: str, receipt: object) -> Any:
    """A client for reading the contract a receipt names; it never sends a transaction."""
    from web3 import Web3

    from ledger.chain import ChainClient

    contract = None
    if isinstance(receipt, dict):
        contract = (receipt.get("anchor") or {}).get("contract") or (
            receipt.get("domain") or {}
        ).get("verifyingContract")
    if not contract:
        fail("the receipt names no contract to check on chain")
    return ChainClient(
        Web3(Web3.HTTPProvider(url)), private_key=Signer.generate().private_key, address=contract
    )


@app.command()
def status(home: Home = DEFAULT_HOME) -> None:
    """Log size, root, checkpoints and participants."""
    dep = open_deployment(home)
    size = dep.log.committed_size()
    cp = dep.log.latest_checkpoint()
    table = Table(show_header=False)
    table.add_row("deployment", str(home))
    table.add_row("database", dep.store.engine.url.render_as_string(hide_password=True))
    table.add_row("domain", json.dumps(dep.domain.to_json()))
    table.add_row("log size", f"{size:,}")
    table.add_row("root", hex0x(dep.log.root(size)))
    if cp:
        table.add_row("latest checkpoint", f"size {cp.size:,}, root {hex0x(cp.root)}")
        table.add_row("not yet checkpointed", f"{size - cp.size:,} records")
        table.add_row(
            "anchored", f"tx {cp.tx_hash} block {cp.block_number}" if cp.anchored else "no"
        )
    else:
        table.add_row("latest checkpoint", "none")
    table.add_row("participants", str(len(dep.registry.participants())))
    out.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
