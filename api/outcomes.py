"""Outcome records: what was observed afterwards, settling the predictions it cites.

An `outcome` record's payload is `{"settles": ["0x<leaf hash>", ...], "asset": ..., "observed":
{...}}`; what `observed` holds depends on the task of the cited predictions' model:

- `rul`: `{"failure_cycle": int}`, the engine's observed last cycle (its end of life). Each
  settled prediction must carry `last_cycle` (the cycle it was made at), not after the failure:
  the true remaining life is `failure_cycle - last_cycle`.
- `failure`: `{"failed": bool}`, whether the machine failed.
- `defect`: `{"label": str}`, the class a human reviewer confirmed for the inspected image (one of
  the model's classes when the inspection lists them).
- `demand`: `{"week": "2026-W40", "units": 14}`, the units the plant actually ordered of the
  outcome's `product` in that ISO week. Each settled record must be a `forecast` for that
  product whose `weeks` hold that week; one outcome settles one week of the forecasts it cites
  (a scorecard pairs each (forecast, week) with the latest outcome for it).

`check_outcome` runs before anything is appended, so a refused outcome changes nothing; every
refusal is an `InputError` (422, `invalid_input`) naming what was expected and what was found.
The log is the only source: a scorecard (`api.scorecards`) is computed from these records and
the predictions they cite, and nothing else.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from api.forecasts import DEMAND_TASK, FORECAST_KIND, check_product, parse_week
from api.tables import ModelRow
from ledger.errors import InputError, NotFound
from ledger.records import Record

if TYPE_CHECKING:
    from api.service import Service

OUTCOME_KIND = "outcome"
SETTLES_KINDS = frozenset({"prediction", "inspection", FORECAST_KIND})
MAX_SETTLES = 1000  # one outcome per asset event; a bound keeps a submission's checks cheap
_LEAF = re.compile(r"^0x[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class Settled:
    """What a valid outcome settles: the models whose promises it scores."""

    models: frozenset[str]  # manifest digests


def check_observed(task: str, observed: Any, cited: dict[str, Any]) -> None:
    """Check that `observed` fits `task` and the cited prediction's payload `cited`.

    Raises:
        InputError: it does not.
    """
    if not isinstance(observed, dict):
        raise InputError(f"outcome: observed is {type(observed).__name__}, expected an object")
    if task == "rul":
        cycle = observed.get("failure_cycle")
        if isinstance(cycle, bool) or not isinstance(cycle, int) or cycle < 1:
            raise InputError(
                f"outcome of a rul prediction: observed.failure_cycle is {cycle!r}, "
                "expected a positive integer (the engine's last cycle)"
            )
        last = cited.get("last_cycle")
        if isinstance(last, bool) or not isinstance(last, int):
            raise InputError(
                "outcome of a rul prediction: the cited prediction has no integer last_cycle, "
                "so its true remaining life cannot be known"
            )
        if cycle < last:
            raise InputError(
                f"outcome: failure_cycle {cycle} comes before the cited prediction's "
                f"last_cycle {last}"
            )
    elif task == "failure":
        if not isinstance(observed.get("failed"), bool):
            raise InputError(
                f"outcome of a failure prediction: observed.failed is "
                f"{observed.get('failed')!r}, expected true or false"
            )
    elif task == DEMAND_TASK:
        week = observed.get("week")
        parse_week(week, "outcome of a forecast: observed.week")
        units = observed.get("units")
        if (
            isinstance(units, bool)
            or not isinstance(units, int | float)
            or not math.isfinite(units)
            or units < 0
        ):
            raise InputError(
                f"outcome of a forecast: observed.units is {units!r}, expected a number of "
                "units, at least 0"
            )
        weeks = cited.get("weeks")
        if not isinstance(weeks, list) or week not in weeks:
            raise InputError(
                f"outcome of a forecast: week {week} is not one of the cited forecast's weeks "
                f"({', '.join(map(str, weeks)) if isinstance(weeks, list) else 'none'})"
            )
    elif task == "defect":
        label = observed.get("label")
        classes = cited.get("probabilities")
        if not isinstance(label, str) or not label:
            raise InputError(
                f"outcome of an inspection: observed.label is {label!r}, expected a class name"
            )
        if isinstance(classes, dict) and label not in classes:
            raise InputError(
                f"outcome of an inspection: label {label!r} is not one of the model's classes "
                f"({', '.join(sorted(classes))})"
            )
    else:
        raise InputError(f"outcome: the cited model's task {task!r} takes no outcomes")


def check_outcome(service: Service, record: Record) -> Settled:
    """Validate an outcome record against the log before it is appended.

    Raises:
        InputError: a malformed `settles`, a cited leaf that is not in the log or is not a
            prediction, inspection or forecast, an asset (a product) that differs from a cited
            prediction's (forecast's), or an `observed` that does not fit the cited model's
            task (for a forecast: a week it does not forecast).
    """
    from api.service import record_tags

    payload = record.payload
    settles = payload.get("settles")
    if not isinstance(settles, list) or not settles:
        raise InputError("outcome: settles must be a non-empty list of 0x leaf hashes")
    if len(settles) > MAX_SETTLES:
        raise InputError(f"outcome: settles {len(settles)} records, at most {MAX_SETTLES}")
    if len(set(map(str, settles))) != len(settles):
        raise InputError("outcome: settles names a record twice")
    asset = payload.get("asset")
    if asset is not None and not isinstance(asset, str):
        raise InputError(f"outcome: asset is {asset!r}, expected a string")
    product = payload.get("product")
    if product is not None:
        check_product(product, "outcome: product")
    models: set[str] = set()
    tasks: dict[str, str] = {}
    for leaf in settles:
        if not isinstance(leaf, str) or not _LEAF.match(leaf):
            raise InputError(f"outcome: settles holds {leaf!r}, expected a 0x leaf hash")
        try:
            cited = service.dep.log.find(bytes.fromhex(leaf[2:]))
        except NotFound:
            raise InputError(f"outcome settles {leaf}, which is not in the log") from None
        if cited.kind not in SETTLES_KINDS:
            raise InputError(
                f"outcome settles {leaf}, a {cited.kind} record; expected a prediction, "
                "an inspection or a forecast"
            )
        try:
            cited_payload = cited.record().payload
        except NotFound as exc:
            raise InputError(f"outcome settles {leaf}: {exc}") from None
        cited_asset, digest = record_tags(cited_payload)
        if cited_asset is not None and cited_asset != asset:
            raise InputError(
                f"outcome is about asset {asset!r}, but {leaf} is about {cited_asset!r}"
            )
        if cited.kind == FORECAST_KIND and cited_payload.get("product") != product:
            raise InputError(
                f"outcome is about product {product!r}, but forecast {leaf} is about "
                f"{cited_payload.get('product')!r}"
            )
        if digest is None:  # cannot happen: predictions are checked to cite a model
            raise InputError(f"outcome settles {leaf}, which cites no model")
        if digest not in tasks:
            with service.dep.store.reading() as conn:
                task = conn.execute(select(ModelRow.task).where(ModelRow.digest == digest)).scalar()
            tasks[digest] = str(task)
        if (tasks[digest] == DEMAND_TASK) != (cited.kind == FORECAST_KIND):
            raise InputError(
                f"outcome settles {leaf}, a {cited.kind} of a {tasks[digest]} model: demand "
                "models make forecasts, and forecasts cite demand models"
            )
        if len(set(tasks.values())) > 1:
            raise InputError(
                "outcome settles records of models of different tasks "
                f"({', '.join(sorted(set(tasks.values())))}): one outcome per task"
            )
        check_observed(tasks[digest], payload.get("observed"), cited_payload)
        models.add(digest)
    return Settled(frozenset(models))
