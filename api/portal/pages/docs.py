"""/docs (Swagger UI) and /redoc from the vendored bundles: they work with no internet."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from api.portal.csp import inline_hashes

router = APIRouter(include_in_schema=False)
VENDOR = "/static/vendor"
# Swagger UI's page runs one inline script (its configuration); Redoc searches in a worker.
DOCS_CSP = (
    "default-src 'none'; script-src 'self' {scripts}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


@router.get("/docs")
def swagger(request: Request) -> HTMLResponse:
    page = get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title="forgeproof API",
        swagger_js_url=f"{VENDOR}/swagger-ui-bundle.js",
        swagger_css_url=f"{VENDOR}/swagger-ui.css",
        swagger_favicon_url="/static/favicon.svg",
    )
    return _with_policy(bytes(page.body).decode())


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>forgeproof API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/static/favicon.svg"></head>
<body><redoc spec-url="{request.app.openapi_url}"></redoc>
<script src="{VENDOR}/redoc.standalone.js"></script></body></html>"""
    return _with_policy(page)


def _with_policy(html: str) -> HTMLResponse:
    policy = DOCS_CSP.format(scripts=" ".join(inline_hashes(html)))
    return HTMLResponse(html, headers={"Content-Security-Policy": policy})
