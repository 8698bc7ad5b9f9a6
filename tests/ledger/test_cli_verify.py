"""The ledger's command line as a verifier meets it: receipts as the API hands them out, nodes
that are down, chains a server holds, the auditor's export, and listings to paste from."""

from __future__ import annotations

import copy
import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from api.demo.synthetic import PlantConfig, PlantFacts, plant_document, plant_events
from ledger import cli as ledger_cli
from ledger.cli import app
from ledger.deployment import Deployment
from ledger.epcis.audit import audit_bundle, write_audit
from ledger.epcis.capture import capture
from ledger.epcis.genealogy import trace
from ledger.sequencer import Sequencer

runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture(autouse=True)
def no_default_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run where no ./forgeproof-home is, so `verify` uses only the home a test names."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FORGEPROOF_HOME", raising=False)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A deployment on its embedded chain with one supplier's three records, anchored."""
    h = tmp_path / "home"
    run("init", "--home", str(h))
    run("participants", "add", "acme", "--role", "supplier", "--home", str(h))
    payloads = tmp_path / "payloads.jsonl"
    payloads.write_text("".join(json.dumps({"lot": f"L{i}"}) + "\n" for i in range(3)))
    signed = tmp_path / "signed.jsonl"
    run("sign", "--as", "acme", "--kind", "supplier_record", str(payloads), "-o", str(signed),
        "--home", str(h))  # fmt: skip
    run("append", str(signed), "--home", str(h))
    run("checkpoint", "--home", str(h))
    return h


@pytest.fixture
def receipt(home: Path, tmp_path: Path) -> Path:
    r = tmp_path / "r.json"
    run("receipt", "1", "-o", str(r), "--home", str(home))
    return r


def test_verify_takes_the_apis_receipt_response(home: Path, receipt: Path) -> None:
    """Issue: `verify --offline` refused what GET /v1/records/{id}/receipt answers (and
    POST /v1/verify takes)."""
    response = receipt.with_name("response.json")
    response.write_text(
        json.dumps({"status": "anchored", "receipt": json.loads(receipt.read_text())})
    )
    assert "verified offline" in run("verify", str(response), "--offline")
    out = run("verify", str(response), "--home", str(home))
    assert "ok  anchor" in out and "receipt verified" in out
    pending = receipt.with_name("pending.json")
    pending.write_text(json.dumps({"status": "pending", "receipt": None}))
    out = run("verify", str(pending), "--offline", code=2)
    assert "no receipt yet (status 'pending')" in out


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_verify_rpc_to_a_node_that_is_down_says_so_in_one_line(receipt: Path) -> None:
    """Issue: a 100-line traceback."""
    url = f"http://127.0.0.1:{_closed_port()}"
    result = runner.invoke(app, ["verify", str(receipt), "--rpc", url])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert url in lines[0] and "Connection refused" in lines[0] and "--offline" in lines[0]


def test_verify_beside_a_server_holding_the_chain_is_not_a_verification(
    home: Path, receipt: Path
) -> None:
    """Issue: with the chain held elsewhere the anchor went unchecked, yet "receipt verified"
    and exit 0. Now: exit 3 naming what was not checked, unless --offline asked for just that."""
    dep = Deployment.open(home)
    chain = dep.open_chain()  # what a running `forgeproof up` holds
    try:
        out = run("verify", str(receipt), "--home", str(home), code=3)
        assert "chain not checked" in out and "ok  checkpoint" in out
        assert (
            "receipt NOT fully verified: nothing failed, but not checked: key (chain), anchor"
            in out
        )
        assert "receipt verified" not in out
        out = run("verify", str(receipt), "--offline")
        assert "receipt verified offline: not checked: key (chain), checkpoint, anchor" in out
        # No home, no node, no --offline: nothing on chain was checked, so no verdict of 0.
        assert "not checked: key (chain), checkpoint, anchor" in run("verify", str(receipt), code=3)
    finally:
        chain.close()
        dep.close()
    assert "receipt verified\n" in run("verify", str(receipt), "--home", str(home))


# ---------------------------------------------------------------------- the auditor's export


def export(home: Path, chain_url: str | None = None) -> tuple[Path, Path]:
    """An auditor's export of a small plant's lot, anchored on the deployment's chain: the
    JSON bundle and the HTML page, as GET /v1/genealogy/audit hands them out."""
    dep = Deployment.init(home, chain_url=chain_url)
    try:
        facts = PlantFacts()
        events = list(plant_events(PlantConfig(runs=3, stages=3, raw_lot_uses=2, seed=3), facts))
        capture(
            dep.log,
            plant_document(events),
            signer=dep.signer(dep.operator),
            participant=dep.operator,
            domain=dep.domain,
            keys=dep.registry.snapshot(),
        )
        chain = dep.open_chain()
        try:
            Sequencer(dep.log, chain).step(force=True)
        finally:
            chain.close()
        g = trace(dep.store, facts.runs[1][1])
        bundle = json.loads(json.dumps(audit_bundle(dep.log, g, dep.domain)))
        return write_audit(bundle, home / "export", name="lot")
    finally:
        dep.close()


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Path, Path]:
    return export(tmp_path / "plant")


def test_verify_export_offline(exported: tuple[Path, Path]) -> None:
    bundle = json.loads(exported[0].read_text())
    for path in exported:  # the JSON and the page with the JSON inside
        out = run("verify-export", str(path), "--offline")
        assert out.count("ok  leaf ") == len(bundle["events"]) >= 3, out
        assert "export verified offline: not checked: key (chain), checkpoint, anchor" in out
        assert "warning" not in out
        # Without --offline, what is not checked on chain keeps it from exit 0.
        out = run("verify-export", str(path), code=3)
        assert "export NOT fully verified" in out and "--rpc URL" in out


