"""The maintenance partner's pages: its assets, each asset's signed predictions drawn over time
with their intervals, its inspections with the Grad-CAM overlay the model produced, and the
partner's webhooks with their delivery log.

Pages call the records and subscriptions API handlers with the session's caller
(`api.routes.records`, `api.routes.subscriptions`): a maintainer sees the predictions and
inspections of the assets assigned to it (`api.access`) and nothing about any other asset, whether
it exists or not. The roles are those of the API's webhook routes (`Subscriber`): maintenance
partners and the operator, who sees every asset.
"""

from __future__ import annotations

import hashlib
import html
import math
from dataclasses import dataclass
from typing import Annotated, Any, TypeGuard

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response
from markupsafe import Markup
from pydantic import ValidationError

from api.access import readable_assets
from api.deps import ServiceDep
from api.errors import ApiError
from api.portal import sessions, web
from api.predictions import load_explanation
from api.routes import records as api_records
from api.routes import subscriptions as api_subscriptions
from api.schemas import RecordPublic
from api.service import Service
from ledger.errors import NotFound

router = APIRouter(include_in_schema=False)
# The roles api.deps.Subscriber lets manage webhooks, but suppliers (who subscribe to their
# products' forecasts through the API): maintenance partners and the operator.
ASSET_ROLES = ("maintainer", "operator")
AssetSession = Annotated[sessions.Session, web.require_role(*ASSET_ROLES)]
MAX_RECORDS = 2000  # per asset and kind, on one page: a plot of more is unreadable anyway
LEVELS = ("90", "80")  # interval levels drawn, widest first (the narrower band on top)


def _records(
    session: sessions.Session, service: Service, *, kind: str, asset: str | None
) -> tuple[list[RecordPublic], bool]:
    """Records of `kind` about `asset` the caller may read (GET /v1/records, page by page),
    oldest first, at most MAX_RECORDS; and whether there were more."""
    out: list[RecordPublic] = []
    cursor = None
    while True:
        page = api_records.list_records(
            session.caller, service, kind=kind, producer=None, model=None, asset=asset,
            since=None, until=None, cursor=cursor, limit=500,
        )  # fmt: skip
        out.extend(page.data)
        if page.next_cursor is None:
            return out[:MAX_RECORDS], len(out) > MAX_RECORDS
        if len(out) >= MAX_RECORDS:
            return out[:MAX_RECORDS], True
        cursor = page.next_cursor


def _payload(r: RecordPublic) -> dict[str, Any]:
    payload = (r.record or {}).get("payload")
    return payload if isinstance(payload, dict) else {}


def _asset_of(payload: dict[str, Any]) -> str | None:
    value = payload.get("asset") or payload.get("asset_id")
    return str(value) if value is not None else None


def _promise_alarms(session: sessions.Session, service: Service) -> list[dict[str, Any]]:
    """The raised alarms on models' broken promises that the caller may read (for a
    maintainer: those naming its assets, `api.access`), the latest state of each."""
    alarms, _ = _records(session, service, kind="alarm", asset=None)
    latest: dict[str, dict[str, Any]] = {}
    for r in alarms:
        payload = _payload(r)
        name = str(payload.get("alarm", ""))
        if name.startswith("promise:"):
            latest[name] = {"index": r.index, "created_at": r.created_at, **payload}
    return [a for a in latest.values() if a.get("state") == "raised"]


# --- the asset list and webhooks ---------------------------------------------------------------


@router.get("/portal/assets")
def assets_page(
    request: Request, session: AssetSession, service: ServiceDep, unsubscribed: str | None = None
) -> Response:
    with service.dep.store.reading() as conn:
        assets = readable_assets(conn, session.caller)
    latest: dict[str, dict[str, Any]] = {}
    predictions, _ = _records(session, service, kind="prediction", asset=None)
    for r in predictions:
        asset = _asset_of(_payload(r))
        if asset is not None:
            latest[asset] = {"index": r.index, "created_at": r.created_at, **_payload(r)}
    return web.render(
        request,
        "assets.html",
        session,
        assets=assets,
        latest=latest,
        alarms=_promise_alarms(session, service),
        subscriptions=api_subscriptions.list_subscriptions(session.caller, service),
        unsubscribed=unsubscribed,
    )


