"""The CLI end to end, and every kind of bad input it must refuse cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from ledger.deployment import Deployment, save_key
from ledger.ingest import submission_json
from ledger.records import Record
from ledger.signing import Signer
from tests.ledger.testonly.registry import forge_key

runner = CliRunner()


def run(*args: str, input: str | None = None, code: int = 0) -> str:
    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    run("init", "--home", str(h))
    run("participants", "add", "acme", "--role", "supplier", "--home", str(h))
    return h


def signed(home: Path, n: int, tmp_path: Path, who: str = "acme") -> Path:
    payloads = tmp_path / "payloads.jsonl"
    payloads.write_text("".join(json.dumps({"lot": f"L{i}", "qty": i}) + "\n" for i in range(n)))
    out = tmp_path / f"signed-{n}.jsonl"
    run(
        "sign",
        "--as",
        who,
        "--kind",
        "supplier_record",
        str(payloads),
        "-o",
        str(out),
        "--home",
        str(home),
    )
    return out


def size(home: Path) -> int:
    dep = Deployment.open(home)
    try:
        return dep.log.committed_size()
    finally:
        dep.close()


def test_full_flow(home: Path, tmp_path: Path) -> None:
    lines = signed(home, 25, tmp_path)
    assert "appended 25 records" in run("append", str(lines), "--home", str(home))
    assert "0 skipped" in run("append", str(lines), "--home", str(home))  # idempotent
    assert size(home) == 25
    assert "checkpoint size 25" in run("checkpoint", "--home", str(home))
    assert "anchored in block" in run("checkpoint", "--home", str(home))
    r = tmp_path / "r.json"
    run("receipt", "7", "-o", str(r), "--home", str(home))
    output = run("verify", str(r), "--home", str(home))
    assert "receipt verified" in output and "checkpoint root matches" in output
    assert "ok  anchor     root anchored at size 25" in output
    assert json.loads(r.read_text())["anchor"]["block_number"] >= 1
    assert "skipped  checkpoint" in run("verify", str(r), "--offline")
    leaf = json.loads(r.read_text())["leaf_hash"]
    r2 = tmp_path / "r2.json"
    run("receipt", leaf, "-o", str(r2), "--home", str(home))
    assert json.loads(r2.read_text())["leaf_index"] == 7
    assert "log size" in run("status", "--home", str(home))
    assert "acme" in run("participants", "list", "--home", str(home))


def test_malformed_json_appends_nothing(home: Path, tmp_path: Path) -> None:
    lines = signed(home, 5, tmp_path)
    text = lines.read_text().splitlines()
    text.insert(3, '{"record": {oops')
    lines.write_text("\n".join(text) + "\n")
    output = run("append", str(lines), "--home", str(home), code=2)
    assert "line 4: malformed JSON" in output and "nothing was appended" in output
    assert size(home) == 0
    output = run("append", str(lines), "--skip-invalid", "--home", str(home), code=1)
    assert "skipped line 4" in output and size(home) == 5


@pytest.mark.parametrize(
    ("mutate", "complaint"),
    [
        (lambda s: s.pop("signature"), "missing signature"),
        (lambda s: s.update(signature="0x" + "00" * 65), "signature"),
        (lambda s: s.update(signature=s["signature"][:-4]), "63 bytes, expected 65"),
        (lambda s: s["record"]["payload"].update(qty=999), "signature was made by"),
        (lambda s: s["record"].pop("salt"), "salt: Field required"),
    ],
)
def test_bad_signatures_are_refused(home: Path, tmp_path: Path, mutate, complaint: str) -> None:  # type: ignore[no-untyped-def]
    lines = signed(home, 2, tmp_path)
    subs = [json.loads(x) for x in lines.read_text().splitlines()]
    mutate(subs[1])
    lines.write_text("".join(json.dumps(s) + "\n" for s in subs))
    output = run("append", str(lines), "--home", str(home), code=2)
    assert "line 2:" in output and complaint in output, output
    assert size(home) == 0


def test_unknown_and_revoked_keys(home: Path, tmp_path: Path) -> None:
    lines = signed(home, 3, tmp_path)
    dep = Deployment.open(home)
    address = dep.registry.keys("acme")[0].address
    dep.close()
    # A rotated-in key signs; records from the rotated-out key are refused.
    assert "now signs with" in run("participants", "rotate", "acme", "--home", str(home))
    output = run("append", str(lines), "--home", str(home), code=2)
    assert f"key {address} of acme was revoked at block" in output
    fresh = signed(home, 2, tmp_path / "x" if (tmp_path / "x").mkdir() is None else tmp_path)
    assert "appended 2 records" in run("append", str(fresh), "--home", str(home))
    # The operator revokes the new key too: nothing signs for acme until it is recovered.
    dep = Deployment.open(home)
    current = next(k.address for k in dep.registry.keys("acme") if k.active)
    dep.close()
    assert "revoked" in run("participants", "revoke", current, "--home", str(home))
    assert "nothing was changed" in run(
        "participants", "revoke", current, "--home", str(home), code=2
    )
    assert "participants recover acme" in run(
        "participants", "rotate", "acme", "--home", str(home), code=2
    )
    assert "recovered with key" in run("participants", "recover", "acme", "--home", str(home))
    more = signed(home, 1, tmp_path / "z" if (tmp_path / "z").mkdir() is None else tmp_path)
    assert "appended 1 records" in run("append", str(more), "--home", str(home))
    # A key registered nowhere.
    other = tmp_path / "other"
    run("init", "--home", str(other))
    run("participants", "add", "acme", "--role", "supplier", "--home", str(other))
    stranger = signed(other, 1, tmp_path / "y" if (tmp_path / "y").mkdir() is None else tmp_path)
    output = run("append", str(stranger), "--home", str(home), code=2)
    assert "signature was made by" in output  # the other deployment's domain
    assert size(home) == 3


def test_bad_receipts_name_the_failed_check(home: Path, tmp_path: Path) -> None:
    run("append", str(signed(home, 10, tmp_path)), "--home", str(home))
    run("checkpoint", "--home", str(home))
    r = tmp_path / "r.json"
    run("receipt", "3", "-o", str(r), "--home", str(home))
    good = json.loads(r.read_text())

    def verify(data: dict | str, code: int) -> str:
        bad = tmp_path / "bad.json"
        bad.write_text(data if isinstance(data, str) else json.dumps(data))
        return run("verify", str(bad), "--home", str(home), code=code)

    wrong_size = {**good, "checkpoint": {**good["checkpoint"], "size": 5}}
    out = verify(wrong_size, 1)
    assert "failed  inclusion" in out and "expected 3" in out
    # A size the proof's shape cannot tell apart is caught against the log.
    beyond = {**good, "checkpoint": {**good["checkpoint"], "size": 11}}
    out = verify(beyond, 1)
    assert "failed  checkpoint" in out and "no tree of size 11" in out
    out = verify({**good, "inclusion_proof": good["inclusion_proof"][:-1]}, 1)
    assert "failed  inclusion" in out
    forged = {**good, "record": {**good["record"], "payload": {"lot": "forged"}}}
    out = verify(forged, 1)
    assert "failed  canonical" in out and "failed  signature" in out
    out = verify(r.read_text()[: len(r.read_text()) // 2], 2)
    assert "not JSON (truncated?)" in out
    trimmed = {k: v for k, v in good.items() if k != "checkpoint"}
    assert "missing checkpoint" in verify(trimmed, 1)


def test_receipt_errors(home: Path, tmp_path: Path) -> None:
    run("append", str(signed(home, 2, tmp_path)), "--home", str(home))
    out = run("receipt", "1", "-o", str(tmp_path / "r.json"), "--home", str(home), code=2)
    assert "not covered by a checkpoint" in out and not (tmp_path / "r.json").exists()
    assert "no record at index 9" in run(
        "receipt", "9", "-o", "x.json", "--home", str(home), code=2
    )
    assert "neither a leaf index" in run(
        "receipt", "abc", "-o", "x.json", "--home", str(home), code=2
    )


def test_commands_without_deployment(tmp_path: Path) -> None:
    out = run("status", "--home", str(tmp_path / "none"), code=2)
    assert "forgeproof init" in out
    run("init", "--home", str(tmp_path / "h"))
    assert "already holds" in run("init", "--home", str(tmp_path / "h"), code=2)


def test_demo(tmp_path: Path) -> None:
    out = run("demo", "--home", str(tmp_path / "demo"), "--records", "40")
    assert "appended 40 signed records" in out and "rejected, as it must be" in out
    assert "anchor ok" in out


def _forge_key(home: Path, who: str) -> Signer:
    """A key for `who` in the database's registry mirror only, held here as a signer would."""
    dep = Deployment.open(home)
    forger = forge_key(dep.store, who)
    save_key(home, who, forger)
    dep.close()
    return forger


