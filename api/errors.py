"""Every error leaves the service as RFC 9457 problem+json with a stable `code`.

Domain errors are mapped to HTTP here and nowhere else.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.epcis.errors import QueryParameterError, SchemaViolation, UnsupportedEpcis
from ledger.errors import (
    ChainError,
    Conflict,
    InputError,
    KeyNotAuthorized,
    LedgerError,
    NotFound,
    NotPermitted,
    ProofError,
    RegistryMismatch,
    SignatureError,
    StorageError,
    VerificationError,
)

PROBLEM = "application/problem+json"

# (exception type, HTTP status, code): first match wins, so subclasses come first.
_MAPPING: list[tuple[type[LedgerError], int, str]] = [
    (SchemaViolation, 400, "epcis_schema_violation"),
    (UnsupportedEpcis, 400, "epcis_unsupported"),
    (QueryParameterError, 400, "epcis_query_parameter"),
    (RegistryMismatch, 503, "registry_mismatch"),
    (NotPermitted, 403, "not_permitted"),
    (SignatureError, 422, "bad_signature"),
    (KeyNotAuthorized, 422, "key_not_authorized"),
    (ProofError, 422, "bad_proof"),
    (VerificationError, 422, "verification_failed"),
    (InputError, 422, "invalid_input"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (StorageError, 503, "storage_unavailable"),
    (ChainError, 503, "chain_unavailable"),
]


class ApiError(Exception):
    """An error raised by the HTTP layer itself (authentication, authorisation, limits)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers
        self.extra = extra


def problem(
    status: int, code: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {
        "type": f"https://forgeproof.dev/problems/{code}",
        "title": code.replace("_", " "),
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }
    headers = {**(headers or {}), **({"WWW-Authenticate": "Bearer"} if status == 401 else {})}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers or None)


def unauthorized(detail: str = "missing or invalid API key") -> ApiError:
    return ApiError(401, "unauthorized", detail)


def forbidden(detail: str = "not allowed for this participant") -> ApiError:
    return ApiError(403, "forbidden", detail)


def status_of(exc: LedgerError) -> tuple[int, str]:
    """The HTTP status and problem code of a domain error."""
    for kind, status, code in _MAPPING:
        if isinstance(exc, kind):
            return status, code
    return 500, "ledger_error"


# Where a person, not a program, is the reader (the portal's pages): errors there are pages.
# `api.portal.install` sets the renderer, (request, status, code, detail) -> Response.
HTML_PREFIXES = ("/portal", "/signin", "/verify")


def _answer(
    request: Request, status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> Any:
    render = getattr(request.app.state, "html_error", None)
    if render is not None and request.url.path.startswith(HTML_PREFIXES):
        return render(request, status, code, detail)
    # A person who opened an API link in a browser (an export's page, a receipt) has no Bearer
    # header to send: they are shown the way in through the portal, not a 401 document.
    to_portal = getattr(request.app.state, "browser_sign_in", None)
    if status == 401 and to_portal is not None and _navigating(request):
        return to_portal(request)
    return problem(status, code, detail, headers=headers)


def _navigating(request: Request) -> bool:
    """A browser loading a page (its Accept names HTML first), not a program calling the API."""
    accept = request.headers.get("accept", "")
    return request.method == "GET" and accept.startswith("text/html")


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> Any:
        if exc.extra:
            return problem(exc.status, exc.code, exc.detail, headers=exc.headers, **exc.extra)
        return _answer(request, exc.status, exc.code, exc.detail, exc.headers)

    @app.exception_handler(LedgerError)
    async def _ledger(request: Request, exc: LedgerError) -> Any:
        status, code = status_of(exc)
        return _answer(request, status, code, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()
        ]
        detail = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors[:5])
        return problem(422, "invalid_request", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Any:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status_code, "http_error"
        )
        return _answer(request, exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        return problem(500, "internal_error", "an internal error occurred; it has been logged")