@router.post("/portal/assets/webhooks")
def subscribe(
    request: Request,
    session: web.CsrfDep,
    allowed: AssetSession,
    service: ServiceDep,
    url: Annotated[str, Form(max_length=4096)] = "",
) -> Response:
    """POST /v1/subscriptions from a form: the secret is on this page once, never again."""
    try:
        body = api_subscriptions.SubscriptionCreate(url=url.strip())
    except ValidationError:
        raise ApiError(
            422,
            "invalid_request",
            "a webhook URL starts with http:// or https:// and has at most 2048 characters",
        ) from None
    created = api_subscriptions.subscribe(body, allowed.caller, service)
    response = web.render(request, "assets_subscribed.html", session, sub=created, status=201)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/portal/assets/webhooks/{id}/delete")
def unsubscribe(
    session: web.CsrfDep, allowed: AssetSession, service: ServiceDep, id: str
) -> Response:
    """DELETE /v1/subscriptions/{id} from a form: only the caller's own webhooks."""
    api_subscriptions.unsubscribe(id, allowed.caller, service)
    return web.redirect(f"/portal/assets?unsubscribed={id}")


@router.get("/portal/assets/webhooks/{id}")
def deliveries_page(
    request: Request, session: AssetSession, service: ServiceDep, id: str
) -> Response:
    log = api_subscriptions.deliveries(id, session.caller, service, limit=500)
    mine = api_subscriptions.list_subscriptions(session.caller, service)
    sub = next((s for s in mine if s["id"] == id), {"id": id, "url": "", "active": False})
    return web.render(request, "assets_webhook.html", session, sub=sub, deliveries=log)


# --- one asset ---------------------------------------------------------------------------------


@router.get("/portal/assets/{asset}")
def asset_page(
    request: Request, session: AssetSession, service: ServiceDep, asset: str
) -> Response:
    with service.dep.store.reading() as conn:
        assets = readable_assets(conn, session.caller)
    if asset not in assets and session.caller.role == "maintainer":
        # The same answer whether the asset exists or not: nothing about others' assets.
        raise ApiError(403, "forbidden", "no such asset assigned to this participant")
    predictions, more_predictions = _records(session, service, kind="prediction", asset=asset)
    inspections, more_inspections = _records(session, service, kind="inspection", asset=asset)
    if asset not in assets and not predictions and not inspections:
        raise NotFound(f"no asset {asset!r}: none assigned, no record about it")
    points = [p for p in map(RulPoint.of, predictions) if p is not None]
    indexes = {r.index for r in predictions} | {r.index for r in inspections}
    webhooks = []
    for sub in api_subscriptions.list_subscriptions(session.caller, service):
        log = api_subscriptions.deliveries(sub["id"], session.caller, service, limit=500)
        webhooks.append({**sub, "deliveries": [d for d in log if d["record_index"] in indexes]})
    return web.render(
        request,
        "assets_asset.html",
        session,
        asset=asset,
        maintainers=assets.get(asset, []),
        predictions=[{**r.model_dump(), "payload": _payload(r)} for r in reversed(predictions)],
        plotted={p.index for p in points},
        plot=rul_plot(points),
        inspections=[_inspection(service, r) for r in reversed(inspections)],
        truncated=more_predictions or more_inspections,
        webhooks=webhooks,
    )


def _inspection(service: Service, r: RecordPublic) -> dict[str, Any]:
    """An inspection with whether the overlay kept for it is the one its record signs."""
    payload = _payload(r)
    explanation = payload.get("explanation")
    signed = explanation.get("gradcam_sha256") if isinstance(explanation, dict) else None
    png = load_explanation(service, r.index)
    kept = "0x" + hashlib.sha256(png).hexdigest() if png is not None else None
    if png is None:
        overlay = "missing"
    else:
        overlay = "match" if isinstance(signed, str) and kept == signed.lower() else "mismatch"
    return {**r.model_dump(), "payload": payload, "signed": signed, "kept": kept,
            "overlay": overlay}  # fmt: skip


