"""Broken promises raise signed alarms: checked each time an outcome settles a model's predictions.

A RUL model promises that its 80 % and 90 % intervals cover the true remaining life that often,
and states its validation RMSE in its manifest. After an outcome, the model's scorecard is
recomputed from the log, **per prediction source** (the `source` a prediction payload names: the
input file it was made from, `input` for the service's requests), and a promise counts as
broken when, in some source's settled predictions,

- coverage: at least `MIN_OUTCOMES` settled predictions, and the one-sided binomial test of
  "covered at least at the nominal rate" rejects at `ALPHA` (P(X <= covered | n, nominal) <
  0.01): realised coverage is significantly below what was signed;
- error: at least `MIN_OUTCOMES` settled predictions and an RMSE above `RMSE_FACTOR` times the
  manifest's own `metrics.rmse`.

Per source, so that drift arriving with one data source (another fleet, plant or feed) is judged
on that source's outcomes, neither masked by a healthy population nor blamed on it; with one
source (the service's requests alone) this is the model's whole scorecard. Sources with fewer
than `MIN_OUTCOMES` settled predictions are tested together: sources are named by whoever signs
the predictions, and a new name every few predictions must not keep every group untested. Then
the operator signs an `alarm` record (`promise:<first 40 hex digits of the digest>`) naming the
model, the broken promises with their evidence and source, and the assets of the sources that
broke one; it is delivered to the operator's webhooks and to those assets' maintainers, who may
also read it (`api.access`). The alarm is raised once per episode and cleared, again with a
signed record, once no promise is broken (`Service.set_alarm`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from api.scorecards import Pair, compute, gather
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


SMALL = "sources with too few outcomes each"


def checked_groups(pairs: Iterable[Pair]) -> list[tuple[str, list[Pair]]]:
    """The groups whose promises are tested: each source with `MIN_OUTCOMES` or more settled
    predictions on its own, and the rest together. The source is named by whoever signs the
    predictions: a new name every few predictions must not keep every group too small to
    test."""
    groups = by_source(pairs)
    small = [p for ps in groups.values() if len(ps) < MIN_OUTCOMES for p in ps]
    out = sorted((s, ps) for s, ps in groups.items() if len(ps) >= MIN_OUTCOMES)
    if small:
        out.append((SMALL, small))
    return out


def by_source(pairs: Iterable[Pair]) -> dict[str, list[Pair]]:
    """Settled predictions grouped by the source their payload names (`input` when none)."""
    groups: dict[str, list[Pair]] = {}
    for p in pairs:
        groups.setdefault(str(p.predicted.get("source") or "input"), []).append(p)
    return groups


def evaluate(service: Service, digests: Iterable[str]) -> dict[str, int | None]:
    """Check each model's promises and raise or clear its alarm; returns the alarm record's
    leaf index per model (None: no change). Never raises for one model's failure: the outcome
    is already logged, and the next outcome checks again."""
    changed: dict[str, int | None] = {}
    for digest in sorted(digests):
        try:
            g = gather(service, digest)
            if len(g.pairs) < MIN_OUTCOMES:
                continue
            found: list[dict[str, Any]] = []
            hit: set[str] = set()
            for source, pairs in checked_groups(g.pairs):
                here = broken(compute(g.task, pairs), g.metrics)
                found += [{**b, "source": source} for b in here]
                if here:
                    hit |= {p.asset for p in pairs if p.asset is not None}
            every = {p.asset for p in g.pairs if p.asset is not None}
            assets = sorted(hit if found else every)
            facts = {
                "model_manifest_digest": digest,
                "model": g.name,
                "outcomes": len(g.pairs),
                "broken": found,
                "affected_assets": assets,
                "test": f"one-sided binomial, alpha {ALPHA}, at least {MIN_OUTCOMES} outcomes, "
                "per prediction source",
            }
            changed[digest] = service.set_alarm(
                alarm_name(digest), raised=bool(found), facts=facts, assets=assets
            )
        except LedgerError as exc:
            log.error("could not evaluate the promises of model %s: %s", digest, exc)
    return changed
