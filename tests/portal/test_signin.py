"""Sign-in, sessions and what each role is shown, in a real browser against a live portal."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.portal.conftest import LivePortal

pytestmark = pytest.mark.xdist_group("browser")


def test_root_sends_a_stranger_to_sign_in(live_portal: LivePortal, page: Any) -> None:
    page.goto(live_portal.url + "/")
    assert page.url.endswith("/signin")
    assert page.is_visible("#api_key")


@pytest.mark.parametrize(
    ("who", "role", "home"),
    [
        ("operator", "operator", "/portal/operator"),
        ("acme-steel", "supplier", "/portal/records"),
        ("tuv-audit", "auditor", "/portal/audit"),
        ("fixit-services", "maintainer", "/portal/assets"),
    ],
)
def test_each_role_signs_in_and_lands_home(
    live_portal: LivePortal, page: Any, who: str, role: str, home: str
) -> None:
    live_portal.sign_in(page, who)
    assert page.url.endswith(home)
    badge = page.locator("#signed-in")
    assert badge.get_attribute("data-role") == role
    assert badge.get_attribute("data-participant") == (
        live_portal.running.service.dep.operator if who == "operator" else who
    )


def test_the_session_cookie_is_httponly_strict_and_ends_at_sign_out(
    live_portal: LivePortal, page: Any
) -> None:
    live_portal.sign_in(page, "acme-steel")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "fp_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # no script on the page can read it
    token = cookie["value"]
    page.click("text=Sign out")
    assert page.url.endswith("/signin")
    # The old cookie, replayed, is dead on the server too (not merely deleted in this browser).
    page.context.add_cookies([{**cookie, "value": token}])
    page.goto(live_portal.url + "/portal/records")
    assert page.url.startswith(live_portal.url + "/signin")


def test_a_wrong_key_is_refused_and_says_so(live_portal: LivePortal, page: Any) -> None:
    page.goto(live_portal.url + "/signin")
    page.fill("#api_key", "fp_not-a-key")
    page.click("button[type=submit]")
    assert "not valid" in page.locator("#signin-error").inner_text()
    assert not [c for c in page.context.cookies() if c["name"] == "fp_session"]


def test_revoking_the_api_key_ends_its_sessions(live_portal: LivePortal, page: Any) -> None:
    from api.auth import issue_api_key, revoke_api_key

    dep = live_portal.running.service.dep
    token, info = issue_api_key(dep.store, "nordic-bearings", "supplier", "portal-test")
    live_portal.keys["nordic-temp"] = token
    live_portal.sign_in(page, "nordic-temp")
    revoke_api_key(dep.store, info.id)
    time.sleep(0.6)  # the key cache's ttl: revocation reaches every process within it
    page.goto(live_portal.url + "/portal/records")
    assert page.url.startswith(live_portal.url + "/signin")


def test_sign_in_returns_to_the_page_asked_for_but_never_off_site(
    live_portal: LivePortal, page: Any
) -> None:
    page.goto(live_portal.url + "/portal/records?kind=supplier_record")
    assert "next=" in page.url
    page.fill("#api_key", live_portal.keys["acme-steel"])
    page.click("button[type=submit]")
    assert page.url == live_portal.url + "/portal/records?kind=supplier_record"
    page.context.clear_cookies()
    page.goto(live_portal.url + "/signin?next=//evil.example/x")
    page.fill("#api_key", live_portal.keys["acme-steel"])
    page.click("button[type=submit]")
    assert page.url.startswith(live_portal.url + "/")


def test_a_cross_site_form_post_changes_nothing(live_portal: LivePortal) -> None:
    """A post without the session's CSRF token (another site's form) is refused, and a
    sign-in post without the sign-in page's own cookie too."""
    import httpx

    from api.auth import list_api_keys

    dep = live_portal.running.service.dep
    with httpx.Client(base_url=live_portal.url) as client:
        r = client.get("/signin")
        nonce = r.text.split('name="nonce" value="')[1].split('"')[0]
        r = client.post(
            "/signin",
            data={"api_key": live_portal.keys["operator"], "nonce": nonce, "next": "/"},
        )
        assert r.status_code == 303
        keys_before = len(list_api_keys(dep.store))
        r = client.post(
            "/portal/operator/api-keys",
            data={"participant": "acme-steel", "role": "supplier", "csrf": "forged"},
        )
        assert r.status_code == 403
        assert len(list_api_keys(dep.store)) == keys_before
    with httpx.Client(base_url=live_portal.url) as fresh:
        r = fresh.post("/signin", data={"api_key": live_portal.keys["operator"], "nonce": "x"})
        assert r.status_code == 403 and "fp_session" not in r.headers.get("set-cookie", "")


def test_docs_and_redoc_render_with_nothing_fetched_off_site(
    live_portal: LivePortal, page: Any
) -> None:
    """Served from the vendored bundles: they work with no internet. (Redoc's footer asks for
    its maker's logo from a CDN; the page's policy blocks it, so it never leaves.)"""
    fetched: list[str] = []
    page.on("response", lambda r: fetched.append(r.url))
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security" in m.text else None)
    page.goto(live_portal.url + "/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=15_000)
    assert page.locator(".swagger-ui .opblock").count() > 20
    page.goto(live_portal.url + "/redoc")
    page.wait_for_selector("text=API docs by Redocly", timeout=15_000)
    assert page.locator("h1").first.inner_text().startswith("forgeproof")
    assert [
        u for u in fetched if not u.startswith((live_portal.url, "blob:" + live_portal.url))
    ] == []
    assert all("cdn.redoc.ly/redoc/logo-mini.svg" in b for b in blocked), blocked
