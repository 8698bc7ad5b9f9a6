"""The verifier that runs in the browser (api/portal/static/verify.js, in the standalone page of
api/portal/verifier.py) agrees with `ledger.receipts.verify_receipt`, check by check.

Receipts come from a real deployment (the embedded chain; for the chain checks, anvil). Every
single-field mutation of tests/ledger/test_receipt_tamper.py, the tampers a partner would try
first, and values at the edges of what JSON and RFC 8785 carry are verified in headless
Chromium and in Python; each check's status must be the same on both sides.
"""

from __future__ import annotations

import copy
import http.server
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from api.portal.verifier import content_security_policy, standalone_page, write_standalone
from ledger.chain import ChainClient
from ledger.deployment import Deployment
from ledger.epcis.audit import audit_bundle, verify_audit
from ledger.epcis.genealogy import trace
from ledger.errors import InputError, ProofError
from ledger.ingest import check_record
from ledger.merkle import root_from_inclusion_proof
from ledger.receipts import (
    AnchorSource,
    KeySource,
    build_receipt,
    chain_anchor_source,
    chain_key_source,
    conforms,
    loads_strict,
    verify_receipt,
)
from ledger.records import Record
from ledger.registry import KeySnapshot
from ledger.sequencer import Sequencer
from ledger.signing import Signer
from ledger.store import Store, sqlite_url
from tests.ledger.conftest import DOMAIN
from tests.ledger.epcis.conftest import SMALL_PLANT, make_repo
from tests.ledger.test_receipt_tamper import mutations, with_duplicate_key
from tests.ledger.testonly.enrol import enrol

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

Statuses = list[tuple[str, str]]
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

# Payloads whose canonical form tests RFC 8785 where implementations differ: key order by
# UTF-16 code units, escapes, number formatting, keys that are special to JavaScript objects.
AWKWARD_PAYLOADS: list[dict[str, Any]] = [
    {"__proto__": {"a": 1}, "constructor": 2, "toString": "x", "hasOwnProperty": None},
    {"é": 1, "e": 2, "\U0001f600": 3, "\uffff": 4, "": 5, "10": 6, "9": 7,
     "a\u0000b": "\u0000\u001f\u007f\"\\/\b\f\n\r\t"},
    {"f": [1e-7, 1e21, 1e-300, 0.1, -0.0, 5e-324, 1.7976931348623157e308, 2**53 - 1,
           -(2**53 - 1), 123456789.125, 4503599627370495.5]},
    {"s": "\u2028\u2029 <script> </script> <!-- ☃ 𝄞", "deep": [[[[[[[[[[{}]]]]]]]]]],
     "t": True, "n": None},
    {},
]  # fmt: skip


@dataclass
class Anchored:
    """Receipts of a deployment on the embedded chain: two anchored checkpoints, one that is
    not anchored yet, three kinds of record and awkward payloads."""

    dep: Deployment
    chain: ChainClient
    receipts: list[dict[str, Any]]
    awkward: list[dict[str, Any]]

    def text(self, i: int = 0) -> str:
        return json.dumps(self.receipts[i])


def _append(dep: Deployment, signers: dict[str, Signer], plan: list[tuple[str, str, dict]]) -> None:
    keys = dep.registry.snapshot()
    items = []
    for who, kind, payload in plan:
        signer = signers[who]
        rec = Record.new(kind, payload, participant=who, address=signer.address)
        items.append(check_record(rec, signer.sign(dep.domain, rec), dep.domain, keys))
    dep.log.append(items)


@pytest.fixture(scope="module")
def anchored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anchored]:
    dep = Deployment.init(tmp_path_factory.mktemp("browser") / "home")
    chain = dep.open_chain()
    signers = {
        "acme": enrol(dep, "acme", ["supplier"], chain=chain),
        "line-3": enrol(dep, "line-3", ["manufacturer"], chain=chain),
    }

    def plan(n: int) -> list[tuple[str, str, dict]]:
        kinds = [("acme", "supplier_record"), ("line-3", "inspection"), ("line-3", "note")]
        return [
            (*kinds[i % 3], {"lot": f"LOT-{i}", "qty": i, "x": i / 10, "nested": {"ok": True}})
            for i in range(n)
        ]

    _append(dep, signers, plan(5))
    Sequencer(dep.log, chain).step(force=True)
    _append(dep, signers, plan(8) + [("acme", "note", p) for p in AWKWARD_PAYLOADS])
    Sequencer(dep.log, chain).step(force=True)
    _append(dep, signers, plan(3))
    dep.log.checkpoint()  # not anchored: its receipts say anchor null
    size = dep.log.committed_size()
    first_awkward = size - 3 - len(AWKWARD_PAYLOADS)

    def receipt(i: int) -> dict[str, Any]:
        return dict(json.loads(json.dumps(build_receipt(dep.log, i, dep.domain))))

    yield Anchored(
        dep,
        chain,
        receipts=[receipt(i) for i in (0, 3, 4, 5, 9, 12, size - 3, size - 1)],
        awkward=[receipt(first_awkward + i) for i in range(len(AWKWARD_PAYLOADS))],
    )
    chain.close()
    dep.close()


