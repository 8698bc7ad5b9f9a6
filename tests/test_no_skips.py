"""No test skips on its own say-so: a missing prerequisite goes through tests.conftest.missing,
which fails (CI never sets FORGEPROOF_ALLOW_SKIP)."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SKIPS = re.compile(r"pytest\.skip\(|importorskip\(|mark\.skip(if)?\b|unittest\.skip")


def test_only_missing_may_skip() -> None:
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if SKIPS.search(line) and not (path.name == "conftest.py" and path.parent == TESTS):
                found.append(f"{path.relative_to(TESTS)}:{number}: {line.strip()}")
    # this file names the patterns, in the regular expression above
    found = [f for f in found if not f.startswith("test_no_skips.py")]
    assert not found, "skips outside tests.conftest.missing:\n" + "\n".join(found)
