"""The in-browser verifier's copy of who may sign which kind matches the ledger's."""

from __future__ import annotations

import re
from pathlib import Path

from ledger.registry import KIND_ROLES, MODEL_ROLES, WRITING_ROLES

VERIFY_JS = Path(__file__).resolve().parents[2] / "api" / "portal" / "static" / "verify.js"


def test_verify_js_kind_roles_mirror_the_registry() -> None:
    js = VERIFY_JS.read_text()
    consts = {
        "MODEL_ROLES": frozenset(MODEL_ROLES),
        "WRITING_ROLES": frozenset(WRITING_ROLES),
    }
    for name, roles in consts.items():
        found = re.search(rf"const {name} = \[([^\]]*)\];", js)
        assert found, name
        assert frozenset(re.findall(r'"(\w+)"', found.group(1))) == roles, name
    block = re.search(r"const KIND_ROLES = \{(.*?)\};", js, re.S)
    assert block
    mirrored = {}
    for line in block.group(1).strip().splitlines():  # one `kind: roles,` per line
        kind, value = (part.strip() for part in line.split(":", 1))
        value = value.rstrip(",")
        mirrored[kind] = (
            consts[value] if value in consts else frozenset(re.findall(r'"(\w+)"', value))
        )
    assert mirrored == {k: frozenset(v) for k, v in KIND_ROLES.items()}
    assert "outcome" in mirrored