def _tampered(exported: tuple[Path, Path], change: Any) -> Path:
    bundle = json.loads(exported[0].read_text())
    change(bundle)
    bad = exported[0].with_name("bad.json")
    bad.write_text(json.dumps(bundle))
    return bad


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda b: b["events"][0]["receipt"]["record"]["payload"].update(bizStep="shipping"),
         "canonical: record hashes to leaf"),
        (lambda b: b["events"][1]["summary"].update(asserted_by="someone-else"),
         "the bundle says someone-else asserted it"),
        (lambda b: b["genealogy"]["edges"][0].update(target="urn:epc:class:lgtin:1.2.3"),
         "does not follow from its events"),
        (lambda b: b["checkpoints"][0].update(root="0x" + "00" * 32), "unlisted checkpoint"),
        (lambda b: b["checkpoints"][0].pop("root"), "malformed (KeyError 'root')"),
        (lambda b: b.update(events=[], genealogy={**b["genealogy"], "edges": []}),
         "the export holds no events"),
    ],
)  # fmt: skip
def test_verify_export_names_what_was_tampered_with(
    exported: tuple[Path, Path], change: Any, reason: str
) -> None:
    out = run("verify-export", str(_tampered(exported, change)), "--offline", code=1)
    assert "export does NOT verify" in out and reason in out, out


def test_verify_export_reads_the_bundle_the_page_carries(exported: tuple[Path, Path]) -> None:
    page = exported[1].read_text()
    bundle = json.loads(exported[0].read_text())
    leaf = bundle["events"][0]["leaf_index"]
    forged = copy.deepcopy(bundle)
    forged["events"][0]["receipt"]["record"]["payload"]["bizStep"] = "shipping"
    embedded = re.compile(r'(<script type="application/json" id="bundle">)(.*?)(</script>)', re.S)
    bad = exported[1].with_name("bad.html")
    bad.write_text(embedded.sub(lambda m: m[1] + json.dumps(forged) + m[3], page))
    out = run("verify-export", str(bad), "--offline", code=1)
    assert f"event at leaf {leaf}: canonical" in out
    # The page's table edited, its bundle intact: the bundle verifies, with a warning.
    edited = exported[1].with_name("edited.html")
    edited.write_text(page.replace("<td>", "<td>x", 1))
    out = run("verify-export", str(edited), "--offline")
    assert "export verified offline" in out and "warning" in out
    html_only = exported[1].with_name("plain.html")
    html_only.write_text("<html><body>no bundle here</body></html>")
    assert "without the bundle" in run("verify-export", str(html_only), code=2)


def test_the_audit_page_names_the_command(exported: tuple[Path, Path]) -> None:
    page = exported[1].read_text()
    assert "forgeproof verify-export FILE" in page and "/verify" in page
    assert "verify_audit" not in page


@pytest.mark.node
def test_verify_export_with_a_node(tmp_path: Path) -> None:
    """Every receipt's chain checks on the deployment's own node, as `verify --rpc` makes
    them; a forged anchor passes offline and fails there."""
    from ledger.chain.devnode import AnvilNode, find_anvil

    if find_anvil() is None:
        pytest.fail("anvil is not installed (npm install)")
    with AnvilNode.start() as node:
        json_path, html_path = export(tmp_path / "plant", chain_url=node.url)
        for path in (json_path, html_path):
            out = run("verify-export", str(path), "--rpc", node.url)
            assert "export verified\n" in out and "unchecked" not in out, out

        def forge_anchor(b: dict[str, Any]) -> None:
            for item in b["events"]:
                item["receipt"]["anchor"]["block_number"] += 1
            b["checkpoints"][0]["anchor"]["block_number"] += 1

        bad = _tampered((json_path, html_path), forge_anchor)
        assert "export verified offline" in run("verify-export", str(bad), "--offline")
        out = run("verify-export", str(bad), "--rpc", node.url, code=1)
        assert "export does NOT verify" in out and ": anchor: " in out, out


# ------------------------------------------------------------------- listings to paste from


def test_participants_and_status_print_whole_values_and_json(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue: addresses and roots were cut short ("0x631f…") in an 80-column terminal, and
    neither command had --json."""
    monkeypatch.setattr(ledger_cli.out, "width", 80)
    listed = json.loads(
        runner.invoke(app, ["participants", "list", "--json", "--home", str(home)]).stdout
    )
    assert {p["id"] for p in listed} == {"operator", "acme"}
    addresses = [k["address"] for p in listed for k in p["keys"]]
    assert addresses and all(re.fullmatch(r"0x[0-9a-f]{40}", a) for a in addresses)
    table = run("participants", "list", "--home", str(home))
    assert all(a in table for a in addresses) and "…" not in table

    facts = json.loads(runner.invoke(app, ["status", "--json", "--home", str(home)]).stdout)
    assert facts["log_size"] == 3 and facts["latest_checkpoint"]["size"] == 3
    assert facts["latest_checkpoint"]["anchor"]["block_number"] >= 1
    roots = [facts["root"], facts["latest_checkpoint"]["root"]]
    assert all(re.fullmatch(r"0x[0-9a-f]{64}", r) for r in roots)
    table = run("status", "--home", str(home))
    assert all(r in table for r in roots) and "…" not in table
    assert facts["domain"]["verifyingContract"] in table
    assert facts["latest_checkpoint"]["anchor"]["tx_hash"] in table


def test_json_output_is_one_document_on_stdout(home: Path) -> None:
    for args in (["participants", "list"], ["status"]):
        result = runner.invoke(app, [*args, "--json", "--home", str(home)])
        assert result.exit_code == 0, result.output
        json.loads(result.stdout)  # nothing else on stdout
        assert result.stdout.count("\n") == 1
