"""What every portal page shares: the signed-in caller, CSRF checks, rendering, errors.

Pages are rendered on the server (Jinja2, autoescaped) from what the API's own handlers answer
for the session's caller (see api/portal/__init__.py), so a page shows exactly what the API
would hand that caller and nothing more. Pages run no inline script: their scripts and styles
are files under /static, and the policy says so (`PAGE_CSP`).
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FunctionLoader, select_autoescape

from api.auth import Caller
from api.deps import ServiceDep
from api.errors import ApiError
from api.portal import sessions
from api.service import Service
from ledger.records import utc_now

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HOMES = {
    "operator": "/portal/operator",
    "manufacturer": "/portal/audit",
    "auditor": "/portal/audit",
    "supplier": "/portal/records",
    "model_publisher": "/portal/records",
    "maintainer": "/portal/assets",
}


def _template(name: str) -> str | None:
    path = resources.files("api.portal").joinpath("templates", name)
    return path.read_text("utf-8") if path.is_file() else None


templates = Environment(
    loader=FunctionLoader(_template),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["short"] = lambda s, n=10: s if len(str(s)) <= 2 * n + 1 else f"{s[:n]}…{s[-4:]}"
templates.filters["urlq"] = lambda s: quote(str(s), safe="")


class SignInRequired(Exception):
    """No live session: the handler sends the browser to /signin, then back."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


async def current_session(request: Request, service: ServiceDep) -> sessions.Session:
    session = sessions.resolve(
        service.dep.store, service.api_keys, request.cookies.get(sessions.COOKIE)
    )
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    return session


SessionDep = Annotated[sessions.Session, Depends(current_session)]


def check_role(session: sessions.Session, *roles: str) -> None:
    """Refuse a caller outside `roles` (403), as the API's role dependencies do."""
    if session.caller.role not in roles:
        raise ApiError(
            403,
            "forbidden",
            f"this page is for {' or '.join(roles)}; you are signed in as "
            f"{session.caller.participant} ({session.caller.role})",
        )


def require_role(*roles: str) -> Any:
    """`Annotated[Session, require_role(...)]`: a signed-in caller in one of `roles`."""

    async def check(session: SessionDep) -> sessions.Session:
        check_role(session, *roles)
        return session

    return Depends(check)


async def csrf_checked(session: SessionDep, csrf: Annotated[str, Form()] = "") -> sessions.Session:
    """A form post of this session: its CSRF token must be the session's."""
    if not sessions.csrf_ok(session, csrf):
        raise ApiError(403, "bad_csrf", "the form is stale or not from this portal; reload it")
    return session


CsrfDep = Annotated[sessions.Session, Depends(csrf_checked)]


def render(
    request: Request,
    name: str,
    session: sessions.Session | None,
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    html = templates.get_template(name).render(
        request=request,
        session=session,
        caller=session.caller if session else None,
        home=HOMES.get(session.caller.role, "/") if session else "/signin",
        now=utc_now(),
        **context,
    )
    return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": PAGE_CSP})


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def safe_next(url: str | None) -> str:
    """Only a path on this site: `next=//evil.example` or `https://...` go home instead."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return "/"
    return url


def html_error(request: Request, status: int, code: str, detail: str) -> Response:
    service: Service = request.app.state.service
    session = sessions.resolve(
        service.dep.store, service.api_keys, request.cookies.get(sessions.COOKIE)
    )
    return render(
        request, "error.html", session, status=status, code=code, detail=detail, status_code=status
    )


def who(caller: Caller) -> str:
    return f"{caller.participant} ({caller.role})"


# API pages a person may open in a browser, and where the portal shows the same thing.
_PORTAL_TWIN = [
    (re.compile(r"/v1/genealogy(/audit)?"), "/portal/audit/trace?id={id}"),
    (re.compile(r"/v1/records/(?P<record>[^/]+)(/receipt)?"), "/portal/records/{record}"),
]


def browser_sign_in(request: Request) -> Response:
    """The API's 401, for a browser: the same content is in the portal, behind sign-in."""
    target = "/"
    for pattern, twin in _PORTAL_TWIN:
        if m := pattern.fullmatch(request.url.path):
            names = {"id": request.query_params.get("id", ""), **m.groupdict()}
            target = twin.format(**{k: quote(v or "", safe="") for k, v in names.items()})
            break
    response = render(
        request, "api_sign_in.html", None, status=401, target=target,
        sign_in=f"/signin?next={quote(target, safe='')}",
    )  # fmt: skip
    response.headers["WWW-Authenticate"] = "Bearer"
    return response
