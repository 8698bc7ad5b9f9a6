"""Records: submit, read, list, and their receipts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select

from api.access import may_see, visible
from api.deps import CallerDep, ServiceDep, Writer
from api.errors import ApiError, forbidden
from api.routes._common import cursor_int, encode_cursor, lookup, time_to_us
from api.schemas import (
    ErrorPublic,
    ReceiptPublic,
    RecordAccepted,
    RecordCreate,
    RecordPublic,
    RecordsPublic,
)
from api.tables import RecordTag
from api.views import record_public
from ledger.errors import NotFound
from ledger.ingest import parse_submission
from ledger.log import StoredRecord, stored_from_row
from ledger.records import hex0x
from ledger.store.models import RecordRow

router = APIRouter(prefix="/v1/records", tags=["records"])
# Kinds that other routes index as they log them: submitted here they would be logged unindexed.
ROUTED_KINDS = {
    "epcis_event": "POST /v1/epcis/capture/signed",
    "model_manifest": "POST /v1/models",
    "product_assignment": "POST /v1/participants/product-assignments",
}
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorPublic} for code in (401, 403, 422)}


@router.post("", status_code=201, response_model=RecordAccepted, responses=ERRORS)
def submit_record(
    body: RecordCreate, caller: Writer, service: ServiceDep, response: Response
) -> RecordAccepted:
    """Submit a record signed by its producer; the caller must be that producer."""
    record, signature = parse_submission(body.model_dump())
    if record.producer.participant != caller.participant:
        raise forbidden(
            f"{caller.participant} may only submit its own records,"
            f" not {record.producer.participant}'s"
        )
    if record.kind in ROUTED_KINDS:
        raise ApiError(
            422, "invalid_input", f"{record.kind} records go to {ROUTED_KINDS[record.kind]}"
        )
    result = service.submit(record, signature)
    if result.duplicate:
        response.status_code = 200
    return RecordAccepted(
        status="duplicate" if result.duplicate else "accepted",
        id=hex0x(result.leaf_hash),
        index=result.index,
    )


def _readable(service: ServiceDep, caller: CallerDep, id: str) -> StoredRecord:
    """The record, if the caller may see it; otherwise 403 whether or not it exists."""
    try:
        stored = lookup(service.dep.log, id)
    except NotFound:
        if caller.reads_everything:
            raise
        raise forbidden("no such record visible to this participant") from None
    with service.dep.store.reading() as conn:
        if not may_see(conn, caller, stored):
            raise forbidden("no such record visible to this participant")
    return stored


@router.get("/{id}", response_model=RecordPublic, responses=ERRORS | {404: {"model": ErrorPublic}})
def get_record(id: str, caller: CallerDep, service: ServiceDep) -> dict:
    """A record by leaf hash or index."""
    return record_public(_readable(service, caller, id))


RECEIPT_RESPONSES: dict[int | str, dict[str, Any]] = ERRORS | {
    202: {"model": ReceiptPublic, "description": "not checkpointed yet"},
    304: {"description": "the receipt named in If-None-Match is still current"},
    404: {"model": ErrorPublic},
}


@router.get("/{id}/receipt", response_model=ReceiptPublic, responses=RECEIPT_RESPONSES)
def get_receipt(
    id: str,
    caller: CallerDep,
    service: ServiceDep,
    if_none_match: Annotated[str | None, Header(description="an ETag from an earlier 200")] = None,
) -> Response:
    """The record's receipt: pending (202) until checkpointed, then with proof and anchor."""
    stored = _readable(service, caller, id)
    # Checkpointed receipts come from memory (api/receipts.py), which also answers repeats of
    # this request before they reach the router; the response is the same either way.
    encoded = service.receipts.receipt(service.dep.log, service.dep.domain, stored)
    if encoded is None:
        return JSONResponse({"status": "pending", "receipt": None}, status_code=202)
    return encoded.response(if_none_match)


@router.get("", response_model=RecordsPublic, responses=ERRORS)
def list_records(
    caller: CallerDep,
    service: ServiceDep,
    kind: str | None = None,
    producer: Annotated[str | None, Query(description="participant id")] = None,
    model: Annotated[
        str | None, Query(description="model manifest digest the record cites")
    ] = None,
    asset: str | None = None,
    product: Annotated[
        str | None, Query(description="product a forecast (or its outcome) is about")
    ] = None,
    since: Annotated[str | None, Query(description="created at or after (RFC 3339)")] = None,
    until: Annotated[str | None, Query(description="created before (RFC 3339)")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> RecordsPublic:
    """Records the caller may see, oldest first, filtered; cursor pagination."""
    return select_records(
        caller, service, kinds=(kind,) if kind else None, producer=producer, model=model,
        asset=asset, product=product, since=since, until=until, cursor=cursor, limit=limit,
    )  # fmt: skip


def select_records(
    caller: CallerDep,
    service: ServiceDep,
    *,
    kinds: tuple[str, ...] | None = None,
    producer: str | None = None,
    model: str | None = None,
    asset: str | None = None,
    product: str | None = None,
    since: str | None = None,
    until: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> RecordsPublic:
    """`list_records` for routes that list records of several kinds (the feed)."""
    after = cursor_int(cursor, "after")
    q = visible(select(RecordRow), caller).where(
        RecordRow.leaf_index > (-1 if after is None else after)
    )
    if kinds:
        q = q.where(RecordRow.kind.in_(kinds))
    if producer:
        q = q.where(RecordRow.participant == producer)
    if since:
        q = q.where(RecordRow.created_us >= time_to_us(since, "since"))
    if until:
        q = q.where(RecordRow.created_us < time_to_us(until, "until"))
    if model or asset or product:
        tags = select(RecordTag.leaf_index)
        if model:
            tags = tags.where(RecordTag.model == model)
        if asset:
            tags = tags.where(RecordTag.asset == asset)
        if product:
            tags = tags.where(RecordTag.product == product)
        q = q.where(RecordRow.leaf_index.in_(tags))
    q = q.order_by(RecordRow.leaf_index).limit(limit + 1)
    with service.dep.store.reading() as conn:
        rows = [stored_from_row(r) for r in conn.execute(q).all()]
    more = len(rows) > limit
    rows = rows[:limit]
    return RecordsPublic(
        data=[RecordPublic(**record_public(r)) for r in rows],
        next_cursor=encode_cursor({"after": rows[-1].index}) if more else None,
    )