# ------------------------------------------------------------------------------- both sides
def python_side(
    text: str, *, key_source: KeySource | None = None, anchor_source: AnchorSource | None = None
) -> tuple[Statuses, str]:
    """Python's statuses for a receipt as text, and how it refused where it did not verify:
    "read" (loads_strict), "uncanonical" (a payload RFC 8785 cannot carry: an integer beyond
    2**53, a lone surrogate, NaN; a failed format check), or ""."""
    try:
        data = loads_strict(text)
    except InputError:
        return [("format", "failed")], "read"
    verdict = verify_receipt(data, key_source=key_source, anchor_source=anchor_source)
    statuses = [(c.name, c.status) for c in verdict.checks]
    if statuses == [("format", "failed")] and conforms(data):
        return statuses, "uncanonical"
    return statuses, ""


BROWSER_SIDE = """async ([texts, opts]) => {
  const out = [];
  for (const t of texts) {
    const v = await ForgeproofVerify.verifyReceipt(t, opts);
    out.push({ ok: v.ok, checks: v.checks.map((c) => [c.name, c.status, c.detail]) });
  }
  return out;
}"""


@dataclass(frozen=True)
class BrowserVerdict:
    ok: bool
    checks: list[tuple[str, str, str]]

    @property
    def statuses(self) -> Statuses:
        return [(name, status) for name, status, _ in self.checks]

    def detail(self, name: str) -> str:
        return next(d for n, _, d in self.checks if n == name)


def browser_side(page: Any, texts: list[str], rpc: str | None = None) -> list[BrowserVerdict]:
    opts = {"rpc": rpc} if rpc else {}
    raw = page.evaluate(BROWSER_SIDE, [texts, opts])
    return [BrowserVerdict(r["ok"], [tuple(c) for c in r["checks"]]) for r in raw]


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_standalone(tmp_path_factory.mktemp("page") / "verify.html")


@pytest.fixture
def verifier(page: Any, page_file: Path) -> Any:
    """The standalone page opened from disk: nothing served, nothing fetched."""
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_file.as_uri())
    yield page
    assert not errors, errors
    # The page itself from disk; only the chain tests talk to a node (anvil, on loopback).
    assert all(u.startswith(("file:", "http://127.0.0.1:")) for u in requests), requests


def wait_for_run(page: Any, run: int) -> Any:
    verdict = page.wait_for_selector(f'#verdict[data-run="{run}"][data-done="true"]')
    return verdict


def shown_checks(page: Any, receipt: int = 0) -> Statuses:
    rows = page.query_selector_all(f'section.receipt[data-receipt="{receipt}"] li.check')
    return [(r.get_attribute("data-check"), r.get_attribute("data-status")) for r in rows]


def bundle_checks(page: Any) -> dict[str, str]:
    rows = page.query_selector_all("#bundle-checks li.check")
    return {r.get_attribute("data-check"): r.get_attribute("data-status") for r in rows}


# ------------------------------------------------------------------------- (1) offline
def _flip_hex(s: str, at: int = -1) -> str:
    i = at % len(s)
    return s[:i] + ("0" if s[i] != "0" else "1") + s[i + 1 :]


def _edit(change: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], str]:
    def apply(receipt: dict[str, Any]) -> str:
        r = copy.deepcopy(receipt)
        change(r)
        return json.dumps(r)

    return apply