def test_append_refuses_a_mirror_the_chain_disagrees_with(home: Path, tmp_path: Path) -> None:
    honest = signed(home, 2, tmp_path)
    signer = _forge_key(home, "acme")
    forged = tmp_path / "forged.jsonl"
    dep = Deployment.open(home)
    rec = Record.new("supplier_record", {"lot": "F"}, participant="acme", address=signer.address)
    forged.write_text(json.dumps(submission_json(rec, signer.sign(dep.domain, rec))) + "\n")
    dep.close()
    for lines in (forged, honest):  # the whole mirror is distrusted, not just the forged key
        out = run("append", str(lines), "--home", str(home), code=2)
        assert "disagrees with the chain" in out and "nothing was appended" in out
    assert size(home) == 0
    out = run("registry", "sync", "--home", str(home), code=1)
    assert "in the mirror, not on chain" in out
    assert "agrees with the chain" in run("registry", "sync", "--repair", "--home", str(home))
    out = run("append", str(forged), "--home", str(home), code=2)
    assert "is not registered" in out
    assert "appended 2 records" in run("append", str(honest), "--home", str(home))


def test_init_prints_an_operator_api_key_and_api_keys_are_managed(tmp_path: Path) -> None:
    h = tmp_path / "h"
    out = run("init", "--home", str(h))
    token = next(line.strip() for line in out.splitlines() if line.strip().startswith("fp_"))
    run("participants", "add", "acme", "--role", "supplier", "--home", str(h))
    created = runner.invoke(
        app,
        [
            "api-keys",
            "create",
            "acme",
            "--role",
            "supplier",
            "--expires-in",
            "30d",
            "--home",
            str(h),
        ],
    )
    assert created.exit_code == 0, created.output
    acme_token = created.stdout.strip().splitlines()[-1]
    assert acme_token.startswith("fp_") and acme_token != token
    listed = json.loads(run("api-keys", "list", "--json", "--home", str(h)))
    assert {(k["participant"], k["role"]) for k in listed} == {
        ("operator", "operator"),
        ("acme", "supplier"),
    }
    assert all(token not in json.dumps(k) for k in listed)
    acme_id = next(k["id"] for k in listed if k["participant"] == "acme")
    assert "revoked API key" in run("api-keys", "revoke", acme_id, "--home", str(h))
    listed = json.loads(run("api-keys", "list", "--json", "--home", str(h)))
    assert next(k for k in listed if k["id"] == acme_id)["revoked_us"] is not None
    assert "does not hold the role" in run(
        "api-keys", "create", "acme", "--role", "auditor", "--home", str(h), code=2
    )
    assert "expected a positive number" in run(
        "api-keys",
        "create",
        "acme",
        "--role",
        "supplier",
        "--expires-in",
        "soon",
        "--home",
        str(h),
        code=2,
    )
    from api.auth import KeyCache
    from ledger.registry import Registry

    dep = Deployment.open(h)
    keys = KeyCache(dep.store, roles_of=lambda p: Registry(dep.store).participant(p).roles)
    assert keys.lookup(token) is not None and keys.lookup(acme_token) is None
    dep.close()