@router.get("/portal/records/{index}/gradcam.png")
def gradcam(
    index: Annotated[int, Path(ge=0)], session: web.SessionDep, service: ServiceDep
) -> Response:
    """An inspection's Grad-CAM overlay, to whoever may read its record (GET /v1/records/{id}),
    and only if it is the image whose SHA-256 the record signs."""
    record = api_records.get_record(str(index), session.caller, service)
    payload = (record["record"] or {}).get("payload") or {}
    explanation = payload.get("explanation") if isinstance(payload, dict) else None
    signed = explanation.get("gradcam_sha256") if isinstance(explanation, dict) else None
    if not isinstance(signed, str):
        raise NotFound(f"record {index} signs no Grad-CAM overlay")
    png = load_explanation(service, index)
    if png is None:
        raise NotFound(f"no Grad-CAM overlay is kept for record {index}")
    kept = "0x" + hashlib.sha256(png).hexdigest()
    if kept != signed.lower():
        raise ApiError(
            409,
            "overlay_mismatch",
            f"the overlay kept for record {index} has SHA-256 {kept}, but the signed record says "
            f"{signed}: it is not the image the model produced with the verdict, so it is not "
            "shown",
        )
    return Response(
        png,
        media_type="image/png",
        # Not kept by the browser: a revoked key or assignment ends access to it at once.
        headers={"Cache-Control": "no-store", "X-Gradcam-Sha256": kept},
    )


# --- the plot ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RulPoint:
    """One signed RUL prediction: at which cycle its window ends, what it said, its intervals."""

    index: int
    cycle: float
    rul: float
    intervals: dict[str, tuple[float, float]]
    created_at: str

    @classmethod
    def of(cls, r: RecordPublic) -> RulPoint | None:
        """The point of a prediction record (ml/predict.py's payload), or None when it lacks
        a finite cycle (`last_cycle`) or RUL."""
        p = _payload(r)
        cycle, rul = p.get("last_cycle"), p.get("rul")
        if not (_finite(cycle) and _finite(rul)):
            return None
        intervals: dict[str, tuple[float, float]] = {}
        raw = p.get("intervals")
        for level, bounds in raw.items() if isinstance(raw, dict) else []:
            if isinstance(bounds, list) and len(bounds) == 2 and all(map(_finite, bounds)):
                lo, hi = sorted(float(b) for b in bounds)
                intervals[str(level)] = (lo, hi)
        return cls(r.index, float(cycle), float(rul), intervals, r.created_at)


