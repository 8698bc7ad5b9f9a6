"""Shared fixtures. Markers are registered in pyproject.toml."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the checkout: standards vectors and data sets, used in place."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside this checkout")
    return SHARED


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("FORGEPROOF_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must run the PostgreSQL tests: FORGEPROOF_TEST_POSTGRES_URL is unset")
        pytest.skip("FORGEPROOF_TEST_POSTGRES_URL is not set (make services)")
    return url
