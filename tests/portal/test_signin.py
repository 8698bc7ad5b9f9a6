"""Sign-in, sessions and what each role is shown, in a real browser against a live portal."""

from __future__ import annotations

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
