"""Checking submissions: the same verdicts on one process and on many, in input order."""

from __future__ import annotations

import json

from ledger.ingest import Accepted, Rejected, check_lines, submission_json
from tests.ledger.conftest import DOMAIN, Plant


def test_parallel_checking_matches_serial(plant: Plant) -> None:
    lines = []
    for i in range(1300):
        rec, sig = plant.record(lot=f"L{i}")
        lines.append(json.dumps(submission_json(rec, sig)).encode())
    lines[5] = b"not json"
    lines[700] = lines[700].replace(
        b'"kind": "note"', b'"kind": "inspection"'
    )  # breaks the signature
    lines.insert(900, b"   \n")  # blank lines are skipped, numbering is kept
    keys = plant.registry.snapshot()
    serial = list(check_lines(lines, DOMAIN, keys, workers=1))
    parallel = list(check_lines(lines, DOMAIN, keys, workers=2, chunk=128))
    assert serial == parallel
    assert len(serial) == 1300
    rejected = [r for r in serial if isinstance(r, Rejected)]
    assert [r.line for r in rejected] == [6, 701]
    assert "malformed JSON" in rejected[0].error and "signature" in rejected[1].error
    assert all(isinstance(a, Accepted) for a in serial if not isinstance(a, Rejected))