NAMED_TAMPERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "record payload edited": _edit(lambda r: r["record"]["payload"].update(lot="LOT-X")),
    "signature byte flipped": _edit(lambda r: r.update(signature=_flip_hex(r["signature"], 40))),
    "wrong producer address": _edit(
        lambda r: r["record"]["producer"].update(address="0x" + "12" * 20)
    ),
    "proof hash altered": _edit(
        lambda r: r["inclusion_proof"].__setitem__(0, _flip_hex(r["inclusion_proof"][0]))
    ),
    "leaf index changed": _edit(lambda r: r.update(leaf_index=r["leaf_index"] + 1)),
    "checkpoint root changed": _edit(
        lambda r: r["checkpoint"].update(root=_flip_hex(r["checkpoint"]["root"]))
    ),
    # Far larger: a size near the receipt's can fit the same proof (see the test after next).
    "checkpoint size changed": _edit(
        lambda r: r["checkpoint"].update(size=r["checkpoint"]["size"] + 2**20)
    ),
    "domain chainId changed": _edit(
        lambda r: r["domain"].update(chainId=r["domain"]["chainId"] + 1)
    ),
    "duplicate key": lambda r: with_duplicate_key(r, ("record", "producer")),
    "extra field": _edit(lambda r: r.update(note="trust me")),
    "truncated JSON": lambda r: json.dumps(r)[:-40],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(NAMED_TAMPERS))
def test_named_tamper_fails_as_in_python(verifier: Any, anchored: Anchored, name: str) -> None:
    for receipt in anchored.receipts[:3]:
        text = NAMED_TAMPERS[name](receipt)
        want, _ = python_side(text)
        [got] = browser_side(verifier, [text])
        assert got.statuses == want, (name, got.checks)
        assert not got.ok
        assert any(s == "failed" for _, s in want)


def test_offline_the_size_is_a_claim_in_both(verifier: Any, anchored: Anchored) -> None:
    """A leaf's audit path can be the same in a tree of another size: offline, both verifiers
    accept that size and say that only the anchor authenticates it (the chain test refuses
    it)."""
    receipt = anchored.receipts[0]
    size = receipt["checkpoint"]["size"]
    proof = [bytes.fromhex(h[2:]) for h in receipt["inclusion_proof"]]
    leaf = bytes.fromhex(receipt["leaf_hash"][2:])
    root = bytes.fromhex(receipt["checkpoint"]["root"][2:])

    def fits(n: int) -> bool:
        try:
            return root_from_inclusion_proof(leaf, receipt["leaf_index"], n, proof) == root
        except ProofError:
            return False

    other = next(n for n in range(size + 1, size + 64) if fits(n))
    text = _edit(lambda r: r["checkpoint"].update(size=other))(receipt)
    want, _ = python_side(text)
    [got] = browser_side(verifier, [text])
    assert got.statuses == want and got.ok
    assert "only the anchor check authenticates them" in got.detail("inclusion")


def _signature(receipt: dict[str, Any], r: int, s: int, v: int) -> str:
    forged = copy.deepcopy(receipt)
    forged["signature"] = f"0x{r:064x}{s:064x}{v:02x}"
    return json.dumps(forged)


def edge_cases(a: Anchored) -> list[str]:
    """Receipts at the edges: signatures a lax verifier accepts, payloads RFC 8785 or Python
    refuse, times that are not times, numbers beyond 2**53, text that is not a receipt."""
    base = a.awkward[0]
    sig = base["signature"]
    r, s, v = int(sig[2:66], 16), int(sig[66:130], 16), int(sig[130:], 16)
    out = [
        _signature(base, r, N - s, 55 - v),  # the malleable twin (high s)
        _signature(base, 0, s, v),
        _signature(base, N + 1, s, v),
        _signature(base, 2**256 - 1, s, v),
        _signature(base, r, 0, v),
        _signature(base, r, s, 55 - v),  # other v: another key recovers
    ]
    text = json.dumps(a.awkward[1])
    for value in ("12345678901234567890", "9007199254740992", "9007199254740991", '"\\ud800"',
                  '"\\udc00x"', "NaN", "Infinity", "1e400", "1e17", "2.0", '"\\u0065"',
                  '2, "\\u0065": 2', "[" * 40 + "]" * 40, "-0", "-0.0"):  # fmt: skip
        out.append(text.replace('"e": 2', f'"e": {value}', 1))
    for when in ("2026-02-30T00:00:00Z", "2024-02-29T23:59:59.5Z", "0000-01-01T00:00:00Z",
                 "2026-01-01T24:00:00Z", "2026-01-01T23:59:60Z",
                 "2025-02-29T00:00:00Z"):  # fmt: skip
        timed = copy.deepcopy(a.awkward[1])
        timed["record"]["created_at"] = when
        out.append(json.dumps(timed))
    size = a.awkward[1]["checkpoint"]["size"]
    for change in (
        lambda d: d.update(leaf_index=2**60),
        lambda d: d["checkpoint"].update(size=2**64 - 1),
        lambda d: d["checkpoint"].update(size=2**64),
        lambda d: d.update(leaf_index=size),
        lambda d: d.update(inclusion_proof=d["inclusion_proof"] * 30),
        lambda d: d.update(anchor=None),
    ):
        out.append(_edit(change)(a.awkward[1]))
    out += ["", "null", "[]", "{}", "1", '"x"', '{"format": "forgeproof-receipt/1"}', text + " ",
            text + "x", "\ufeff" + text, text.replace(": ", ":\u00a0", 1),
            text.replace('"kind"', "'kind'"), text.replace("{", "{,", 1), "[" * 2000]  # fmt: skip
    return out


