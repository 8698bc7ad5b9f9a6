"""Sign-in (an API key for a session cookie), sign-out, and `/`, which sends each caller home."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from api.deps import ServiceDep
from api.errors import ApiError
from api.portal import sessions, web

router = APIRouter(include_in_schema=False)


@router.get("/")
def root(request: Request, service: ServiceDep) -> Response:
    session = sessions.resolve(
        service.dep.store, service.api_keys, request.cookies.get(sessions.COOKIE)
    )
    if session is None:
        return web.redirect("/signin")
    return web.redirect(web.HOMES.get(session.caller.role, "/verify"))


# Sign-in's own CSRF guard (no session yet): a random value in a SameSite=Strict cookie and in
# the form; another site's page can post the form but cannot send the cookie. (Origin does not
# help: under `Referrer-Policy: no-referrer` browsers send `Origin: null` on form posts.)
SIGNIN_COOKIE = "fp_signin"


def _signin_form(request: Request, next: str, error: str | None, status: int = 200) -> Response:
    nonce = secrets.token_urlsafe(24)
    response = web.render(
        request, "signin.html", None, next=web.safe_next(next), error=error, nonce=nonce,
        status=status,
    )  # fmt: skip
    response.set_cookie(
        SIGNIN_COOKIE, nonce, max_age=3600, httponly=True, samesite="strict", path="/signin",
        secure=request.url.scheme == "https",
    )  # fmt: skip
    return response


@router.get("/signin")
def signin_page(request: Request, next: str = "/") -> Response:
    return _signin_form(request, next, None)


@router.post("/signin")
def signin(
    request: Request,
    service: ServiceDep,
    api_key: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
    nonce: Annotated[str, Form()] = "",
) -> Response:
    """Exchange an API key for a session. Failures count against the address as the API's do."""
    cookie = request.cookies.get(SIGNIN_COOKIE, "")
    if not (cookie and nonce and hmac.compare_digest(cookie.encode(), nonce.encode())):
        raise ApiError(
            403, "cross_site", "sign-in must come from this portal's own page; reload it"
        )
    caller = service.api_keys.lookup(api_key.strip()) if api_key.strip() else None
    if caller is None:
        client = request.client.host if request.client else ""
        wait = service.auth_failures.failed(client)
        error = "that API key is not valid (unknown, revoked or expired)"
        if wait is not None:
            error = f"too many failed sign-ins from this address; wait {max(1, round(wait))} s"
        return _signin_form(request, next, error, status=401)
    token, _ = sessions.open_session(service.dep.store, api_key.strip())
    response = web.redirect(web.safe_next(next) if next != "/" else web.HOMES[caller.role])
    response.set_cookie(
        sessions.COOKIE,
        token,
        max_age=sessions.LIFETIME_S,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    response.delete_cookie(SIGNIN_COOKIE, path="/signin")
    return response


@router.post("/signout")
def signout(session: web.CsrfDep, service: ServiceDep) -> Response:
    sessions.end_session(service.dep.store, session.token_hash)
    response = web.redirect("/signin")
    response.delete_cookie(sessions.COOKIE, path="/")
    return response
