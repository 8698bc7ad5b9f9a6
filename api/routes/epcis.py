"""EPCIS 2.0: capture, the standard query, genealogy, recall and the auditor's export."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse

from api.auth import Caller
from api.deps import Operator, ServiceDep, require
from api.errors import ApiError, forbidden
from api.schemas import RecordCreate
from ledger.epcis import audit
from ledger.epcis.errors import NotCheckpointed, SchemaViolation
from ledger.epcis.genealogy import recall_by_model, recall_from_lot, recall_nonconformant, trace
from ledger.epcis.query import get_event, query_events
from ledger.ingest import parse_submission
from ledger.registry import MODEL_ROLES

router = APIRouter(tags=["epcis"])

Capturer = Annotated[Caller, Depends(require("supplier", "manufacturer", "operator"))]
Reader = Annotated[Caller, Depends(require("operator", "manufacturer", "auditor"))]


def _schema_problem(exc: SchemaViolation) -> ApiError:
    return ApiError(
        400,
        "epcis_schema_violation",
        str(exc),
        complaints=[{"path": c.path, "message": c.message, "rule": c.rule} for c in exc.complaints],
    )


@router.post("/v1/epcis/capture", status_code=201)
def capture_document(
    caller: Operator,
    service: ServiceDep,
    document: Annotated[dict[str, Any], Body(description="an EPCISDocument or a single event")],
) -> dict[str, Any]:
    """Capture the operator's own EPCIS 2.0 events: schema-checked, hash-identified, signed with
    the operator's key and logged, all or none. Other participants sign their events
    themselves (`POST /v1/epcis/capture/signed`): the log names who asserted each event."""
    try:
        result = service.capture_epcis(document)
    except SchemaViolation as exc:
        raise _schema_problem(exc) from None
    return result.to_json()


@router.post("/v1/epcis/capture/signed", status_code=201)
def capture_signed_events(
    caller: Capturer,
    service: ServiceDep,
    submissions: Annotated[
        list[RecordCreate],
        Body(
            description="records of kind epcis_event, each one event with its @context, signed "
            "by the caller (`forgeproof epcis sign`)",
            min_length=1,
            max_length=10_000,
        ),
    ],
) -> dict[str, Any]:
    """Capture EPCIS 2.0 events signed by the caller: one record each, all or none."""
    parsed = [parse_submission(s.model_dump()) for s in submissions]
    for n, (record, _) in enumerate(parsed):
        if record.producer.participant != caller.participant:
            raise forbidden(
                f"submission {n}: {caller.participant} may only capture its own events, "
                f"not {record.producer.participant}'s"
            )
    try:
        result = service.capture_signed(parsed)
    except SchemaViolation as exc:
        raise _schema_problem(exc) from None
    return result.to_json()


@router.get("/v1/epcis/events")
def epcis_query(
    request: Request, response: Response, caller: Reader, service: ServiceDep
) -> dict[str, Any]:
    """The EPCIS 2.0 SimpleEventQuery: eventType, GE_/LT_eventTime, EQ_bizStep,
    EQ_disposition, MATCH_epc / anyEPC / parentID / inputEPC / outputEPC, perPage,
    nextPageToken. Returns an EPCISQueryDocument; the next page is in the Link header."""
    page = query_events(service.dep.store, dict(request.query_params.multi_items()))
    if page.next_page_token:
        # The whole query with the new token, as a path-absolute URL: a client follows it as
        # given (RFC 8288, RFC 3986 reference resolution) and gets the next page of the same query.
        kept = [(k, v) for k, v in request.query_params.multi_items() if k != "nextPageToken"]
        query = urlencode([*kept, ("nextPageToken", page.next_page_token)])
        response.headers["Link"] = f'<{request.url.path}?{query}>; rel="next"'
    return page.document


@router.get("/v1/epcis/events/{event_id:path}")
def epcis_event(event_id: str, caller: Reader, service: ServiceDep) -> dict[str, Any]:
    """One event by its CBV 2.0 hash ID, with where it is in the log."""
    event, ref = get_event(service.dep.store, event_id)
    return {"event": event, "record": ref.to_json()}


@router.get("/v1/genealogy")
def genealogy(
    caller: Reader,
    service: ServiceDep,
    id: Annotated[str, Query(description="EPC, lot (EPC class) or container ID")],
    direction: Literal["upstream", "downstream", "both"] = "both",
    max_depth: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> dict[str, Any]:
    """Upstream (what went into it) and downstream (where it went), every event with its
    place in the log; fetch each receipt from /v1/records/{index}/receipt."""
    return trace(service.dep.store, id, direction=direction, max_depth=max_depth).to_json()


@router.get("/v1/recall")
def recall(
    caller: Reader,
    service: ServiceDep,
    supplier_lot: Annotated[
        str | None, Query(description="finished lots containing this lot")
    ] = None,
    model: Annotated[
        str | None, Query(description="... judged by this model manifest digest")
    ] = None,
    nonconformant: Annotated[
        bool, Query(description="... with a non-conformant inspection upstream")
    ] = False,
) -> dict[str, Any]:
    """Finished lots to recall, for exactly one of the three criteria. Verdicts (by model, or
    non-conformant inspections) count only when asserted by a participant that runs models
    (operator, manufacturer); every seed event names who asserted it."""
    chosen = [x for x in (supplier_lot, model, nonconformant or None) if x]
    if len(chosen) != 1:
        raise ApiError(
            422, "invalid_request", "give exactly one of supplier_lot, model, nonconformant"
        )
    store = service.dep.store
    if supplier_lot:
        return recall_from_lot(store, supplier_lot).to_json()
    judges = {p.id for p in service.dep.registry.participants() if p.roles & MODEL_ROLES}
    if model:
        return recall_by_model(store, model, asserted_by=judges).to_json()
    return recall_nonconformant(store, asserted_by=judges).to_json()


@router.get("/v1/genealogy/audit")
def audit_export(
    caller: Reader,
    service: ServiceDep,
    id: str,
    format: Literal["json", "html"] = "json",
) -> Any:
    """The auditor's export: events of the genealogy with receipts and checkpoints, verifiable
    offline (`json`), or the same as a page with the genealogy drawn as a graph (`html`)."""
    g = trace(service.dep.store, id)
    try:
        bundle = audit.audit_bundle(service.dep.log, g, service.dep.domain)
    except NotCheckpointed as exc:
        # Events captured a moment ago: the sequencer checkpoints within its interval.
        wait = max(1, math.ceil(service.settings.checkpoint_interval_s))
        raise ApiError(
            409, "not_checkpointed", str(exc), headers={"Retry-After": str(wait)}
        ) from None
    if format == "html":
        return HTMLResponse(audit.audit_html(bundle))
    return bundle