@pytest.mark.node
def test_verify_rpc_refuses_a_key_the_chain_never_had(tmp_path: Path) -> None:
    """Issue #13, finding 1, checked the way a partner would: with its own node, not ours."""
    from ledger.chain.devnode import AnvilNode, find_anvil
    from ledger.ingest import append_lines
    from ledger.registry import Registry
    from ledger.sequencer import Sequencer

    if find_anvil() is None:
        pytest.fail("anvil is not installed (npm install)")
    with AnvilNode.start() as node:
        h = tmp_path / "h"
        run("init", "--home", str(h), "--chain-url", node.url)
        run("participants", "add", "acme", "--role", "supplier", "--home", str(h))
        honest = signed(h, 1, tmp_path)
        forger = _forge_key(h, "acme")
        dep = Deployment.open(h)
        rec = Record.new(
            "supplier_record", {"lot": "F"}, participant="acme", address=forger.address
        )
        line = json.dumps(submission_json(rec, forger.sign(dep.domain, rec))).encode()
        # A process that trusts the database alone appends it ...
        lines = [*honest.read_bytes().splitlines(), line]
        append_lines(dep.log, lines, dep.domain, Registry(dep.store).snapshot())
        chain = dep.open_chain(sync=False)
        Sequencer(dep.log, chain).step(force=True)
        chain.close()
        for index, verdict in ((0, 0), (1, 1)):
            r = tmp_path / f"r{index}.json"
            run("receipt", str(index), "-o", str(r), "--home", str(h))
            out = run("verify", str(r), "--rpc", node.url, code=verdict)
            if verdict:
                assert "failed  key (chain)" in out and "not registered on chain" in out
            else:
                assert "ok  key (chain)" in out and "receipt verified" in out
        dep.close()
