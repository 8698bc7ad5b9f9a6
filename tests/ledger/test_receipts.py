"""Receipts: the documented format is checkable by an independent verifier (docs/examples)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from ledger.errors import InputError
from ledger.log import Log
from ledger.receipts import build_receipt, loads_strict, log_checkpoint_source, verify_receipt
from tests.ledger.conftest import DOMAIN, Plant

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "verify_receipt.py"


def _independent():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("verify_receipt", EXAMPLE)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_independent_verifier_agrees(plant: Plant) -> None:
    log = Log(plant.store)
    log.append(plant.accepted(37))
    log.checkpoint()
    independent = _independent()
    for index in (0, 17, 36):
        receipt = json.loads(json.dumps(build_receipt(log, index, DOMAIN)))
        assert independent.verify(receipt) == ["canonical", "signature", "inclusion"]
        verdict = verify_receipt(receipt, checkpoint_source=log_checkpoint_source(log))
        assert verdict.ok, verdict.checks
        tampered = json.loads(json.dumps(receipt))
        tampered["record"]["payload"]["lot"] = "LOT-X"
        with pytest.raises(AssertionError):
            independent.verify(tampered)
        assert not verify_receipt(tampered).ok


def test_receipts_survive_erasure_of_others_and_log_growth(plant: Plant) -> None:
    log = Log(plant.store)
    log.append(plant.accepted(10))
    cp = log.checkpoint()
    receipt = build_receipt(log, 3, DOMAIN)
    log.erase(4)
    log.append(plant.accepted(5))
    log.checkpoint()
    verdict = verify_receipt(receipt, checkpoint_source=log_checkpoint_source(log))
    assert verdict.ok and cp.size == 10
    fresh = build_receipt(log, 3, DOMAIN)
    assert fresh["checkpoint"]["size"] == 15 and verify_receipt(fresh).ok


def test_skipped_checks_are_not_passes(plant: Plant) -> None:
    log = Log(plant.store)
    log.append(plant.accepted(3))
    log.checkpoint()
    verdict = verify_receipt(build_receipt(log, 1, DOMAIN))
    status = {c.name: c.status for c in verdict.checks}
    assert status["key (chain)"] == status["checkpoint"] == status["anchor"] == "skipped"
    assert verdict.ok  # the offline checks hold
    assert not verify_receipt({"format": "forgeproof-receipt/1"}).ok


def test_the_published_schema_is_the_one_receipts_are_read_with() -> None:
    repo = Path(__file__).resolve().parents[2]
    assert (repo / "docs" / "receipt.schema.json").read_bytes() == (
        repo / "ledger" / "receipt.schema.json"
    ).read_bytes()


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda r: r["domain"].pop("name"), "domain: 'name' is a required property"),
        (lambda r: r["domain"].update(salt="0x" + "00" * 32), "domain: unexpected field(s) salt"),
        (lambda r: r["domain"].update(chainId=str(r["domain"]["chainId"])), "domain.chainId"),
        (lambda r: r.update(leaf_hash=r["leaf_hash"].upper()), "leaf_hash"),
        (lambda r: r["checkpoint"].update(size=float(r["checkpoint"]["size"])), "checkpoint.size"),
        (lambda r: r.update(note="hi"), "unexpected field(s) note"),
        (
            lambda r: r["record"]["producer"].update(
                address=r["record"]["producer"]["address"].upper()
            ),
            "record.producer.address",
        ),
    ],
)
def test_receipts_are_read_strictly(plant: Plant, change: Any, complaint: str) -> None:
    """Issue #14, finding 1: the domain as given, and nothing else loose either."""
    log = Log(plant.store)
    log.append(plant.accepted(3))
    log.checkpoint()
    receipt = json.loads(json.dumps(build_receipt(log, 1, DOMAIN)))
    assert verify_receipt(receipt).ok
    change(receipt)
    verdict = verify_receipt(receipt)
    assert not verdict.ok and verdict.checks[0].name == "format"
    assert complaint in verdict.checks[0].detail, verdict.checks[0].detail


def test_duplicate_keys_are_refused_where_a_receipt_is_read() -> None:
    assert loads_strict('{"a": 1, "b": {"c": 2}}') == {"a": 1, "b": {"c": 2}}
    with pytest.raises(InputError, match="duplicate key 'c'"):
        loads_strict('{"a": 1, "b": {"c": 2, "c": 3}}')
    with pytest.raises(InputError, match="not JSON"):
        loads_strict('{"a": ')


def test_offline_the_size_is_a_claim_and_says_so(plant: Plant) -> None:
    """Issue #14, finding 2: a leaf can have the same audit path in two tree sizes (leaf 4 of
    7 leaves and of 8); offline that cannot be told apart, and the verdict says what only the
    anchor (or the log) settles."""
    log = Log(plant.store)
    log.append(plant.accepted(7))
    log.checkpoint()
    receipt = json.loads(json.dumps(build_receipt(log, 4, DOMAIN)))
    grown = {**receipt, "checkpoint": {**receipt["checkpoint"], "size": 8}}
    for r in (receipt, grown):
        inclusion = next(c for c in verify_receipt(r).checks if c.name == "inclusion")
        assert inclusion.status == "ok"
        assert "only the anchor check authenticates them" in inclusion.detail
    # Against the log, the grown one is caught.
    assert not verify_receipt(grown, checkpoint_source=log_checkpoint_source(log)).ok