def test_every_check_agrees_with_python_offline(verifier: Any, anchored: Anchored) -> None:
    texts: list[str] = []
    for receipt in anchored.receipts:
        texts.append(json.dumps(receipt))
        texts.append(json.dumps(receipt)[: len(json.dumps(receipt)) // 2])
        for what, path, mutated in mutations(receipt):
            if what == "duplicate key":
                texts.append(with_duplicate_key(receipt, path))
            elif json.dumps(mutated) != json.dumps(receipt):
                texts.append(json.dumps(mutated))
    texts += [json.dumps(r) for r in anchored.awkward]
    texts += edge_cases(anchored)

    got = browser_side(verifier, texts)
    classes: Counter[str] = Counter()
    disagree = []
    for text, verdict in zip(texts, got, strict=True):
        want, how = python_side(text)
        classes[how or ("ok" if verdict.ok else "refused")] += 1
        if how == "uncanonical":
            # Such a record was never in any log: both fail the format check. (NaN and
            # Infinity, which Python's json module reads, are not JSON to the browser.)
            assert verdict.statuses == [("format", "failed")], verdict.checks
            detail = verdict.detail("format")
            assert detail.startswith(("not JSON", "not a valid record")) or "canonical" in detail, (
                detail
            )
        elif verdict.statuses != want:
            disagree.append((text[:200], want, verdict.checks))
        else:
            assert verdict.ok == (not any(s == "failed" for _, s in want))
    assert not disagree, disagree[:5]
    assert len(texts) >= 1000
    # Each way of refusing happened, and the originals and awkward payloads verify.
    assert classes["ok"] >= len(anchored.receipts) + len(AWKWARD_PAYLOADS), classes
    assert classes["read"] >= 60 and classes["uncanonical"] >= 5 and classes["refused"] >= 800, (
        classes
    )


def test_duplicate_keys_and_floats_are_read_as_python_reads_them(verifier: Any) -> None:
    read = verifier.evaluate(
        """() => {
          const out = [];
          for (const t of ['{"a": 1, "b": {"c": 2, "c": 3}}', '{"a": 1, "\\\\u0061": 2}',
                           '{"a": 1,}', '{"a": 01}', '{"a": "\\t"}', '{"a": 1} {}']) {
            try { ForgeproofVerify.parseStrict(t); out.push("read"); }
            catch (e) { out.push(e.message); }
          }
          const v = ForgeproofVerify.parseStrict(
            '{"__proto__": {"x": 1}, "n": 1.0, "big": 12345678901234567890}');
          out.push(Object.keys(v).join(","), typeof v.big,
                   Object.getPrototypeOf(v) === Object.prototype);
          return out;
        }"""
    )
    assert read[0] == "duplicate key 'c' in a JSON object"
    assert read[1] == "duplicate key 'a' in a JSON object"
    assert all(m.startswith("not JSON (truncated?)") for m in read[2:6]), read
    assert read[6:] == ["__proto__,n,big", "bigint", True]


def test_canonical_json_matches_the_rfc_8785_vectors(verifier: Any, vectors_dir: Path) -> None:
    from tests.ledger.conftest import rfc8785_vectors

    vectors = rfc8785_vectors(vectors_dir)
    inputs = [
        (vectors_dir / "rfc8785" / "input" / f"{v.name}.json").read_text("utf-8") for v in vectors
    ]
    got = verifier.evaluate(
        "(ts) => ts.map((t) => ForgeproofVerify.canonicalJson(ForgeproofVerify.parseStrict(t)))",
        inputs,
    )
    assert [g.encode() for g in got] == [v.output for v in vectors]


# ---------------------------------------------------------------------- (2) file:// flow
def test_saved_page_verifies_an_uploaded_receipt(
    verifier: Any, anchored: Anchored, tmp_path: Path
) -> None:
    assert verifier.url.startswith("file://")
    fetched = "performance.getEntriesByType('resource').map((e) => e.name)"
    good = tmp_path / "receipt.json"
    good.write_text(anchored.text(1))
    verifier.set_input_files("#file", str(good))
    verdict = wait_for_run(verifier, 1)
    assert verdict.get_attribute("data-ok") == "true"
    assert "receipt verified" in verdict.inner_text()
    want, _ = python_side(anchored.text(1))
    assert shown_checks(verifier) == want
    row = verifier.query_selector('li[data-check="signature"]')
    assert row.get_attribute("data-status") == "ok" and "ok" in row.get_attribute("class")
    assert (
        verifier.query_selector('li[data-check="anchor"]').get_attribute("data-status") == "skipped"
    )

    bad = tmp_path / "tampered.json"
    bad.write_text(NAMED_TAMPERS["signature byte flipped"](anchored.receipts[1]))
    verifier.set_input_files("#file", str(bad))
    verdict = wait_for_run(verifier, 2)
    assert verdict.get_attribute("data-ok") == "false"
    assert "does NOT verify: signature" in verdict.inner_text()
    assert dict(shown_checks(verifier))["signature"] == "failed"
    assert verifier.query_selector('li[data-check="signature"].failed') is not None

    # Pasted text goes the same way; a list of receipts is verified receipt by receipt.
    listing = json.dumps([anchored.receipts[0], json.loads(bad.read_text()), anchored.receipts[2]])
    verifier.fill("#paste", listing)
    verifier.click("#verify-paste")
    verdict = wait_for_run(verifier, 3)
    assert verdict.get_attribute("data-ok") == "false"
    oks = [s.get_attribute("data-ok") for s in verifier.query_selector_all("section.receipt")]
    assert oks == ["true", "false", "true"]
    assert "1 of 3 receipts do NOT verify" in verdict.inner_text()
    assert verifier.evaluate(fetched) == []  # nothing fetched: all of it ran in the page


def test_not_utf8_and_not_json_are_refused(verifier: Any, tmp_path: Path) -> None:
    latin = tmp_path / "latin1.json"
    latin.write_bytes('{"a": "caf\xe9"}'.encode("latin-1"))
    verifier.set_input_files("#file", str(latin))
    assert wait_for_run(verifier, 1).get_attribute("data-ok") == "false"
    assert "not UTF-8" in verifier.inner_text("#bundle-checks")
    verifier.fill("#paste", '{"format": "forgeproof-receipt/1", ')
    verifier.click("#verify-paste")
    assert wait_for_run(verifier, 2).get_attribute("data-ok") == "false"
    assert shown_checks(verifier) == [("format", "failed")]


def test_the_page_is_self_contained() -> None:
    html = standalone_page(rpc_url="http://127.0.0.1:8545", back_link="/portal/audit")
    # Every script is inline; nothing is loaded from anywhere.
    assert "<script src" not in html and "<link" not in html
    assert html.lower().count("</script") == 3  # ethers, verify.js, the page
    assert 'value="http://127.0.0.1:8545"' in html and 'href="/portal/audit"' in html
    policy = content_security_policy(html)
    assert policy.count("'sha256-") == 4  # three scripts and the style
    for bad in ("javascript:alert(1)", "//evil.example/x"):
        with pytest.raises(ValueError):
            standalone_page(back_link=bad)
    with pytest.raises(ValueError):
        standalone_page(rpc_url="file:///etc/passwd")


# -------------------------------------------------------- (3) served: #src and the API wrapper
class _Portal(http.server.SimpleHTTPRequestHandler):
    """Files from a directory; the page with the Content-Security-Policy the helper writes."""

    policy = ""

    def end_headers(self) -> None:
        if self.path.split("#")[0].endswith("/verify.html"):
            self.send_header("Content-Security-Policy", self.policy)
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A directory served over HTTP on loopback, as the portal serves the page: under the
    policy `content_security_policy` gives, which must let the page run."""
    page = write_standalone(tmp_path / "verify.html", back_link="/portal")
    handler = type("Handler", (_Portal,), {"policy": content_security_policy(page.read_text())})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(handler, directory=str(tmp_path))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    server.shutdown()
    server.server_close()


def test_api_receipt_response_is_accepted(
    page: Any, served: tuple[str, Path], anchored: Anchored
) -> None:
    base, root = served
    violations: list[str] = []
    page.on(
        "console", lambda m: violations.append(m.text) if "Content Security" in m.text else None
    )
    (root / "receipt").write_text(
        json.dumps({"status": "anchored", "receipt": anchored.receipts[1]})
    )
    (root / "pending").write_text(json.dumps({"status": "pending", "receipt": None}))
    page.goto(f"{base}/verify.html#src=/receipt")
    assert wait_for_run(page, 1).get_attribute("data-ok") == "true"
    assert shown_checks(page) == python_side(anchored.text(1))[0]

    page.evaluate("location.hash = '#src=' + encodeURIComponent('/pending')")
    assert wait_for_run(page, 2).get_attribute("data-ok") == "false"
    assert "pending" in page.inner_text("#results")

    # Only the page's own site is fetched from a link.
    page.evaluate("location.hash = '#src=http://example.invalid/receipt.json'")
    assert wait_for_run(page, 3).get_attribute("data-ok") == "false"
    assert "only a URL of this page's own site" in page.inner_text("#bundle-checks")

    # The wrapper pasted works as well.
    page.fill("#paste", (root / "receipt").read_text())
    page.click("#verify-paste")
    assert wait_for_run(page, 4).get_attribute("data-ok") == "true"
    assert page.get_attribute("#back", "href") == "/portal"
    assert not violations, violations


# ----------------------------------------------------------------------- (4) the audit export
@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from api.demo.synthetic import PlantFacts, plant_document, plant_events

    store = Store.open(sqlite_url(tmp_path_factory.mktemp("epcis") / "ledger.db"))
    repo = make_repo(store)
    facts = PlantFacts()
    repo.capture(plant_document(list(plant_events(SMALL_PLANT, facts))))
    repo.log.checkpoint()
    genealogy = trace(store, facts.runs[4][1])
    yield json.loads(json.dumps(audit_bundle(repo.log, genealogy, DOMAIN)))
    store.close()


def _verify_export(page: Any, bundle: dict[str, Any], path: Path, run: int) -> Any:
    path.write_text(json.dumps(bundle))
    page.set_input_files("#file", str(path))
    return wait_for_run(page, run)


def test_audit_export_verifies_in_the_browser(
    verifier: Any, export: dict[str, Any], tmp_path: Path
) -> None:
    report = verify_audit(export)
    assert report.ok, report.problems
    verdict = _verify_export(verifier, export, tmp_path / "audit.json", 1)
    assert verdict.get_attribute("data-ok") == "true", verifier.inner_text("#bundle")
    assert "export verifies" in verdict.inner_text()
    checks = bundle_checks(verifier)
    assert checks["receipts"] == checks["checkpoints"] == checks["asserted by"] == "ok"
    assert checks["event IDs"] == checks["genealogy"] == "skipped"  # verify_audit's alone
    sections = verifier.query_selector_all("section.receipt")
    assert len(sections) == len(export["events"]) + sum(
        "error_declaration" in e for e in export["events"]
    )
    # Each event's receipt shows Python's statuses.
    for i, item in enumerate(export["events"][:5]):
        want = [(c.name, c.status) for c in report.events[item["leaf_index"]].checks]
        assert shown_checks(verifier, i) == want


@pytest.mark.parametrize(
    ("tamper", "failing"),
    [
        (lambda b: b["events"][0]["summary"].update(asserted_by="someone-else"), "asserted by"),
        (lambda b: b["events"][0]["receipt"]["record"]["payload"].update(bizStep="shipping"),
         "receipts"),
        (lambda b: b["checkpoints"][0].update(root="0x" + "00" * 32), "checkpoints"),
        (lambda b: b["events"][1]["receipt"]["domain"].update(chainId=1), "domain"),
        (lambda b: b.update(events=[]), "receipts"),
    ],
)  # fmt: skip
def test_tampered_export_fails(
    verifier: Any, export: dict[str, Any], tmp_path: Path, tamper: Any, failing: str
) -> None:
    forged = copy.deepcopy(export)
    tamper(forged)
    assert not verify_audit(forged).ok
    verdict = _verify_export(verifier, forged, tmp_path / "forged.json", 1)
    assert verdict.get_attribute("data-ok") == "false"
    assert bundle_checks(verifier)[failing] == "failed"
    assert failing in verdict.inner_text()


# -------------------------------------------------------------- (5) the chain checks, on anvil
@dataclass
class OnAnvil:
    url: str
    chain: ChainClient
    cases: dict[str, str]


@pytest.fixture(scope="module")
def on_anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnAnvil]:
    """A deployment on anvil, and receipts whose chain claims hold or do not, one way each."""
    from ledger.chain.devnode import AnvilNode, find_anvil

    if find_anvil() is None:
        pytest.fail("anvil is not installed (npm install, or set FORGEPROOF_ANVIL)")
    with AnvilNode.start() as node:
        dep = Deployment.init(tmp_path_factory.mktemp("anvil") / "home", chain_url=node.url)
        chain = dep.open_chain()
        try:
            yield OnAnvil(node.url, chain, _chain_cases(dep, chain))
        finally:
            chain.close()
            dep.close()


def _chain_cases(dep: Deployment, chain: ChainClient) -> dict[str, str]:
    writer = dep.writer(chain)
    acme = enrol(dep, "acme", ["supplier"], chain=chain)
    gone = enrol(dep, "gone", ["supplier"], chain=chain)
    late = Signer.generate()
    signers = {"acme": acme, "gone": gone, "late": late}
    # Ingest as the log saw it (a registry that let everything through), to put in the log what
    # only the chain refuses: a kind the role may not sign, a key revoked before the first
    # anchoring, a key registered only after it.
    lax = KeySnapshot.of(
        {
            acme.address: ("acme", ["operator"]),
            gone.address: ("gone", ["supplier"]),
            late.address: ("late", ["supplier"]),
        }
    )
    items = []
    plan = [("acme", "supplier_record"), ("acme", "prediction"), ("gone", "note"),
            ("late", "note")] + [("acme", "note")] * 3  # fmt: skip
    for who, kind in plan:
        rec = Record.new(kind, {"kind": kind}, participant=who, address=signers[who].address)
        items.append(check_record(rec, signers[who].sign(dep.domain, rec), dep.domain, lax))
    dep.log.append(items)
    writer.revoke_key(gone.address)
    Sequencer(dep.log, chain).step(force=True)  # checkpoint 7 covers all of them
    writer.enrol("late", "Late", ["supplier"], late)
    rec = Record.new("note", {"n": 8}, participant="acme", address=acme.address)
    dep.log.append([check_record(rec, acme.sign(dep.domain, rec), dep.domain, lax)])
    Sequencer(dep.log, chain).step(force=True)  # checkpoint 8
    rec = Record.new("note", {"n": 9}, participant="acme", address=acme.address)
    dep.log.append([check_record(rec, acme.sign(dep.domain, rec), dep.domain, lax)])
    dep.log.checkpoint()  # checkpoint 9, not on chain

    def receipt(i: int) -> dict[str, Any]:
        return dict(json.loads(json.dumps(build_receipt(dep.log, i, dep.domain))))

    # build_receipt's default is the latest anchored checkpoint (8): the first (7) by hand.
    good = json.loads(json.dumps(build_receipt(dep.log, 0, dep.domain, dep.log.checkpoint_at(7))))
    assert good["anchor"] is not None

    def edit(r: dict[str, Any], change: Callable[[dict[str, Any]], Any]) -> str:
        return _edit(change)(r)

    other_tx = receipt(7)["anchor"]["tx_hash"]  # checkpoint 8's
    assert other_tx != good["anchor"]["tx_hash"]
    at_seven = json.loads(
        json.dumps(build_receipt(dep.log, 4, dep.domain, dep.log.checkpoint_at(7)))
    )
    at_eight = build_receipt(dep.log, 4, dep.domain, dep.log.checkpoint_at(8))
    return {
        "anchored": json.dumps(good),
        "anchored, later checkpoint": json.dumps(json.loads(json.dumps(at_eight))),
        "anchor claim dropped": edit(good, lambda r: r.update(anchor=None)),
        "root differs from the chain's": edit(
            good, lambda r: r["checkpoint"].update(root=_flip_hex(r["checkpoint"]["root"]))
        ),
        "root and proof of another tree": edit(
            good, lambda r: r.update(checkpoint={"size": 7, "root": "0x" + "11" * 32})
        ),
        # Leaf 4 has the same audit path in trees of 7 and 8 leaves (docs/receipt.md).
        "size a proof also fits": edit(at_seven, lambda r: r["checkpoint"].update(size=8)),
        "tx hash of another checkpoint": edit(good, lambda r: r["anchor"].update(tx_hash=other_tx)),
        "block number off by one": edit(
            good, lambda r: r["anchor"].update(block_number=r["anchor"]["block_number"] + 1)
        ),
        "chain id of another chain": edit(good, lambda r: r["anchor"].update(chain_id=1)),
        "contract of another deployment": edit(
            good, lambda r: r["anchor"].update(contract="0x" + "ab" * 20)
        ),
        "kind the role may not sign": json.dumps(receipt(1)),
        "key revoked before anchoring": json.dumps(receipt(2)),
        "key registered after anchoring": json.dumps(receipt(3)),
        "wrong producer address": NAMED_TAMPERS["wrong producer address"](good),
        "unknown participant": edit(
            good, lambda r: r["record"]["producer"].update(participant="nobody")
        ),
        "not anchored yet": json.dumps(receipt(8)),
        "not anchored yet, claims an anchor": edit(
            receipt(8), lambda r: r.update(anchor=good["anchor"])
        ),
    }


@pytest.mark.node
def test_chain_checks_agree_with_python(verifier: Any, on_anvil: OnAnvil) -> None:
    names = list(on_anvil.cases)
    texts = [on_anvil.cases[n] for n in names]
    got = browser_side(verifier, texts, rpc=on_anvil.url)
    keys, anchors = chain_key_source(on_anvil.chain), chain_anchor_source(on_anvil.chain)
    chain_status: dict[str, tuple[str, str]] = {}
    for name, text, verdict in zip(names, texts, got, strict=True):
        want, how = python_side(text, key_source=keys, anchor_source=anchors)
        assert how == ""
        assert verdict.statuses == want, (name, verdict.checks)
        status = dict(verdict.statuses)
        chain_status[name] = (status.get("key (chain)", "-"), status.get("anchor", "-"))
    assert chain_status["anchored"] == ("ok", "ok"), chain_status
    assert chain_status["anchored, later checkpoint"] == ("ok", "ok")
    assert chain_status["anchor claim dropped"] == ("ok", "ok")
    assert chain_status["root differs from the chain's"][1] == "failed"
    assert chain_status["size a proof also fits"] == ("ok", "failed"), chain_status
    for claim in ("tx hash of another checkpoint", "block number off by one",
                  "chain id of another chain", "contract of another deployment"):  # fmt: skip
        assert chain_status[claim] == ("ok", "failed"), claim
    for key in ("kind the role may not sign", "key revoked before anchoring",
                "key registered after anchoring", "wrong producer address",
                "unknown participant"):  # fmt: skip
        assert chain_status[key] == ("failed", "ok"), key
    assert chain_status["not anchored yet"] == ("skipped", "skipped")
    assert chain_status["not anchored yet, claims an anchor"][1] == "failed"
    by_name = dict(zip(names, got, strict=True))
    assert "chain anchors root" in by_name["root differs from the chain's"].detail("anchor")
    assert "may not sign prediction records" in by_name["kind the role may not sign"].detail(
        "key (chain)"
    )
    assert "not at block" in by_name["key registered after anchoring"].detail("key (chain)")
    assert "(size and root as the receipt claims" not in by_name["anchored"].detail("inclusion")


@pytest.mark.node
def test_page_runs_the_chain_checks_with_a_node(
    verifier: Any, on_anvil: OnAnvil, tmp_path: Path
) -> None:
    verifier.fill("#rpc", on_anvil.url)
    path = tmp_path / "receipt.json"
    path.write_text(on_anvil.cases["anchored"])
    verifier.set_input_files("#file", str(path))
    verdict = wait_for_run(verifier, 1)
    assert verdict.get_attribute("data-ok") == "true"
    assert "not checked: checkpoint" in verdict.inner_text()
    status = dict(shown_checks(verifier))
    assert status["anchor"] == status["key (chain)"] == "ok"
    path.write_text(on_anvil.cases["root differs from the chain's"])
    verifier.set_input_files("#file", str(path))
    assert wait_for_run(verifier, 2).get_attribute("data-ok") == "false"
    assert dict(shown_checks(verifier))["anchor"] == "failed"
