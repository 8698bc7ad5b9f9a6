"""Receipts: the documented format is checkable by an independent verifier (docs/examples)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from ledger.log import Log
from ledger.receipts import build_receipt, log_checkpoint_source, verify_receipt
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
