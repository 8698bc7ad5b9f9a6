"""A synthetic plant history in EPCIS 2.0: suppliers, lots, transformations, inspections.

For tests, the benchmark and demos. Deterministic for a seed. One production *run* turns raw
material into a finished lot through `stages` transformations:

    supplier lot --commissioning, shipping, receiving, incoming inspection--> plant
    stage 1: TransformationEvent  [raw lot]                   -> lot B1   + inspection of B1
    stage s: TransformationEvent  [lot B(s-1), raw lot (,     -> lot Bs   + inspection of Bs
                                   B(s-1) of the previous run)]
    stage K output = finished lot F --AggregationEvent--> case --AggregationEvent--> pallet
                                                                 --shipping ObjectEvent
    and a sensor_reporting ObjectEvent from the line's machine (no genealogy)

so a finished lot's upstream is `stages` hops deep. Each raw lot feeds `raw_lot_uses` stage
transformations; with probability `merge_p` a stage also takes the previous run's lot of the
same stage (leftovers), which joins runs into a DAG. Inspections cite a model manifest digest
(`models`, one after the other over the history, and `rare_model` on a `rare_model_p` share)
and come out conformant, non_conformant (`nonconformant_p`) or needs_review (`review_p`).

`PlantFacts` records what was generated, for tests to check answers against.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ledger.epcis.hashid import DEFAULT_CONTEXT
from ledger.epcis.vocab import FP_NAMESPACE, FP_PREFIX, NEEDS_REVIEW, format_time_us, time_us

CONTEXT: list[Any] = [DEFAULT_CONTEXT, {FP_PREFIX: FP_NAMESPACE}]
PLANT = "4012345"
PLANT_SITE = f"urn:epc:id:sgln:{PLANT}.00001.0"


@dataclass(frozen=True)
class PlantConfig:
    runs: int = 10
    stages: int = 10
    suppliers: int = 3
    raw_lot_uses: int = 10
    merge_p: float = 0.2
    runs_per_pallet: int = 5
    nonconformant_p: float = 0.02
    review_p: float = 0.01
    models: tuple[str, ...] = tuple("0x" + f"{m:02x}" * 32 for m in (0xA1, 0xA2, 0xA3))
    rare_model: str = "0x" + "ee" * 32
    rare_model_p: float = 0.01
    start: str = "2026-01-05T06:00:00.000Z"
    seed: int = 7

    def events_per_run(self) -> float:
        """About how many events one run adds (for sizing a history)."""
        raw = self.stages / self.raw_lot_uses * 4
        return 2 * self.stages + raw + 2 + 2 / self.runs_per_pallet


@dataclass
class PlantFacts:
    """What the generator made, for checking answers."""

    raw_lots: dict[str, str] = field(default_factory=dict)  # raw lot -> supplier
    runs: list[list[str]] = field(default_factory=list)  # per run: lot of each stage
    inputs: dict[str, list[str]] = field(default_factory=dict)  # lot -> what went into it
    case_of: dict[str, str] = field(default_factory=dict)  # finished lot -> case
    pallet_of: dict[str, str] = field(default_factory=dict)  # case -> pallet
    inspected: dict[str, tuple[str, str]] = field(
        default_factory=dict
    )  # lot -> (model, disposition)

    @property
    def finished(self) -> list[str]:
        return [run[-1] for run in self.runs]


def _raw_class(supplier: int, material: int, lot: int) -> str:
    return f"urn:epc:class:lgtin:{9000001 + supplier}.0{material:05d}.R{lot:07d}"


def _stage_class(stage: int, run: int, stages: int) -> str:
    item = "099999" if stage == stages else f"0{stage:05d}"
    return f"urn:epc:class:lgtin:{PLANT}.{item}.B{run:07d}"


def plant_events(cfg: PlantConfig, facts: PlantFacts | None = None) -> Iterator[dict[str, Any]]:
    """Schema-valid EPCIS events of the plant's history, in time order, each with `@context`."""
    rng = random.Random(cfg.seed)
    facts = facts if facts is not None else PlantFacts()
    clock = time_us(cfg.start)
    model_span = max(1, cfg.runs // len(cfg.models) + 1)
    raw_left: dict[int, tuple[str, int]] = {}  # material (= stage) -> (lot, uses left)
    raw_serial = 0
    pallet_cases: list[str] = []

    def tick(seconds: float) -> str:
        nonlocal clock
        clock += int(seconds * 1_000_000)
        return format_time_us(clock)

    def base(kind: str, when: str) -> dict[str, Any]:
        return {
            "@context": CONTEXT,
            "type": kind,
            "eventTime": when,
            "eventTimeZoneOffset": "+00:00",
        }

    def inspection(lot: str, run: int, station: int) -> dict[str, Any]:
        model = cfg.models[min(run // model_span, len(cfg.models) - 1)]
        if rng.random() < cfg.rare_model_p:
            model = cfg.rare_model
        u = rng.random()
        disposition = (
            "non_conformant"
            if u < cfg.nonconformant_p
            else NEEDS_REVIEW
            if u < cfg.nonconformant_p + cfg.review_p
            else "conformant"
        )
        facts.inspected[lot] = (model, disposition)
        return {
            **base("ObjectEvent", tick(30)),
            "quantityList": [{"epcClass": lot}],
            "action": "OBSERVE",
            "bizStep": "inspecting",
            "disposition": disposition,
            "readPoint": {"id": f"urn:epc:id:sgln:{PLANT}.00001.{station}"},
            "fp:modelManifestDigest": model,
            "fp:confidence": round(0.5 + rng.random() / 2, 4),
        }

    def raw_lot(stage: int, run: int) -> Iterator[dict[str, Any]]:
        nonlocal raw_serial
        lot, left = raw_left.get(stage, ("", 0))
        if left > 0:
            raw_left[stage] = (lot, left - 1)
            return
        raw_serial += 1
        supplier = stage % cfg.suppliers
        lot = _raw_class(supplier, stage, raw_serial)
        raw_left[stage] = (lot, cfg.raw_lot_uses - 1)
        facts.raw_lots[lot] = f"supplier-{supplier}"
        site = f"urn:epc:id:sgln:{9000001 + supplier}.00001.0"
        qty = [{"epcClass": lot, "quantity": 500, "uom": "KGM"}]
        yield {
            **base("ObjectEvent", tick(5)),
            "quantityList": qty,
            "action": "ADD",
            "bizStep": "commissioning",
            "disposition": "active",
            "readPoint": {"id": site},
        }
        yield {
            **base("ObjectEvent", tick(5)),
            "quantityList": qty,
            "action": "OBSERVE",
            "bizStep": "shipping",
            "disposition": "in_transit",
            "readPoint": {"id": site},
        }
        yield {
            **base("ObjectEvent", tick(5)),
            "quantityList": qty,
            "action": "OBSERVE",
            "bizStep": "receiving",
            "disposition": "in_progress",
            "readPoint": {"id": PLANT_SITE},
        }
        yield inspection(lot, run, 0)

    for run in range(cfg.runs):
        case_serial = run + 1
        lots: list[str] = []
        for stage in range(1, cfg.stages + 1):
            yield from raw_lot(stage, run)
            raw = raw_left[stage][0]
            inputs = [raw] if stage == 1 else [lots[-1], raw]
            if stage > 1 and run > 0 and rng.random() < cfg.merge_p:
                inputs.append(facts.runs[-1][stage - 2])
            out = _stage_class(stage, run, cfg.stages)
            facts.inputs[out] = inputs
            lots.append(out)
            yield {
                **base("TransformationEvent", tick(600)),
                "inputQuantityList": [
                    {"epcClass": i, "quantity": 10, "uom": "KGM"} for i in inputs
                ],
                "outputQuantityList": [{"epcClass": out, "quantity": 10, "uom": "KGM"}],
                "bizStep": "commissioning",
                "disposition": "in_progress",
                "readPoint": {"id": f"urn:epc:id:sgln:{PLANT}.00001.{stage}"},
            }
            yield inspection(out, run, stage)
        facts.runs.append(lots)
        case = f"urn:epc:id:sscc:{PLANT}.{case_serial:010d}"
        facts.case_of[lots[-1]] = case
        yield {
            **base("AggregationEvent", tick(60)),
            "parentID": case,
            "childQuantityList": [{"epcClass": lots[-1], "quantity": 10, "uom": "KGM"}],
            "action": "ADD",
            "bizStep": "packing",
            "disposition": "in_progress",
            "readPoint": {"id": PLANT_SITE},
        }
        yield {
            **base("ObjectEvent", tick(1)),
            "epcList": [f"urn:epc:id:giai:{PLANT}.M{run % 7}"],
            "action": "OBSERVE",
            "bizStep": "sensor_reporting",
            "readPoint": {"id": PLANT_SITE},
            "sensorElementList": [
                {
                    "sensorReport": [
                        {
                            "type": "Temperature",
                            "value": round(20 + 5 * rng.random(), 2),
                            "uom": "CEL",
                        },
                        {
                            "type": "Speed",
                            "value": round(1400 + 50 * rng.random(), 1),
                            "uom": "RPM",
                        },
                    ]
                }
            ],
        }
        pallet_cases.append(case)
        if len(pallet_cases) == cfg.runs_per_pallet or run == cfg.runs - 1:
            pallet = f"urn:epc:id:sscc:{PLANT}.9{case_serial:09d}"
            for c in pallet_cases:
                facts.pallet_of[c] = pallet
            yield {
                **base("AggregationEvent", tick(60)),
                "parentID": pallet,
                "childEPCs": list(pallet_cases),
                "action": "ADD",
                "bizStep": "packing",
                "disposition": "in_progress",
                "readPoint": {"id": PLANT_SITE},
            }
            yield {
                **base("ObjectEvent", tick(600)),
                "epcList": [pallet],
                "action": "OBSERVE",
                "bizStep": "shipping",
                "disposition": "in_transit",
                "readPoint": {"id": PLANT_SITE},
            }
            pallet_cases = []


def plant_document(events: list[dict[str, Any]]) -> dict[str, Any]:
    """An EPCISDocument around events that carry their own `@context`."""
    body = [{k: v for k, v in e.items() if k != "@context"} for e in events]
    return {
        "@context": CONTEXT,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": format_time_us(time_us(events[-1]["eventTime"]) if events else 0),
        "epcisBody": {"eventList": body},
    }
