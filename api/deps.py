"""Annotated dependencies, defined once: the service, the caller, role checks."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import Caller
from api.errors import ApiError, forbidden, unauthorized
from api.service import Service

# Dependencies are async: they do not block (a key lookup hits the database only on a cache
# miss), and each sync dependency would cost a hop through the thread pool per request.
_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer fp_...`")


async def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


async def authenticate(
    request: Request,
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    caller = service.api_keys.lookup(credentials.credentials) if credentials else None
    if caller is None:
        wait = service.auth_failures.failed(request.client.host if request.client else "")
        if wait is not None:
            raise ApiError(
                429,
                "too_many_failures",
                "too many failed authentications from this address; retry later",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        raise unauthorized()
    return caller


CallerDep = Annotated[Caller, Depends(authenticate)]


def require(*roles: str) -> Callable[[Caller], Awaitable[Caller]]:
    """A dependency that lets only callers acting in one of `roles` through."""

    async def check(caller: CallerDep) -> Caller:
        if caller.role not in roles:
            raise forbidden(f"role {caller.role} may not do this (needs {' or '.join(roles)})")
        return caller

    return check


Operator = Annotated[Caller, Depends(require("operator"))]
WRITER_ROLES = ("supplier", "manufacturer", "operator")  # who may submit records
Writer = Annotated[Caller, Depends(require(*WRITER_ROLES))]
RunsModels = Annotated[Caller, Depends(require("manufacturer", "operator"))]
Publisher = Annotated[Caller, Depends(require("model_publisher", "operator"))]
# Scorecards: who audits models (auditors, the operator) and who answers for them (publishers).
ScorecardReader = Annotated[Caller, Depends(require("auditor", "operator", "model_publisher"))]
Maintainer = Annotated[Caller, Depends(require("maintainer"))]
# The feed: maintenance partners (their assets' predictions and alarms), suppliers (their
# products' demand forecasts).
FeedReader = Annotated[Caller, Depends(require("maintainer", "supplier"))]
# Webhooks: maintenance partners (their assets' predictions), suppliers (their products'
# forecasts), the operator (alarms).
Subscriber = Annotated[Caller, Depends(require("maintainer", "supplier", "operator"))]
