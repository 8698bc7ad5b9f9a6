"""A participant's records: the list with each record's status, one record with its receipt,
and the upload of records signed offline with `forgeproof sign`.

Every page calls the records API's own handlers with the session's caller (`api.routes.records`),
so what a page lists, shows or accepts is what the API would for that caller: a supplier sees
its own records, and a record it may not see is answered as one that does not exist.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse

from api.deps import ServiceDep
from api.errors import ApiError
from api.portal import web
from api.routes import records as api_records
from api.schemas import RecordCreate
from api.service import Service
from ledger.errors import LedgerError
from ledger.ingest import parse_submission

router = APIRouter(prefix="/portal/records", include_in_schema=False)
# The roles the API lets submit records (api.deps.Writer): the upload form is theirs.
WRITERS = ("supplier", "manufacturer", "operator")
MAX_UPLOAD_LINES = 1000


def anchored_size(service: Service) -> tuple[int, int]:
    """(records covered by an anchored checkpoint, records covered by any checkpoint)."""
    checkpoints = service.dep.log.checkpoints(limit=64)
    anchored = next((cp.size for cp in checkpoints if cp.anchored), 0)
    return anchored, checkpoints[0].size if checkpoints else 0


def status_of(index: int, sizes: tuple[int, int]) -> str:
    anchored, checkpointed = sizes
    if index < anchored:
        return "anchored"
    return "checkpointed" if index < checkpointed else "pending"


@router.get("")
def list_page(
    request: Request,
    session: web.SessionDep,
    service: ServiceDep,
    kind: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    uploaded: str | None = None,
) -> Response:
    caller = session.caller
    # A supplier's list is its own; roles that read everything may filter by producer here too.
    page = api_records.list_records(
        caller, service, kind=kind or None, cursor=cursor, limit=limit, producer=None,
        model=None, asset=None, since=None, until=None,
    )  # fmt: skip
    sizes = anchored_size(service)
    rows = [{**r.model_dump(), "status": status_of(r.index, sizes)} for r in page.data]
    return web.render(
        request,
        "records.html",
        session,
        rows=rows,
        kind=kind or "",
        next_cursor=page.next_cursor,
        may_upload=caller.role in WRITERS,
        uploaded=json.loads(uploaded) if uploaded and uploaded.startswith("[") else None,
    )


@router.post("")
def upload(
    request: Request,
    session: web.CsrfDep,
    service: ServiceDep,
    file: Annotated[UploadFile, File(description="JSON lines written by `forgeproof sign`")],
) -> Response:
    """Submit each line of a `forgeproof sign` file as POST /v1/records would; one line's
    refusal changes nothing and does not stop the others (a line already in the log is
    answered `duplicate`, so uploading the same file again is harmless)."""
    caller = session.caller
    if caller.role not in WRITERS:
        raise ApiError(403, "forbidden", f"role {caller.role} may not submit records")
    text = file.file.read(service.settings.max_body_bytes + 1)
    if len(text) > service.settings.max_body_bytes:
        raise ApiError(413, "too_large", f"file over {service.settings.max_body_bytes} bytes")
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(422, "invalid_input", "not a text file of JSON lines") from None
    lines = [(n, line) for n, line in enumerate(decoded.splitlines(), start=1) if line.strip()]
    if not lines:
        raise ApiError(422, "invalid_input", "the file holds no records")
    if len(lines) > MAX_UPLOAD_LINES:
        raise ApiError(422, "invalid_input", f"at most {MAX_UPLOAD_LINES} records per file")
    results = [_submit_line(service, caller, n, line) for n, line in lines]
    return web.render(
        request, "records_uploaded.html", session, results=results, filename=file.filename
    )


def _submit_line(service: Service, caller: Any, n: int, line: str) -> dict[str, Any]:
    try:
        body = json.loads(line)
        parse_submission(body)  # names what is wrong before the API model does
        accepted = api_records.submit_record(
            RecordCreate.model_validate(body), caller, service, Response()
        )
    except json.JSONDecodeError as exc:
        return {"line": n, "ok": False, "detail": f"not JSON: {exc}"}
    except ApiError as exc:
        return {"line": n, "ok": False, "detail": exc.detail}
    except (LedgerError, ValueError) as exc:
        return {"line": n, "ok": False, "detail": str(exc)}
    return {"line": n, "ok": True, "status": accepted.status, "id": accepted.id,
            "index": accepted.index}  # fmt: skip


@router.get("/{id}")
def record_page(
    request: Request, id: str, session: web.SessionDep, service: ServiceDep
) -> Response:
    record = api_records.get_record(id, session.caller, service)
    record["status"] = status_of(record["index"], anchored_size(service))
    return web.render(
        request,
        "record.html",
        session,
        r=record,
        payload=json.dumps(record["record"], indent=2, sort_keys=True) if record["record"] else "",
    )


@router.get("/{id}/receipt.json")
def receipt_download(id: str, session: web.SessionDep, service: ServiceDep) -> Response:
    """The receipt as the API gives it, as a file to keep: 202 with status pending until the
    record is checkpointed."""
    answer = api_records.get_receipt(id, session.caller, service)
    if answer.status_code != 200:
        return answer
    receipt = json.loads(bytes(answer.body))["receipt"]
    return JSONResponse(
        receipt,
        headers={"Content-Disposition": f'attachment; filename="receipt-{_name(id)}.json"'},
    )


def _name(id: str) -> str:
    return "".join(c for c in id if c.isalnum())[:20] or "record"
