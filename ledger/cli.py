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

from ledger.deployment import Deployment, save_key
from ledger.errors import InvalidLines, LedgerError, RegistryMismatch
from ledger.ingest import append_lines, submission_json
from ledger.keystore import PASSPHRASE_ENV
from ledger.receipts import (
    Verdict,
    build_receipt,
    chain_anchor_source,
    chain_key_source,
    loads_strict,
    log_checkpoint_source,
    unwrap_receipt,
    verify_receipt,
    write_json_atomic,
)
from ledger.records import Record, format_time, hex0x, unhex
from ledger.registry import ROLES
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
def participants_list(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON array on stdout")] = False,
    home: Home = DEFAULT_HOME,
) -> None:
    """List participants, roles and keys, with the blocks their keys are valid over.

    Addresses are printed whole, one key a line (never cut to the terminal's width: they are
    what a partner checks and pastes)."""
    dep = open_deployment(home)
    if not dep.registry.synced:
        err.print("[yellow]as the database mirrors the chain (not checked now)[/]")
    keys = dep.registry.keys()
    participants = [
        (p, [k for k in keys if k.participant == p.id]) for p in dep.registry.participants()
    ]
    if as_json:
        listed = [
            {
                "id": p.id,
                "name": p.name,
                "roles": sorted(p.roles),
                "registered_block": p.registered_block,
                "keys": [
                    {
                        "address": k.address,
                        "valid_from": k.valid_from,
                        "revoked_from": k.revoked_from,
                        "added_by": k.added_by,
                        "revoked_by": k.revoked_by,
                    }
                    for k in mine
                ],
            }
            for p, mine in participants
        ]
        sys.stdout.write(json.dumps(listed) + "\n")
        return
    for p, mine in participants:
        _line(f"{p.id}  {p.name}  ({', '.join(sorted(p.roles)) or 'suspended'})")
        if not mine:
            _line("    no key")
        for k in mine:
            _line(
                f"    key {k.address}  valid from block {k.valid_from}"
                + (f", revoked at block {k.revoked_from}" if k.revoked_from is not None else "")
                + (f"  added by {k.added_by}" if k.added_by else "")
            )


def _line(text: str) -> None:
    """One line on stdout as it is: no markup, no highlighting, never wrapped by us."""
    out.print(text, soft_wrap=True, markup=False, highlight=False)


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


# Exit statuses of `verify` and `verify-export` (see their help).
VERIFIED, FAILED, UNREADABLE, INCOMPLETE = 0, 1, 2, 3
_STYLE = {"ok": "green", "failed": "bold red", "skipped": "yellow", "unchecked": "yellow"}


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
    """Check a receipt: canonical hash, signature, key, inclusion, checkpoint and chain anchor.

    RECEIPT is a receipt file or the API's receipt response (GET /v1/records/{id}/receipt)
    as it comes. Exit status: 0 verified (with --offline: every check the receipt alone
    allows); 1 a check failed; 2 the receipt, the deployment or the node could not be read;
    3 nothing failed but checks were not run that you did not skip (the chain could not be
    had, e.g. a running server holds the deployment's embedded chain): not verified."""
    data = _read_receipt(receipt_file)
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
    for c in verdict.checks:
        out.print(f"[{_STYLE[c.status]}]{c.status:>7}[/]  {c.name:<10} {c.detail}", highlight=False)
    if not verdict.ok:
        names = ", ".join(c.name for c in verdict.failed) or "an essential check did not run"
        fail(f"receipt does NOT verify: {names}", code=FAILED)
    _conclude("receipt", unchecked([verdict]), offline=offline)


def _read_receipt(path: Path) -> Any:
    """The receipt in `path` (a receipt, or a receipt response as the API answers it); exits
    2 with the reason when it cannot be read."""
    try:
        return unwrap_receipt(loads_strict(path.read_bytes()))
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    except LedgerError as exc:
        fail(f"{path}: {exc}")


def unchecked(verdicts: list[Verdict]) -> list[str]:
    """The checks skipped in any of `verdicts` that leave a claim unchecked, in order.

    The log's checkpoint check is no gap where the anchor check passed: the chain then
    authenticated the very size and root the log would have confirmed."""
    names: dict[str, None] = {}
    for v in verdicts:
        anchored = any(c.name == "anchor" and c.status == "ok" for c in v.checks)
        for c in v.skipped:
            if not (c.name == "checkpoint" and anchored):
                names[c.name] = None
    return list(names)


