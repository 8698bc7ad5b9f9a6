"""The partner portal: server-rendered pages for suppliers, auditors, maintenance partners and
the operator, over the same access policy as the API, plus the verifier that runs in the
browser and trusts no server (`/verify`, also usable saved to disk).

The pages call the API's own route handlers with the session's caller (`api.portal.pages`): a
page can show only what the API would answer that caller, and there is one policy to test.
`install(app)` mounts the pages, the static files (our scripts and styles, and the vendored
third-party bundles in static/vendor, see SOURCES.json there) and /docs, /redoc from them.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from api.portal import web
from api.portal.pages import assets, audit, docs, operator, records, signin, verify


def install(app: FastAPI) -> None:
    static = Path(str(resources.files("api.portal").joinpath("static")))
    app.mount("/static", StaticFiles(directory=static), name="static")
    for module in (signin, verify, docs, records, audit, assets, operator):
        app.include_router(module.router)
    app.state.html_error = web.html_error
    app.state.browser_sign_in = web.browser_sign_in

    @app.exception_handler(web.SignInRequired)
    async def _sign_in(_: Request, exc: web.SignInRequired) -> RedirectResponse:
        return web.redirect(f"/signin?next={quote(exc.next_url, safe='')}")