def _finite(x: Any) -> TypeGuard[int | float]:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values covering [lo, hi]: steps of 1, 2, 2.5 or 5 times a power of ten."""
    span = hi - lo if hi > lo else 1.0
    raw = span / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(lo / step + 1e-9) * step
    ticks = [round(first, 10)]
    while ticks[-1] < hi - step * 1e-9 or len(ticks) < 2:  # the last tick at or past `hi`
        ticks.append(round(first + len(ticks) * step, 10))
    return ticks


W, H = 860, 360
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 34, 52


def _fmt(v: float) -> str:
    return f"{v:g}"


def rul_plot(points: list[RulPoint]) -> Markup:
    """The predictions as inline SVG: RUL against the cycle each window ends at, the 90 % and
    80 % intervals as bands, each point a link to its row (receipt, record) below.

    Several predictions at one cycle (models re-run, or two models) are all drawn as points;
    the line and the bands follow the latest at each cycle.
    """
    if not points:
        return Markup("")
    latest: dict[float, RulPoint] = {}
    for p in sorted(points, key=lambda p: p.index):
        latest[p.cycle] = p
    series = [latest[c] for c in sorted(latest)]
    top = max([p.rul for p in points] + [hi for p in points for _, hi in p.intervals.values()])
    bottom = min([0.0] + [lo for p in points for lo, _ in p.intervals.values()])
    first, last = min(latest), max(latest)
    if first == last:  # one cycle: centre it rather than pin it to an axis
        first, last = max(0.0, first - 10), last + 10
    xticks = nice_ticks(first, last)
    yticks = nice_ticks(bottom, top if top > bottom else bottom + 1)
    x0, x1, y0, y1 = xticks[0], xticks[-1], yticks[0], yticks[-1]
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(v: float) -> float:
        return LEFT + (v - x0) / ((x1 - x0) or 1) * pw

    def y(v: float) -> float:
        return TOP + ph - (v - y0) / ((y1 - y0) or 1) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="rul-plot" class="plot" width="{W}" '
        f'height="{H}" viewBox="0 0 {W} {H}" role="img" aria-labelledby="rul-plot-title">',
        '<title id="rul-plot-title">Remaining useful life predicted at each cycle, with its '
        "80 % and 90 % intervals</title>",
    ]
    for t in yticks:
        out.append(
            f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
            f'stroke="#e3e7ec"/><text class="tick" x="{LEFT - 8}" y="{y(t) + 4:.1f}" '
            f'text-anchor="end">{_fmt(t)}</text>'
        )
    for t in xticks:
        out.append(
            f'<line class="tickmark" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{TOP + ph}" '
            f'y2="{TOP + ph + 5}" stroke="#5b6470"/><text class="tick" x="{x(t):.1f}" '
            f'y="{TOP + ph + 19}" text-anchor="middle">{_fmt(t)}</text>'
        )
    for level in LEVELS:
        out.append(_band(level, [p for p in series if level in p.intervals], x, y))
    if len(series) > 1:
        line = " ".join(f"{x(p.cycle):.1f},{y(p.rul):.1f}" for p in series)
        out.append(
            f'<polyline class="rul-line" points="{line}" fill="none" stroke="#1f4e79" '
            f'stroke-width="2"/>'
        )
    for p in sorted(points, key=lambda p: (p.cycle, p.index)):
        ivs = "; ".join(f"{lv} %: {lo:g}–{hi:g}" for lv, (lo, hi) in sorted(p.intervals.items()))
        title = f"cycle {p.cycle:g}: RUL {p.rul:g} ({ivs}) — record {p.index}, {p.created_at}"
        out.append(
            f'<a href="#rec-{p.index}" class="point-link" data-index="{p.index}">'
            f'<circle class="point" cx="{x(p.cycle):.1f}" cy="{y(p.rul):.1f}" r="4.5" '
            f'fill="#1f4e79" stroke="#fff" stroke-width="1.5"><title>{html.escape(title)}'
            "</title></circle></a>"
        )
    axis = 'stroke="#1b1f24" stroke-width="1"'
    out += [
        f'<line class="axis" x1="{LEFT}" x2="{W - RIGHT}" y1="{TOP + ph}" y2="{TOP + ph}" {axis}/>',
        f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + ph}" {axis}/>',
        f'<text class="axis-label" x="{LEFT + pw / 2:.0f}" y="{H - 10}" text-anchor="middle">'
        "cycle at the end of the window</text>",
        f'<text class="axis-label" x="16" y="{TOP + ph / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 16 {TOP + ph / 2:.0f})">remaining useful life (cycles)</text>',
        _legend(),
        "</svg>",
    ]
    return Markup("\n".join(out))


def _band(level: str, series: list[RulPoint], x: Any, y: Any) -> str:
    """The `level` % interval as a polygon: the upper bounds left to right, the lower back.
    A lone cycle gets a band a few pixels wide, so a single prediction still shows one."""
    if not series:
        return ""
    half = 5.0 if len(series) == 1 else 0.0
    upper = [(x(p.cycle) - half, y(p.intervals[level][1])) for p in series]
    lower = [(x(p.cycle) - half, y(p.intervals[level][0])) for p in series]
    if half:
        upper.append((upper[0][0] + 2 * half, upper[0][1]))
        lower.append((lower[0][0] + 2 * half, lower[0][1]))
    points = " ".join(f"{a:.1f},{b:.1f}" for a, b in upper + lower[::-1])
    opacity = "0.16" if level == "90" else "0.3"
    return (
        f'<polygon class="band band{level}" data-level="{level}" points="{points}" '
        f'fill="#1f4e79" fill-opacity="{opacity}" stroke="none">'
        f"<title>{level} % prediction interval</title></polygon>"
    )


def _legend() -> str:
    lx, ly = W - RIGHT - 360, 10
    return (
        f'<g class="legend" transform="translate({lx},{ly})">'
        '<line x1="0" x2="22" y1="7" y2="7" stroke="#1f4e79" stroke-width="2"/>'
        '<circle cx="11" cy="7" r="4" fill="#1f4e79"/>'
        '<text x="28" y="11">RUL predicted</text>'
        '<rect x="130" y="1" width="22" height="12" fill="#1f4e79" fill-opacity="0.41"/>'
        '<text x="158" y="11">80 % interval</text>'
        '<rect x="262" y="1" width="22" height="12" fill="#1f4e79" fill-opacity="0.16"/>'
        '<text x="290" y="11">90 % interval</text></g>'
    )
