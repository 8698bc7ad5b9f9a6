"""/verify: the in-browser verifier (api/portal/verifier.py), for anyone, signed in or not.

The page is one self-contained file (its scripts inlined), so the copy served here and a copy
saved to disk are the same program; `/verify/forgeproof-verify.html` hands it over as a file.
When the deployment runs on a JSON-RPC node, the page is pre-filled with that node's URL for the
anchor and key checks; a partner can point it at a node of its own instead.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.deps import ServiceDep
from api.portal.verifier import content_security_policy, standalone_page

router = APIRouter(prefix="/verify", include_in_schema=False)


def _page(service: ServiceDep, *, back_link: str | None) -> str:
    rpc = service.dep.chain_url
    return standalone_page(
        rpc_url=rpc if rpc and rpc.startswith("http") else None, back_link=back_link
    )


def _response(html: str, **headers: str) -> HTMLResponse:
    policy = content_security_policy(html)
    return HTMLResponse(html, headers={"Content-Security-Policy": policy, **headers})


@router.get("")
def verify_page(request: Request, service: ServiceDep) -> HTMLResponse:
    return _response(_page(service, back_link="/"))


@router.get("/forgeproof-verify.html")
def verify_download(service: ServiceDep) -> HTMLResponse:
    """The same page as a file to keep: it runs from disk with no server at all."""
    return _response(
        _page(service, back_link=None),
        **{"Content-Disposition": 'attachment; filename="forgeproof-verify.html"'},
    )
