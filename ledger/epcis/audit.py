"""The auditor's export: a genealogy with every event's receipt, checkable offline.

`audit_bundle` gathers, for one genealogy (`ledger.epcis.genealogy.trace`), with who asserted
each event (the participant whose key signed its record; `summary.asserted_by`):

    {
      "format": "forgeproof-epcis-audit/1",
      "subject": <the lot, item or container traced>,
      "generated_at": <RFC 3339>,
      "domain": <EIP-712 domain of the deployment>,
      "checkpoints": [{"size", "root", "anchor"}],     what every receipt's proof leads to
      "genealogy": {"nodes", "edges", "observations", "truncated"},
      "events": [{"eventID", "leaf_index", "summary", "receipt",
                  "error_declaration"?: <receipt of the record declaring it in error>}]
    }

Each event is inside its receipt (`receipt.record.payload`): there is no second copy that
could disagree. A receipt is the format of docs/receipt.md, so `ledger.receipts.verify_receipt`
and the standalone docs/examples/verify_receipt.py check it. `verify_audit` checks the bundle
as a whole: every receipt, that each payload hashes to its eventID (CBV 2.0), that proofs lead
to the listed checkpoints, and that every edge of the drawn graph follows from the events'
own content, and that whoever the bundle says asserted an event is who signed its record.
`read_export` reads the bundle out of either file of the export; `forgeproof verify-export`
runs `verify_audit` on it, with the chain's checks of every receipt given `--rpc`.

`audit_html` draws the genealogy as inline SVG in a self-contained page (nothing fetched, no
network; one line of script scrolls the subject into view), with the events in a table and the
whole bundle embedded as JSON.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from ledger.epcis._layout import EDGE_COLOURS, NODE_H, NODE_W, Placed, edges_svg, layout
from ledger.epcis.errors import NotCheckpointed
from ledger.epcis.genealogy import Genealogy
from ledger.epcis.hashid import ORDER_SENSITIVE, event_hash_id
from ledger.epcis.index import IN_ROLES, OUT_ROLES, index_entry
from ledger.epcis.vocab import NEEDS_REVIEW
from ledger.errors import InputError, LedgerError, VerificationError
from ledger.log import Checkpoint, Log
from ledger.receipts import (
    Verdict,
    build_receipt,
    loads_strict,
    verify_receipt,
    write_json_atomic,
)
from ledger.records import hex0x, utc_now
from ledger.signing import Domain

FORMAT = "forgeproof-epcis-audit/1"


def audit_bundle(
    log: Log, genealogy: Genealogy, domain: Domain, *, checkpoint: Checkpoint | None = None
) -> dict[str, Any]:
    """Receipts of every event of `genealogy`, against one checkpoint.

    Args:
        checkpoint: what the proofs lead to (default: the log's latest checkpoint). It must
            cover every event; anchored checkpoints carry their chain coordinates.

    Raises:
        NotCheckpointed: no checkpoint yet, or it does not cover every event.
        NotFound: a record was erased.
    """
    cp = checkpoint or log.latest_checkpoint()
    leaves = set(genealogy.events)
    declared = {
        r.error_declared_by for r in genealogy.events.values() if r.error_declared_by is not None
    }
    needed = max(leaves | declared, default=-1)
    if cp is None or needed >= cp.size:
        covered = (
            "the log has no checkpoint yet"
            if cp is None
            else (f"the latest checkpoint (size {cp.size}) does not cover leaf {needed} yet")
        )
        raise NotCheckpointed(f"{covered}: the export is ready once the next one does")
    events = []
    for leaf in sorted(leaves):
        ref = genealogy.events[leaf]
        entry: dict[str, Any] = {
            "eventID": ref.event_id,
            "leaf_index": leaf,
            "summary": ref.to_json(),
            "receipt": build_receipt(log, leaf, domain, cp),
        }
        if ref.error_declared_by is not None and ref.error_declared_by != leaf:
            entry["error_declaration"] = build_receipt(log, ref.error_declared_by, domain, cp)
        events.append(entry)
    anchor = cp.anchor_json()
    g = genealogy.to_json()
    return {
        "format": FORMAT,
        "subject": genealogy.root,
        "generated_at": utc_now(),
        "domain": domain.to_json(),
        "checkpoints": [{"size": cp.size, "root": hex0x(cp.root), "anchor": anchor}],
        "genealogy": {k: g[k] for k in ("nodes", "edges", "observations", "truncated")},
        "events": events,
    }


@dataclass
class AuditReport:
    """What `verify_audit` found; `ok` only if every check ran and held."""

    events: dict[int, Verdict] = field(default_factory=dict)  # leaf index -> receipt checks
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.events) and not self.problems and all(v.ok for v in self.events.values())

    def raise_for_problems(self) -> None:
        """Raises:
        VerificationError: the first problem found (receipt checks included)."""
        failed = [
            f"event at leaf {leaf}: {c.name}: {c.detail}"
            for leaf, v in self.events.items()
            for c in v.failed
        ]
        problems = self.problems + failed
        if problems or not self.events:
            raise VerificationError(problems[0] if problems else "the bundle holds no events")


def verify_audit(
    bundle: Any,
    *,
    receipt_checks: Callable[[dict[str, Any]], Verdict] | None = None,
) -> AuditReport:
    """Check an auditor's bundle offline.

    Args:
        receipt_checks: how to check one receipt (default: `verify_receipt` with what is
            offline: canonical form, signature, inclusion). Pass one with a key registry,
            the log or the chain at hand for the checks that need them.
    """
    report = AuditReport()
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        report.problems.append(f"not a {FORMAT} bundle")
        return report
    check = receipt_checks or verify_receipt
    checkpoints = {(c["size"], c["root"]) for c in bundle.get("checkpoints", [])}
    domain = bundle.get("domain")
    links: dict[int, set[tuple[str, str]]] = {}
    for item in bundle.get("events", []):
        leaf = item.get("leaf_index")
        receipts = [("receipt", item.get("receipt"))]
        if "error_declaration" in item:
            receipts.append(("error_declaration", item["error_declaration"]))
        for name, receipt in receipts:
            verdict = check(receipt)
            if name == "receipt":
                report.events[leaf] = verdict
            elif not verdict.ok:
                report.problems.append(
                    f"event at leaf {leaf}: its error declaration's receipt fails"
                )
            if not isinstance(receipt, dict):
                continue
            cp = receipt.get("checkpoint", {})
            if (cp.get("size"), cp.get("root")) not in checkpoints:
                report.problems.append(
                    f"event at leaf {leaf}: {name} rests on an unlisted checkpoint"
                )
            if receipt.get("domain") != domain:
                report.problems.append(f"event at leaf {leaf}: {name} is from another deployment")
        try:
            record = item["receipt"]["record"]
            if record["kind"] != "epcis_event":
                raise InputError(f"record kind is {record['kind']!r}, expected 'epcis_event'")
            if item["receipt"]["leaf_index"] != leaf:
                raise InputError("the receipt is for another leaf")
            payload = record["payload"]
            # The stored form's ID is recomputed from the payload as exported (keys sorted);
            # the reference ID of the event as captured may differ (ledger.epcis.hashid).
            computed = event_hash_id(payload)
            stored = item.get("summary", {}).get("storedEventID") or item["eventID"]
            if computed != stored:
                raise InputError(f"the event hashes to {computed}, bundle says {stored}")
            if not _explains(item["eventID"], computed, payload):
                raise InputError(
                    f"the bundle says the event's ID is {item['eventID']}: neither its stored "
                    f"form's ({computed}), nor the eventID its record carries, nor the ID of "
                    "its lists' entries written type first"
                )
            signer = record["producer"]["participant"]
            said = item.get("summary", {}).get("asserted_by")
            if said is not None and said != signer:
                raise InputError(f"the bundle says {said} asserted it, its record is {signer}'s")
            links[leaf] = set(index_entry(payload).links)
        except (LedgerError, KeyError, TypeError, ValueError) as exc:
            report.problems.append(f"event at leaf {leaf}: {exc}")
    for edge in bundle.get("genealogy", {}).get("edges", []):
        src, dst = edge["source"], edge["target"]
        events = [links.get(leaf) for leaf in edge["events"]]
        if any(e is None for e in events):
            report.problems.append(f"edge {src} -> {dst} cites an event not in the bundle")
            continue
        mentioned = set().union(*events)  # type: ignore[arg-type]
        if not any((r, src) in mentioned for r in IN_ROLES) or not any(
            (r, dst) in mentioned for r in OUT_ROLES
        ):
            report.problems.append(f"edge {src} -> {dst} does not follow from its events")
    return report


def _explains(claimed: str, stored: str, payload: dict[str, Any]) -> bool:
    """Whether `claimed` can be the captured event's reference hash ID.

    The reference ID depends on the key order of entries in bizTransactionList, sourceList and
    destinationList, which the log's canonical form does not keep. It is `stored` (the order
    the log keeps: value first), the eventID the repository wrote into the signed payload at
    capture, or the ID with every such entry written type first, as GS1's examples write them.
    """
    if claimed in (stored, payload.get("eventID")):
        return True
    if not any(payload.get(k) for k in ORDER_SENSITIVE):
        return False
    type_first = {
        k: (
            [{"type": e["type"], **{x: e[x] for x in sorted(e) if x != "type"}}
             if isinstance(e, dict) and "type" in e else e for e in v]
            if k in ORDER_SENSITIVE and isinstance(v, list) else v
        )
        for k, v in payload.items()
    }  # fmt: skip
    return claimed == event_hash_id(type_first)


# The bundle as `audit_html` embeds it: "</" written "<\/" inside, so this end tag is its end.
_EMBEDDED = re.compile(rb'<script type="application/json" id="bundle">(.*?)</script>', re.S)


def read_export(data: bytes) -> Any:
    """The bundle in either file of an auditor's export (`write_audit`): the JSON itself, or
    the page with the bundle embedded; read strictly, as receipts are (duplicate keys refused).

    Raises:
        InputError: neither JSON nor a page with an embedded bundle, or malformed JSON.
    """
    if data.lstrip()[:1] != b"<":
        return loads_strict(data)
    found = _EMBEDDED.search(data)
    if found is None:
        raise InputError(
            'an HTML page without the bundle (<script type="application/json" id="bundle">) '
            "that an auditor's export page carries"
        )
    return loads_strict(found.group(1))


# --- the page ----------------------------------------------------------------------------------


def _short(identifier: str) -> str:
    for prefix in ("urn:epc:class:", "urn:epc:id:", "urn:epc:idpat:"):
        if identifier.startswith(prefix):
            return identifier[len(prefix) :].replace(":", " ", 1)
    return identifier if len(identifier) <= 34 else "…" + identifier[-33:]


def _status(bundle: dict[str, Any]) -> dict[str, str]:
    """Worst inspection outcome per node: non_conformant > needs_review > conformant."""
    summary = {e["leaf_index"]: e["summary"] for e in bundle["events"]}
    rank = {"non_conformant": 3, NEEDS_REVIEW: 2, "conformant": 1}
    out: dict[str, str] = {}
    for node, leaves in bundle["genealogy"]["observations"].items():
        for leaf in leaves:
            s = summary.get(leaf)
            if not s or s["bizStep"] != "inspecting" or s["disposition"] not in rank:
                continue
            if rank[s["disposition"]] > rank.get(out.get(node, ""), 0):
                out[node] = s["disposition"]
    return out


def _svg(bundle: dict[str, Any]) -> str:
    g = bundle["genealogy"]
    hops = {n["id"]: n["hops"] for n in g["nodes"]}
    root = bundle["subject"]
    pairs = [(e["source"], e["target"]) for e in g["edges"]]
    placed, width, height = layout(root, hops, pairs)
    status = _status(bundle)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="genealogy of {html.escape(root)}">',
    ]
    parts += edges_svg(g["edges"], placed)
    for node, p in placed.items():
        parts.append(_node_svg(node, p, root, hops.get(node, 0), status.get(node)))
    parts.append("</svg>")
    return "\n".join(parts)


_BADGES = {
    "non_conformant": "✗ non-conformant",
    NEEDS_REVIEW: "? needs review",
    "conformant": "✓ conformant",
}


def _node_svg(node: str, p: Placed, root: str, hop: int, status: str | None) -> str:
    if ":sscc:" in node:
        kind = "container"
    else:
        kind = "lot" if node.startswith("urn:epc:class:") else "item"
    cls = f"node {kind}" + (" root" if node == root else "")
    cls += {"non_conformant": " bad", NEEDS_REVIEW: " review"}.get(status or "", "")
    badge = _BADGES.get(status or "", "")
    n = abs(hop)
    where = "root" if hop == 0 else f"{n} hop{'s' * (n > 1)} {'up' if hop < 0 else 'down'}stream"
    title = f"{node} ({where})" + (f" — {badge}" if badge else "")
    sub = where + (f"  {badge}" if badge else "")
    return (
        f'<g class="{cls}"><title>{html.escape(title)}</title>'
        f'<rect x="{p.x:.1f}" y="{p.y:.1f}" width="{NODE_W}" height="{NODE_H}" rx="7"/>'
        f'<text x="{p.x + 10:.1f}" y="{p.y + 16:.1f}" class="label">'
        f"{html.escape(_short(node))}</text>"
        f'<text x="{p.x + 10:.1f}" y="{p.y + 30:.1f}" class="sub">{html.escape(sub)}</text></g>'
    )


def _row(item: dict[str, Any], about: list[str]) -> str:
    s = item["summary"]
    declared = s["error_declared_by"] is not None
    bad = s["disposition"] == "non_conformant" or declared
    disposition = (s["disposition"] or "").replace(NEEDS_REVIEW, "needs_review (fp)")
    cells = [
        str(item["leaf_index"]),
        html.escape(s["eventTime"]),
        html.escape(s["type"]),
        html.escape(s["bizStep"] or ""),
        html.escape(disposition),
        html.escape(s.get("asserted_by") or ""),
        f"<code>{html.escape(s['eventID'][14:30])}…</code>",
        f"<code>{html.escape(s['leaf_hash'][:18])}…</code>",
        "<br>".join(html.escape(a) for a in about)
        + ("<br><b>declared in error</b>" if declared else ""),
    ]
    return (
        f'<tr class="{"bad" if bad else ""}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
    )


def audit_html(bundle: dict[str, Any]) -> str:
    """A self-contained HTML page: header, the genealogy drawn as SVG, the events, the data."""
    g = bundle["genealogy"]
    cp = bundle["checkpoints"][0]
    anchor = cp.get("anchor")
    anchored = "not anchored on chain yet"
    if anchor:
        anchored = (
            f"anchored on chain {anchor['chain_id']} in block {anchor['block_number']}, "
            f"tx <code>{html.escape(anchor['tx_hash'])}</code>"
        )
    about: dict[int, list[str]] = {}
    for node, leaves in g["observations"].items():
        for leaf in leaves:
            about.setdefault(leaf, []).append(_short(node))
    for e in g["edges"]:
        for leaf in e["events"]:
            about.setdefault(leaf, []).append(f"{_short(e['source'])} → {_short(e['target'])}")
    # Classes, not style attributes: the page's Content-Security-Policy names its one
    # stylesheet by hash and allows no inline styles beside it.
    legend = "".join(f'<span><i class="sw sw-{r}"></i>{r}</span>' for r in EDGE_COLOURS)
    template = Template(
        resources.files("ledger.epcis").joinpath("templates", "audit.html").read_text("utf-8")
    )
    return template.substitute(
        subject=html.escape(bundle["subject"]),
        nodes=len(g["nodes"]),
        edges=len(g["edges"]),
        events=len(bundle["events"]),
        truncated="(cut short by a limit)" if g["truncated"] else "",
        generated=html.escape(bundle["generated_at"]),
        size=cp["size"],
        root=html.escape(cp["root"]),
        chain=int(bundle["domain"]["chainId"]),
        anchored=anchored,
        legend=legend,
        svg=_svg(bundle),
        rows="\n".join(_row(i, about.get(i["leaf_index"], [])) for i in bundle["events"]),
        # Inside <script>, "</" would end the element early.
        data=json.dumps(bundle, sort_keys=True).replace("</", "<\\/"),
        half=NODE_W // 2,
    )


def write_audit(
    bundle: dict[str, Any], directory: Path, *, name: str = "audit"
) -> tuple[Path, Path]:
    """Write `<name>.json` (the bundle) and `<name>.html` (the page) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path, html_path = directory / f"{name}.json", directory / f"{name}.html"
    write_json_atomic(json_path, bundle)
    html_path.write_text(audit_html(bundle), encoding="utf-8")
    return json_path, html_path
