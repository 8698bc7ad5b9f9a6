"""Shared fixtures. Markers are registered in pyproject.toml."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
# Standards vectors the tests read, vendored with their licences (see tests/vectors/README.md).
VECTORS = Path(__file__).resolve().parent / "vectors"

# Signing keys are keystore files: a passphrase for the tests, and scrypt at a cost a test can
# pay thousands of times (real keys keep eth-account's 2**18). Subprocesses inherit both.
os.environ.setdefault("FORGEPROOF_KEY_PASSPHRASE", "tests only, not a secret")
os.environ.setdefault("FORGEPROOF_KEYSTORE_SCRYPT_N", "1024")


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    """tests/vectors: RFC 6962, RFC 8785 and EPCIS known answers (from ../shared/standards)."""
    return VECTORS


def missing(why: str) -> NoReturn:
    """A test's prerequisite (../shared, a shipped model, a tool `make install` provides) is
    absent: the test fails, naming it. Skipping instead needs FORGEPROOF_ALLOW_SKIP=1, for a
    deliberate partial run; CI never sets it, so nothing skips there."""
    if os.environ.get("FORGEPROOF_ALLOW_SKIP") == "1":
        pytest.skip(why)
    pytest.fail(f"{why} (FORGEPROOF_ALLOW_SKIP=1 skips instead)", pytrace=False)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the checkout, used in place: data sets (for standards, `vectors_dir`)."""
    if not SHARED.is_dir():
        missing("../shared is not beside this checkout")
    return SHARED


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("FORGEPROOF_TEST_POSTGRES_URL")
    if not url:
        missing("FORGEPROOF_TEST_POSTGRES_URL is not set (make services)")
    return url


@contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    """A throwaway schema on the test database; yields a URL whose search_path is that schema."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