def _conclude(what: str, skipped: list[str], *, offline: bool) -> None:
    """The last line of a verification that nothing failed: verified (exit 0), verified as far
    as offline checks go when --offline asked for just that (exit 0), or not verified,
    saying what was not checked (exit 3)."""
    if not skipped:
        out.print(f"[bold green]{what} verified[/]")
        return
    names = ", ".join(skipped)
    if offline:
        out.print(f"[bold green]{what} verified offline[/]: not checked: {names}", highlight=False)
        return
    out.print(
        f"[bold yellow]{what} NOT fully verified[/]: nothing failed, but not checked: {names}",
        highlight=False,
    )
    err.print(
        "to check on chain: --rpc URL (a node of its chain); beside a server that holds the "
        "deployment's embedded chain, POST the receipt to its /v1/verify, or stop it and use "
        "--home; --offline accepts the offline checks alone",
        highlight=False,
    )
    raise typer.Exit(INCOMPLETE)


@app.command("verify-export")
def verify_export(
    export_file: Annotated[
        Path, typer.Argument(metavar="FILE", help="the auditor's export: its JSON or HTML page")
    ],
    rpc: Annotated[
        str | None,
        typer.Option(help="check every signer's key and the anchor on this JSON-RPC node"),
    ] = None,
    offline: Annotated[bool, typer.Option(help="check the export alone")] = False,
) -> None:
    """Check an auditor's export (GET /v1/genealogy/audit, the JSON bundle or the HTML page
    with the bundle inside): every event's receipt, that each event hashes to its eventID,
    that the genealogy's links follow from the events, and who asserted each one.

    Offline, the receipts' chain checks (the signer's key, the anchor) are not made: give
    --rpc URL for them, or --offline to accept the rest. Exit status as `verify`'s: 0
    verified, 1 a check failed, 2 unreadable, 3 chain checks not made without --offline."""
    from ledger.epcis.audit import FORMAT, audit_html, read_export, verify_audit

    try:
        raw = export_file.read_bytes()
        bundle = read_export(raw)
    except OSError as exc:
        fail(f"cannot read {export_file}: {exc.strerror}")
    except LedgerError as exc:
        fail(f"{export_file}: {exc}")
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        fail(f"{export_file}: not an auditor's export ({FORMAT})")
    chain = _read_only_chain(rpc, bundle) if rpc and not offline else None
    try:
        checks = None
        if chain is not None:
            keys, anchors = chain_key_source(chain), chain_anchor_source(chain)

            def checks(receipt: dict[str, Any]) -> Verdict:
                return verify_receipt(receipt, key_source=keys, anchor_source=anchors)

        try:
            report = verify_audit(bundle, receipt_checks=checks)
        except (KeyError, TypeError, AttributeError) as exc:
            # verify_audit reads the bundle's frame (checkpoints, edges) as written.
            fail(f"export does NOT verify: malformed ({type(exc).__name__} {exc})", code=FAILED)
    finally:
        if chain is not None:
            chain.close()
    summaries = {
        e.get("leaf_index"): e.get("summary") or {}
        for e in bundle.get("events", [])
        if isinstance(e, dict)
    }
    general = list(report.problems)
    for leaf, verdict in sorted(report.events.items(), key=lambda kv: str(kv[0])):
        prefix = f"event at leaf {leaf}: "
        mine = [p[len(prefix) :] for p in report.problems if p.startswith(prefix)]
        general = [p for p in general if not p.startswith(prefix)]
        reasons = [f"{c.name}: {c.detail}" for c in verdict.failed] + mine
        if reasons or not verdict.ok:
            status = "failed"
        else:
            status = "ok" if offline or not unchecked([verdict]) else "unchecked"
        s = summaries.get(leaf, {})
        label = f"{s.get('type', '?')} {s.get('eventTime', '')} by {s.get('asserted_by', '?')}"
        out.print(
            f"[{_STYLE[status]}]{status:>9}[/]  leaf {leaf:<6} {label}",
            highlight=False,
            soft_wrap=True,
        )
        for reason in reasons:
            _line(f"           {reason}")
    for problem in general:
        out.print(f"[bold red]{'failed':>9}[/]  {problem}", highlight=False, soft_wrap=True)
    if not report.ok:
        failed = [
            f"event at leaf {leaf}: {c.name}: {c.detail}"
            for leaf, v in report.events.items()
            for c in v.failed
        ]
        reason = (failed + report.problems + ["the export holds no events"])[0]
        fail(f"export does NOT verify: {reason}", code=FAILED)
    if raw.lstrip()[:1] == b"<":
        try:
            same = audit_html(bundle) == raw.decode("utf-8")
        except (KeyError, TypeError, ValueError, IndexError):
            same = False
        if not same:
            err.print(
                "[yellow]warning:[/] the page shows something other than what its embedded "
                "bundle draws (edited, or made by another version): what was checked is the "
                "bundle, not the page's table",
                highlight=False,
            )
    cp = bundle["checkpoints"][0] if bundle.get("checkpoints") else {}
    out.print(
        f"{len(report.events)} events of {bundle.get('subject')} against checkpoint size "
        f"{cp.get('size')} root {cp.get('root')}",
        highlight=False,
        soft_wrap=True,
    )
    _conclude("export", unchecked(list(report.events.values())), offline=offline)


