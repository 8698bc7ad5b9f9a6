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


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return problem(exc.status, exc.code, exc.detail, headers=exc.headers, **exc.extra)

    @app.exception_handler(LedgerError)
    async def _ledger(_: Request, exc: LedgerError) -> JSONResponse:
        for kind, status, code in _MAPPING:
            if isinstance(exc, kind):
                return problem(status, code, str(exc))
        return problem(500, "ledger_error", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()
        ]
        detail = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors[:5])
        return problem(422, "invalid_request", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status_code, "http_error"
        )
        return problem(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        return problem(500, "internal_error", "an internal error occurred; it has been logged")
