"""The portal's third-party bundles (api/portal/static/vendor) are the pinned npm packages'
files, byte for byte: what a partner's browser runs is what those packages published."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "api" / "portal" / "static" / "vendor"
SOURCES = json.loads((VENDOR / "SOURCES.json").read_text())["files"]
PINNED = json.loads((ROOT / "package.json").read_text())["dependencies"]


def test_every_vendored_file_is_listed() -> None:
    assert {p.name for p in VENDOR.iterdir()} == set(SOURCES) | {"SOURCES.json"}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_vendored_file_matches_its_digest_and_pin(name: str) -> None:
    source = SOURCES[name]
    assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == source["sha256"]
    assert PINNED[source["package"]] == source["version"], "package.json pins another version"


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_vendored_file_is_the_npm_packages(name: str) -> None:
    """`make install` installs the pinned packages; their files must be the vendored ones."""
    source = SOURCES[name]
    package = ROOT / "node_modules" / source["package"]
    installed = json.loads((package / "package.json").read_text())["version"]
    assert installed == source["version"], f"node_modules has {source['package']} {installed}"
    assert (package / source["path"]).read_bytes() == (VENDOR / name).read_bytes()