def _read_only_chain(url: str, receipt: object) -> Any:
    """A client for reading the contract a receipt (or an export) names; it never sends a
    transaction. Exits 2 with one line naming the node when it cannot be reached."""
    from web3 import Web3

    from ledger.chain import ChainClient

    # The contract the signature binds (the EIP-712 domain), never the anchor's claim: a forged
    # receipt could name a contract of its own making there, with a registry and anchors to
    # match. The anchor check then compares the claimed contract with this one.
    contract = None
    if isinstance(receipt, dict):
        domain = receipt.get("domain")
        contract = domain.get("verifyingContract") if isinstance(domain, dict) else None
    if not isinstance(contract, str) or not contract:
        fail("the receipt names no contract to check on chain")
    try:
        return ChainClient(
            Web3(Web3.HTTPProvider(url)),
            private_key=Signer.generate().private_key,
            address=contract,
        )
    except LedgerError as exc:
        fail(
            f"no JSON-RPC node answers at {url} ({_root_cause(exc)}): start it or correct "
            "--rpc; --offline checks without a node",
            code=UNREADABLE,
        )


def _root_cause(exc: BaseException) -> str:
    """What went wrong at the bottom of a chain of exceptions, in a few words (the socket's
    "Connection refused" rather than three layers of HTTP client)."""
    found = type(exc).__name__
    seen: set[int] = set()
    at: BaseException | None = exc
    while at is not None and id(at) not in seen:
        seen.add(id(at))
        if isinstance(at, OSError) and at.strerror:
            found = at.strerror
        at = at.__cause__ or at.__context__
    return found


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object on stdout")] = False,
    home: Home = DEFAULT_HOME,
) -> None:
    """Log size, root, checkpoints and participants (roots and addresses whole)."""
    dep = open_deployment(home)
    size = dep.log.committed_size()
    cp = dep.log.latest_checkpoint()
    facts: dict[str, Any] = {
        "deployment": str(home),
        "database": dep.store.engine.url.render_as_string(hide_password=True),
        "domain": dep.domain.to_json(),
        "log_size": size,
        "root": hex0x(dep.log.root(size)),
        "latest_checkpoint": None,
        "not_checkpointed": size,
        "participants": len(dep.registry.participants()),
    }
    if cp:
        facts["latest_checkpoint"] = {
            "size": cp.size,
            "root": hex0x(cp.root),
            "anchor": cp.anchor_json(),
        }
        facts["not_checkpointed"] = size - cp.size
    if as_json:
        sys.stdout.write(json.dumps(facts) + "\n")
        return
    domain = dep.domain
    rows = [
        ("deployment", facts["deployment"]),
        ("database", facts["database"]),
        ("chain", f"{domain.chain_id}"),
        ("contract", domain.verifying_contract.lower()),
        ("log size", f"{size:,}"),
        ("root", facts["root"]),
    ]
    if cp:
        rows += [
            ("latest checkpoint", f"size {cp.size:,}"),
            ("checkpoint root", hex0x(cp.root)),
            ("not yet checkpointed", f"{size - cp.size:,} records"),
            ("anchored", f"block {cp.block_number}, tx {cp.tx_hash}" if cp.anchored else "no"),
        ]
    else:
        rows.append(("latest checkpoint", "none"))
    rows.append(("participants", str(facts["participants"])))
    for name, value in rows:
        _line(f"{name:<21} {value}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
