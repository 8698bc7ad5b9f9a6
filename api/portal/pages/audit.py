"""The auditor's pages: search, a genealogy drawn as a graph with every event's receipt, one
event, what a model judged, recalls, and the export to check offline.

Each page calls the EPCIS, records and models API handlers with the session's caller
(`api.routes.epcis`, `api.routes.records`, `api.routes.models`). Called directly, a handler's
own dependencies do not run, so every page here first checks the roles the EPCIS routes let
read (`READERS`, the API's `Reader`); tests compare the two role by role.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from markupsafe import Markup

from api.deps import ServiceDep
from api.errors import ApiError
from api.portal import sessions, web
from api.portal.figures import coverage_svg, reliability_svg
from api.routes import epcis as api_epcis
from api.routes import models as api_models
from api.routes import participants as api_participants
from api.routes import records as api_records
from api.scorecards import bundle, scorecard
from api.service import Service
from ledger.epcis._layout import NODE_H, NODE_W, edges_svg, layout
from ledger.epcis.vocab import NEEDS_REVIEW
from ledger.registry import MODEL_ROLES

router = APIRouter(prefix="/portal/audit", include_in_schema=False)
# The roles api.routes.epcis.Reader lets read events, genealogies, recalls and exports.
READERS = ("operator", "manufacturer", "auditor")
ReaderSession = Annotated[sessions.Session, web.require_role(*READERS)]
Identifier = Annotated[str, Query(min_length=1, max_length=512)]
# Of the readers, those the API's GET /v1/models/{digest}/scorecard lets read scorecards.
SCORECARD_READERS = ("operator", "auditor")

DIGEST = re.compile(r"0x[0-9a-fA-F]{64}")
BAD, REVIEW, GOOD = "non_conformant", NEEDS_REVIEW, "conformant"
RANK = {BAD: 3, REVIEW: 2, GOOD: 1}
# Identifiers an event names, by the EPCIS 2.0 field that holds them.
EPC_FIELDS = ("epcList", "childEPCs", "inputEPCList", "outputEPCList")
QUANTITY_FIELDS = ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList")


def receipt_url(index: int) -> str:
    return f"/portal/records/{index}/receipt.json"


def verify_url(src: str) -> str:
    """The in-browser verifier, told to fetch `src` (a path on this site) and check it.

    `src` travels in the fragment, URL-encoded whole, so a query of its own (an export's
    `?id=urn:...`) stays part of it and never reaches a server."""
    return "/verify#src=" + quote(src, safe="")


def export_url(identifier: str, fmt: str) -> str:
    return f"/portal/audit/export.{fmt}?id={quote(identifier, safe='')}"


def trace_url(identifier: str, node: str | None = None) -> str:
    url = f"/portal/audit/trace?id={quote(identifier, safe='')}"
    return url + (f"&node={quote(node, safe='')}#events" if node is not None else "")


def event_url(event_id: str) -> str:
    return f"/portal/audit/event?id={quote(event_id, safe='')}"


def short_id(identifier: str) -> str:
    """An identifier without its URN prefix, for labels (the title keeps it whole)."""
    for prefix in ("urn:epc:class:", "urn:epc:id:", "urn:epc:idpat:"):
        if identifier.startswith(prefix):
            return identifier[len(prefix) :].replace(":", " ", 1)
    return identifier if len(identifier) <= 34 else "…" + identifier[-33:]


def event_short(event_id: str) -> str:
    """The distinctive part of a hash event ID (`ni:///sha-256;<hex>?ver=CBV2.0`)."""
    m = re.search(r";([0-9a-fA-F]{12})", event_id)
    return m.group(1) + "…" if m else short_id(event_id)


LINKS: dict[str, Callable[..., str]] = {
    "event_short": event_short,
    "receipt_url": receipt_url,
    "verify_url": verify_url,
    "export_url": export_url,
    "trace_url": trace_url,
    "event_url": event_url,
    "short_id": short_id,
}


def _render(request: Request, name: str, session: sessions.Session, **context: Any) -> Response:
    helpers: dict[str, Any] = {**LINKS, **context}
    return web.render(request, name, session, **helpers)


def _judges(session: sessions.Session, service: Service) -> set[str]:
    """Participants whose verdicts count for recalls: those that run models (the recall route
    counts only theirs, so a supplier cannot condemn the plant's lots by inspecting them)."""
    everyone = api_participants.list_participants(session.caller, service)
    return {p.id for p in everyone if set(p.roles) & MODEL_ROLES}


def _models(session: sessions.Session, service: Service) -> list[dict[str, Any]]:
    return api_models.list_models(session.caller, service, task=None)


def _resolve_model(query: str, models: list[dict[str, Any]]) -> tuple[str | None, list[Any]]:
    """(digest, registered versions) for a manifest digest or a model name.

    A digest stands even unregistered (EPCIS events may cite one); a name must name a
    registered model, and names the digest only when it has one version.

    Raises:
        ApiError: 404, no registered model has this name.
    """
    if DIGEST.fullmatch(query):
        digest = query.lower()
        return digest, [m for m in models if m["digest"].lower() == digest]
    versions = [m for m in models if m["name"] == query] or [
        m for m in models if m["name"].casefold() == query.casefold()
    ]
    if not versions:
        raise ApiError(
            404,
            "not_found",
            f"no registered model is named {query!r}; give its name as listed under Models, "
            "or its manifest digest (0x and 64 hex digits)",
        )
    return (versions[0]["digest"] if len(versions) == 1 else None), versions


# --- pages -------------------------------------------------------------------------------------


@router.get("")
def home(request: Request, session: ReaderSession, service: ServiceDep) -> Response:
    return _render(request, "audit.html", session, models=_models(session, service))


@router.get("/search")
def search(session: ReaderSession, service: ServiceDep, q: str = "") -> Response:
    """One box for everything: an event ID, a model (digest or name), or else an identifier."""
    q = q.strip()
    if not q:
        return web.redirect("/portal/audit")
    if q.startswith("ni:"):
        return web.redirect(event_url(q))
    names = {m["name"].casefold() for m in _models(session, service)}
    if DIGEST.fullmatch(q) or q.casefold() in names:
        return web.redirect(f"/portal/audit/model?model={quote(q, safe='')}")
    return web.redirect(trace_url(q))


@router.get("/trace")
def trace_page(
    request: Request,
    session: ReaderSession,
    service: ServiceDep,
    id: Identifier,
    node: str | None = None,
) -> Response:
    g = api_epcis.genealogy(session.caller, service, id=id, direction="both", max_depth=None)
    view = GenealogyView(g, _judges(session, service))
    selected = node if node in view.hops else None
    leaves = view.node_events.get(selected, []) if selected else sorted(view.events)
    return _render(
        request,
        "audit_trace.html",
        session,
        g=g,
        view=view,
        selected=selected,
        rows=[view.row(leaf) for leaf in leaves],
        svg=view.svg(lambda n: trace_url(id, n), selected),
    )


def _attachment(identifier: str, ext: str) -> dict[str, str]:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", identifier).strip("_")[-80:] or "genealogy"
    return {
        "Content-Disposition": f'attachment; filename="audit-{name}.{ext}"',
        "Cache-Control": "no-store",
    }


@router.get("/export.json")
def export_json(session: ReaderSession, service: ServiceDep, id: Identifier) -> Response:
    """The auditor's export as GET /v1/genealogy/audit gives it, as a file to keep."""
    bundle = api_epcis.audit_export(session.caller, service, id=id, format="json")
    return JSONResponse(bundle, headers=_attachment(id, "json"))


@router.get("/export.html")
def export_html(session: ReaderSession, service: ServiceDep, id: Identifier) -> Response:
    """The export's self-contained page, as a file: it opens from disk, with no server."""
    page = api_epcis.audit_export(session.caller, service, id=id, format="html")
    return Response(bytes(page.body), media_type="text/html", headers=_attachment(id, "html"))


@router.get("/event")
def event_page(
    request: Request, session: ReaderSession, service: ServiceDep, id: Identifier
) -> Response:
    answer = api_epcis.epcis_event(id, session.caller, service)
    ref, event = answer["record"], answer["event"]
    record = api_records.get_record(str(ref["leaf_index"]), session.caller, service)
    return _render(
        request,
        "audit_event.html",
        session,
        ref=ref,
        record=record,
        mentioned=mentioned(event),
        counted=ref["asserted_by"] in _judges(session, service),
        event_json=json.dumps(event, indent=2, sort_keys=True),
    )


def mentioned(event: dict[str, Any]) -> list[str]:
    """Every object an event names (EPCs, classes, parents), once each, in order."""
    out: list[str] = []
    for name in ("parentID", *EPC_FIELDS):
        value = event.get(name)
        out.extend([value] if isinstance(value, str) else value or [])
    for name in QUANTITY_FIELDS:
        out.extend(q["epcClass"] for q in event.get(name) or [] if isinstance(q, dict))
    return [x for i, x in enumerate(out) if isinstance(x, str) and x not in out[:i]]


@router.get("/model")
def model_page(
    request: Request,
    session: ReaderSession,
    service: ServiceDep,
    model: Identifier,
    cursor: str | None = None,
) -> Response:
    """Which records cite a model: what that model (version) judged, newest last."""
    digest, versions = _resolve_model(model.strip(), _models(session, service))
    page = None
    if digest is not None:
        page = api_records.list_records(
            session.caller, service, kind=None, producer=None, model=digest, asset=None,
            since=None, until=None, cursor=cursor, limit=100,
        )  # fmt: skip
    card = figure = None
    if digest is not None and versions and session.caller.role in SCORECARD_READERS:
        card = scorecard(service, digest)
        overall = card["overall"]
        if overall.get("coverage"):
            figure = coverage_svg(overall["coverage"])
        elif overall.get("reliability"):
            figure = reliability_svg(overall["reliability"])
    return _render(
        request,
        "audit_model.html",
        session,
        query=model,
        digest=digest,
        versions=versions,
        rows=[_cited(r.model_dump()) for r in page.data] if page else [],
        next_cursor=page.next_cursor if page else None,
        card=card,
        figure=figure,
    )


@router.get("/model/scorecard")
def scorecard_bundle(session: ReaderSession, service: ServiceDep, model: Identifier) -> Response:
    """The model's `forgeproof-scorecard/1` bundle, to recompute offline
    (docs/examples/recompute_scorecard.py)."""
    web.check_role(session, *SCORECARD_READERS)
    digest, versions = _resolve_model(model.strip(), _models(session, service))
    if digest is None or not versions:
        raise ApiError(404, "not_found", f"no registered model {model!r}")
    return JSONResponse(
        bundle(service, digest), headers=_attachment(f"scorecard-{digest[:12]}", "json")
    )


def _cited(r: dict[str, Any]) -> dict[str, Any]:
    """A record citing a model, with what it said in a few words."""
    payload = (r.get("record") or {}).get("payload") or {}
    if "verdict" in payload:
        said = f"{payload['verdict']} ({payload.get('confidence', '?')})"
        if payload.get("needs_review"):
            said += ", needs review"
    elif "rul" in payload:
        said = f"RUL {payload['rul']}"
        if payload.get("last_cycle") is not None:
            said += f" at cycle {payload['last_cycle']}"
    else:
        said = payload.get("error") or ""
    subject = payload.get("asset") or payload.get("asset_id") or payload.get("item") or ""
    return {**r, "said": said, "subject": subject}


@router.get("/recall")
def recall_page(
    request: Request,
    session: ReaderSession,
    service: ServiceDep,
    supplier_lot: str | None = None,
    model: str | None = None,
    nonconformant: bool = False,
) -> Response:
    """GET /v1/recall's answer, with every lot a link to its genealogy."""
    digest = None
    if model and model.strip():
        digest, versions = _resolve_model(model.strip(), _models(session, service))
        if digest is None:
            raise ApiError(
                422,
                "invalid_request",
                f"{len(versions)} registered models are named {model!r}: recall by one "
                "manifest digest (" + ", ".join(v["digest"] for v in versions) + ")",
            )
    result = api_epcis.recall(
        session.caller,
        service,
        supplier_lot=(supplier_lot or "").strip() or None,
        model=digest,
        nonconformant=nonconformant,
    )
    return _render(request, "audit_recall.html", session, result=result)


# --- the genealogy, as the page shows it -------------------------------------------------------


class GenealogyView:
    """What the trace page shows of GET /v1/genealogy's answer: each object's events, the
    worst inspection on it, the non-conformant material upstream of the subject, the graph."""

    def __init__(self, g: dict[str, Any], judges: set[str]) -> None:
        self.root: str = g["root"]
        self.hops: dict[str, int] = {n["id"]: n["hops"] for n in g["nodes"]}
        self.edges: list[dict[str, Any]] = g["edges"]
        self.events: dict[int, dict[str, Any]] = {e["leaf_index"]: e for e in g["events"]}
        self.judges = judges
        self.about: dict[int, list[str]] = {}
        self.node_events: dict[str, list[int]] = {}
        for node, leaves in g["observations"].items():
            for leaf in leaves:
                self.about.setdefault(leaf, []).append(short_id(node))
                self.node_events.setdefault(node, []).append(leaf)
        for e in self.edges:
            for leaf in e["events"]:
                self.about.setdefault(leaf, []).append(
                    f"{short_id(e['source'])} → {short_id(e['target'])}"
                )
                for end in (e["source"], e["target"]):
                    self.node_events.setdefault(end, []).append(leaf)
        self.node_events = {n: sorted(set(ls)) for n, ls in self.node_events.items()}
        self.status: dict[str, str] = {}
        self.findings: list[dict[str, Any]] = []  # inspections at or upstream of the subject
        for node, leaves in sorted(g["observations"].items(), key=lambda x: self.hops[x[0]]):
            for leaf in leaves:
                s = self.events[leaf]
                if s["bizStep"] != "inspecting" or s["error_declared_by"] is not None:
                    continue
                disposition = s["disposition"]
                if disposition not in RANK:
                    continue
                if RANK[disposition] > RANK.get(self.status.get(node, ""), 0):
                    self.status[node] = disposition
                if disposition != GOOD and self.hops[node] <= 0:
                    counted = s["asserted_by"] in judges
                    self.findings.append({**s, "node": node, "hops": self.hops[node],
                                          "counted": counted})  # fmt: skip

    @property
    def nonconformant(self) -> list[dict[str, Any]]:
        return [f for f in self.findings if f["disposition"] == BAD]

    @property
    def review(self) -> list[dict[str, Any]]:
        return [f for f in self.findings if f["disposition"] == REVIEW]

    def row(self, leaf: int) -> dict[str, Any]:
        s = self.events[leaf]
        disposition = s["disposition"] or ""
        return {
            **s,
            "about": self.about.get(leaf, []),
            "bad": disposition == BAD or s["error_declared_by"] is not None,
            "disposition_label": "needs review" if disposition == REVIEW else disposition,
        }

    def svg(self, link: Callable[[str], str], selected: str | None) -> Markup:
        """The genealogy as inline SVG: upstream left, downstream right, each object a link
        to its events. Drawn on the server; colours come from the portal's stylesheet."""
        pairs = [(e["source"], e["target"]) for e in self.edges]
        placed, width, height = layout(self.root, self.hops, pairs)
        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" id="genealogy" width="{width:.0f}" '
            f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
            f'aria-label="genealogy of {html.escape(self.root)}">',
            *edges_svg(self.edges, placed),
        ]
        for node, p in placed.items():
            parts.append(self._node(node, p.x, p.y, link(node), node == selected))
        parts.append("</svg>")
        return Markup("\n".join(parts))

    def _node(self, node: str, x: float, y: float, href: str, selected: bool) -> str:
        kind = "container" if ":sscc:" in node else "lot" if ":class:" in node else "item"
        status = self.status.get(node)
        cls = f"node {kind}" + (" root" if node == self.root else "")
        cls += {BAD: " bad", REVIEW: " review"}.get(status or "", "")
        cls += " selected" if selected else ""
        hop = self.hops.get(node, 0)
        n = abs(hop)
        where = (
            "the subject" if hop == 0 else f"{n} hop{'s' * (n > 1)} {'up' if hop < 0 else 'down'}"
        )
        badge = {BAD: "✗ non-conformant", REVIEW: "? needs review"}.get(status or "", "")
        count = len(self.node_events.get(node, []))
        title = f"{node} ({where}; {count} events)" + (f" — {badge}" if badge else "")
        return (
            f'<a href="{html.escape(href)}" class="node-link" data-node="{html.escape(node)}">'
            f'<g class="{cls}"><title>{html.escape(title)}</title>'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{NODE_W}" height="{NODE_H}" rx="7"/>'
            f'<text x="{x + 10:.1f}" y="{y + 16:.1f}" class="label">'
            f"{html.escape(short_id(node))}</text>"
            f'<text x="{x + 10:.1f}" y="{y + 30:.1f}" class="sub">'
            f"{html.escape(where)}  {html.escape(badge)}</text></g></a>"
        )
