"""Broken promises raise signed alarms: checked each time an outcome settles a model's predictions.

A RUL model promises that its 80 % and 90 % intervals cover the true remaining life that often,
and states its validation RMSE in its manifest. After an outcome, the model's scorecard is
recomputed from the log and a promise counts as broken when

- coverage: at least `MIN_OUTCOMES` settled predictions, and the one-sided binomial test of
  "covered at least at the nominal rate" rejects at `ALPHA` (P(X <= covered | n, nominal) <
  0.01): realised coverage is significantly below what was signed;
- error: at least `MIN_OUTCOMES` settled predictions and an RMSE above `RMSE_FACTOR` times the
  manifest's own `metrics.rmse`.

Then the operator signs an `alarm` record (`promise:<first 40 hex digits of the digest>`)
naming the model, the broken promises with their evidence, and the assets whose outcomes it
used; it is delivered to the operator's webhooks and to those assets' maintainers, who may also
read it (`api.access`). The alarm is raised once per episode and cleared, again with a signed
record, once no promise is broken (`Service.set_alarm`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from api.scorecards import compute, gather
from ledger.errors import LedgerError

if TYPE_CHECKING:
    from api.service import Service

log = logging.getLogger("forgeproof.promises")

ALPHA = 0.01  # one-sided binomial test level for coverage
MIN_OUTCOMES = 10  # fewer settled predictions say too little to accuse a model
RMSE_FACTOR = 2.0  # error bound: this many times the manifest's validation RMSE


def alarm_name(digest: str) -> str:
    """The alarm of one model (fits the alarms table's 64 characters)."""
    return f"promise:{digest.removeprefix('0x')[:40]}"


def broken(card: dict[str, Any], claims: dict[str, Any]) -> list[dict[str, Any]]:
    """The promises a scorecard shows broken, each with its evidence (empty: none)."""
    overall = card["overall"]
    n = int(overall.get("n", 0))
    found: list[dict[str, Any]] = []
    if card["task"] != "rul" or n < MIN_OUTCOMES:
        return found
    for level, c in overall.get("coverage", {}).items():
        if c["n"] >= MIN_OUTCOMES and c["p_value"] < ALPHA:
            found.append({"promise": f"coverage_{level}", "alpha": ALPHA, **c})
    stated = claims.get("rmse")
    if isinstance(stated, int | float) and overall["rmse"] > RMSE_FACTOR * stated:
        found.append(
            {
                "promise": "rmse",
                "n": n,
                "rmse": overall["rmse"],
                "stated_rmse": stated,
                "bound": round(RMSE_FACTOR * stated, 6),
            }
        )
    return found


def evaluate(service: Service, digests: Iterable[str]) -> dict[str, int | None]:
    """Check each model's promises and raise or clear its alarm; returns the alarm record's
    leaf index per model (None: no change). Never raises for one model's failure: the outcome
    is already logged, and the next outcome checks again."""
    changed: dict[str, int | None] = {}
    for digest in sorted(digests):
        try:
            g = gather(service, digest)
            card = compute(g.task, g.pairs)
            if card["overall"].get("n", 0) < MIN_OUTCOMES:
                continue
            found = broken(card, g.metrics)
            assets = sorted({p.asset for p in g.pairs if p.asset is not None})
            facts = {
                "model_manifest_digest": digest,
                "model": g.name,
                "outcomes": card["overall"]["n"],
                "broken": found,
                "affected_assets": assets,
                "test": f"one-sided binomial, alpha {ALPHA}, at least {MIN_OUTCOMES} outcomes",
            }
            changed[digest] = service.set_alarm(
                alarm_name(digest), raised=bool(found), facts=facts, assets=assets
            )
        except LedgerError as exc:
            log.error("could not evaluate the promises of model %s: %s", digest, exc)
    return changed
