"""The federation's server: a Flower strategy that keeps every round in the log.

Flower round 1 is the normalisation round (round 0 in the log): every plant sends its sufficient
statistics, the server merges them into the global preprocessing. Log rounds 1..R train, R + 1
selects the training round to publish (best validation RMSE pooled over the plants' signed
reports), R + 2 calibrates its intervals. In training rounds the server sends the global weights
(safetensors bytes), each plant trains locally and sends its new weights back with an
`fl_update` record it signed over their SHA-256. The server refuses, and lists in the round's
record as refused, any update whose bytes do not match the digest its plant signed, that started
from other weights, that comes twice from one plant, or whose record the ledger does not accept
(a key that is not the plant's registered key, a participant without the manufacturer role, a
bad signature). The rest are appended as signed by their plants, aggregated, and the operator
signs the round's record, which cites them by leaf hash and commits the aggregate's digest.
After the last round the selected model is written with a manifest citing the rounds' records,
registered, and the log anchored; the receipts of every round and update, and the updates'
bytes, go beside the model in `training/` for `forgeproof verify-training`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from api.federation.records import (
    ROUND_KIND,
    STATS_ROUND,
    UPDATE_KIND,
    canonical,
    preprocessing_bytes,
    round_payload,
    sha256_0x,
    stats_from_bytes,
)
from ledger.errors import LedgerError
from ledger.records import Record, hex0x

log = logging.getLogger("forgeproof.federation")

TRAINING_DIR = "training"


@dataclass
class RoundLog:
    """What the server did in one round, for the bundle, the bench and the tests."""

    round: int
    record: str = ""  # the fl_round record's leaf hash
    updates: dict[str, str] = field(default_factory=dict)  # plant -> fl_update leaf hash
    refused: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # plants with no accepted update
    seconds: float = 0.0
    ledger_seconds: float = 0.0  # the server's checking, signing and appending
    plant_ledger_seconds: float = 0.0  # the plants' hashing and signing, summed over plants


def payload_bytes(parameters: Any) -> bytes:
    """The one uint8 tensor a party sends, as bytes."""
    from flwr.common import parameters_to_ndarrays

    arrays = parameters_to_ndarrays(parameters)
    if len(arrays) != 1 or arrays[0].dtype != np.uint8:
        raise ValueError("expected one uint8 tensor of bytes")
    return bytes(arrays[0].tobytes())


def as_parameters(data: bytes) -> Any:
    from flwr.common import ndarrays_to_parameters

    return ndarrays_to_parameters([np.frombuffer(data, dtype=np.uint8)])


class LedgerStrategy:
    """Built lazily as a subclass of Flower's Strategy (`strategy()`), so importing this
    module does not need flwr."""

    def __init__(
        self,
        service: Any,
        *,
        federation: str,
        plants: list[str],
        settings: Any,  # ml.federated.FedSettings
        seed: int,
        out: Path,
        wait_s: float = 120.0,
    ) -> None:
        self.service = service
        self.federation = federation
        self.plants = plants
        self.settings = settings
        self.seed = seed
        self.out = Path(out)
        self.wait_s = wait_s
        self.dep = service.dep
        self.operator = self.dep.operator
        self.signer = self.dep.signer(self.operator)
        self.prep: Any = None
        self.global_bytes: bytes | None = None
        self.previous: str | None = None
        self.rounds: list[RoundLog] = []
        self.kept: dict[str, bytes] = {}  # file name in training/ -> bytes
        self.indices: dict[str, int] = {}  # leaf hash -> log index, for the receipts
        self.conformal: Any = None
        self.aggregates: dict[int, bytes] = {}  # training round -> its aggregate
        self.selected: int | None = None
        self.validation: dict[int, list[tuple[float, int]]] = {}  # ... -> plants' (RMSE, n)
        self._round_started: float | None = None
        self.done = threading.Event()
        self.failure: str | None = None

    @property
    def select_round(self) -> int:
        """After the training rounds 1..R, the plants report how the last aggregate does on their
        validation engines (each training round's answers report the one before); the round
        with the best pooled validation RMSE is the one published (`select_best`)."""
        return int(self.settings.rounds) + 1

    @property
    def calibration_round(self) -> int:
        """Then one round calibrates the published model's intervals."""
        return int(self.settings.rounds) + 2

    @property
    def flower_rounds(self) -> int:
        return self.calibration_round + 1  # Flower counts from 1, the log from round 0

    # ------------------------------------------------------------------ Flower's interface

    def initialize_parameters(self, client_manager: Any) -> Any:
        return as_parameters(b"")  # nothing global before the normalisation round

    def configure_fit(self, server_round: int, parameters: Any, client_manager: Any) -> list[Any]:
        from flwr.common import FitIns

        if not client_manager.wait_for(len(self.plants), timeout=int(self.wait_s)):
            raise RuntimeError(f"{len(self.plants)} plants did not connect in {self.wait_s} s")
        clients = client_manager.sample(num_clients=client_manager.num_available())
        self._round_started = time.perf_counter()
        rnd = server_round - 1
        config: dict[str, Any] = {
            "federation": self.federation,
            "round": rnd,
            "plants": ",".join(self.plants),
            "domain": json.dumps(self.dep.domain.to_json()),
            "plan": json.dumps(asdict(self.settings)),
            "seed": self.seed,
        }
        if rnd == STATS_ROUND:
            params = as_parameters(b"")
        else:
            if rnd == self.calibration_round:
                config["phase"] = "calibrate"
            elif rnd == self.select_round:
                config["phase"] = "select"
            config["preprocessing"] = json.dumps(self.prep.to_dict())
            assert self.global_bytes is not None
            params = as_parameters(self.global_bytes)
        return [(c, FitIns(params, config)) for c in clients]

    def aggregate_fit(
        self, server_round: int, results: list[Any], failures: list[Any]
    ) -> tuple[Any, dict[str, Any]]:
        started = self._round_started or time.perf_counter()
        rnd = server_round - 1
        entry = RoundLog(round=rnd)
        base = None if rnd == STATS_ROUND else sha256_0x(self.global_bytes or b"")
        accepted: list[tuple[str, bytes, int]] = []  # plant, bytes, n
        ledger_s = 0.0
        for _, res in results:
            taken = self._take(res, rnd, base, set(entry.updates))
            ledger_s += taken.seconds
            if taken.refusal is not None:
                entry.refused.append(taken.refusal)
                log.warning("round %d: refused %s: %s", rnd, taken.plant, taken.refusal["reason"])
                continue
            accepted.append((taken.plant, taken.data, taken.n))
            entry.updates[taken.plant] = taken.leaf
            # How the weights this round started from validate (the calibration round's, of
            # the selected weights again, are not a training round's).
            if 1 < rnd <= self.select_round and taken.validation is not None:
                self.validation.setdefault(rnd - 1, []).append(taken.validation)
            entry.plant_ledger_seconds += float((res.metrics or {}).get("ledger_seconds", 0.0))
        for failure in failures:  # lost in transport: no claim to name
            entry.refused.append(_refusal(None, f"failed to answer: {failure}", None))
        # Facts, not claims: the plants of the federation with no accepted update this round.
        entry.missing = [p for p in self.plants if p not in entry.updates]
        accepted.sort(key=lambda a: self.plants.index(a[0]) if a[0] in self.plants else 1e9)
        if rnd == STATS_ROUND:
            aggregation = "merge statistics"
            aggregate = self._merge([d for _, d, _ in accepted])
        elif rnd == self.calibration_round:
            aggregation = "split conformal"
            aggregate = self._calibrate([d for _, d, _ in accepted])
        elif rnd == self.select_round:
            aggregation = "best pooled validation RMSE"
            best = select_best(self.validation)
            aggregate = self.aggregates[best]
        else:
            aggregation = self.settings.aggregation
            aggregate = self._aggregate([(d, n) for _, d, n in accepted])
        t = time.perf_counter()
        payload = round_payload(
            federation=self.federation,
            round=rnd,
            previous=self.previous,
            base_sha256=base,
            updates=[entry.updates[p] for p, _, _ in accepted],
            refused=entry.refused,
            aggregation=aggregation,
            aggregate_sha256=sha256_0x(aggregate),
        )
        payload["missing"] = entry.missing
        if rnd == STATS_ROUND:  # the plan, signed: what verify-training counts rounds against
            payload["plan"] = asdict(self.settings)
        if rnd == self.select_round:
            payload["selected_round"] = best
            self.selected = best
        record = Record.new(
            ROUND_KIND, payload, participant=self.operator, address=self.signer.address
        )
        appended = self.service.submit(record, self.signer.sign(self.dep.domain, record))
        entry.record = hex0x(appended.leaf_hash)
        self.indices[entry.record] = appended.index
        ledger_s += time.perf_counter() - t
        self.previous = entry.record
        if rnd == STATS_ROUND:
            self.global_bytes = self._initial_weights()
            self.kept["initial.safetensors"] = self.global_bytes
        elif rnd not in (self.calibration_round, self.select_round):
            self.global_bytes = aggregate
            self.aggregates[rnd] = aggregate
        elif rnd == self.select_round:
            self.global_bytes = aggregate  # the selected round's: calibrated, then published
        entry.seconds = round(time.perf_counter() - started, 4)
        entry.ledger_seconds = round(ledger_s, 4)
        self.rounds.append(entry)
        log.info(
            "round %d: %d updates, %d refused, record %s",
            rnd,
            len(accepted),
            len(entry.refused),
            entry.record,
        )
        if rnd == self.calibration_round:
            self.done.set()
        return as_parameters(self.global_bytes or b""), {}

    def configure_evaluate(self, server_round: int, parameters: Any, client_manager: Any) -> list:
        return []

    def aggregate_evaluate(
        self, server_round: int, results: list[Any], failures: list[Any]
    ) -> tuple[float | None, dict[str, Any]]:
        return None, {}

    def evaluate(self, server_round: int, parameters: Any) -> None:
        return None

    # ------------------------------------------------------------------ the ledger's part

    def _take(self, res: Any, rnd: int, base: str | None, seen: set[str]) -> Taken:
        """Check one plant's answer and, if it holds, append the record the plant signed."""
        metrics = res.metrics or {}
        claimed = str(metrics.get("plant", "?"))
        try:
            data = payload_bytes(res.parameters)
            record = Record.parse(json.loads(str(metrics["record"])))
            signature = bytes.fromhex(str(metrics["signature"]).removeprefix("0x"))
        except (KeyError, ValueError, LedgerError) as exc:
            return Taken(claimed, refusal=_refusal(claimed, f"unreadable answer: {exc}", None))
        p = record.payload
        plant = record.producer.participant
        digest = sha256_0x(data)
        why = None
        if record.kind != UPDATE_KIND:
            why = f"record kind is {record.kind!r}, expected {UPDATE_KIND!r}"
        elif p.get("federation") != self.federation or p.get("round") != rnd:
            why = f"record is for {p.get('federation')} round {p.get('round')}"
        elif p.get("plant") != plant:
            why = f"record names plant {p.get('plant')!r} but is produced by {plant!r}"
        elif plant not in self.plants:
            why = f"{plant!r} is not a plant of this federation"
        elif plant in seen:
            why = "a second update from this plant in one round"
        elif p.get("update_sha256") != digest:
            why = f"the bytes sent (SHA-256 {digest}) are not the update the plant signed"
        elif p.get("base_sha256") != base:
            why = f"trained from weights {p.get('base_sha256')}, not this round's {base}"
        if why is not None:
            return Taken(plant, refusal=_refusal(plant, why, digest))
        t = time.perf_counter()
        try:
            appended = self.service.submit(record, signature)
        except LedgerError as exc:  # signature, key not registered or revoked, role
            why = f"the ledger refused its record: {exc}"
            return Taken(
                plant, refusal=_refusal(plant, why, digest), seconds=time.perf_counter() - t
            )
        leaf = hex0x(appended.leaf_hash)
        self.indices[leaf] = appended.index
        self.kept[update_file(leaf)] = data
        n = int(p.get("n_windows", 0))
        validation = None
        if "base_validation_rmse" in p:
            validation = (float(p["base_validation_rmse"]), int(p.get("n_validation", 0)))
        return Taken(plant, data, n, leaf, validation=validation, seconds=time.perf_counter() - t)

    def _merge(self, contributions: list[bytes]) -> bytes:
        self.prep, data = merged_preprocessing(contributions)
        return data

    def _aggregate(self, updates: list[tuple[bytes, int]]) -> bytes:
        if not updates:  # nothing accepted: the weights stay as they were
            assert self.global_bytes is not None
            return self.global_bytes
        return aggregated_weights(updates, self.settings.aggregation, self.settings.trim)

    def _calibrate(self, contributions: list[bytes]) -> bytes:
        self.conformal, data = calibrated_intervals(contributions, self.prep)
        return data

    def _initial_weights(self) -> bytes:
        from ml.federated import initial_state, model_config, update_bytes

        return update_bytes(initial_state(model_config(self.prep), self.seed))


# A round's aggregate from its accepted contributions: what the server computes and
# `forgeproof verify-training` recomputes, one definition for both.


def merged_preprocessing(contributions: list[bytes]) -> tuple[Any, bytes]:
    """Round 0: the plants' statistics merged into the global preprocessing (and its bytes)."""
    from ml.federated import merge_stats

    prep = merge_stats([stats_from_bytes(d) for d in contributions])
    return prep, preprocessing_bytes(prep.to_dict())


def aggregated_weights(updates: list[tuple[bytes, int]], method: str, trim: float) -> bytes:
    """A training round: the plants' weights (bytes, training windows) aggregated."""
    from ml.federated import aggregate, load_update, update_bytes

    states = [(load_update(d), n) for d, n in updates]
    return update_bytes(aggregate(states, method, trim=trim))


def calibrated_intervals(contributions: list[bytes], prep: Any) -> tuple[Any, bytes]:
    """The calibration round: split conformal over every plant's held-out residuals, as central
    training calibrates over its held-out engines (ml.tasks.rul)."""
    from ml.tasks.rul import calibrate_intervals

    pred = np.concatenate([json.loads(d)["predicted"] for d in contributions])
    true = np.concatenate([json.loads(d)["true"] for d in contributions])
    conformal = calibrate_intervals(pred, true, prep.cap)
    return conformal, canonical(conformal.to_dict())


def select_best(validation: dict[int, list[tuple[float, int]]]) -> int:
    """The training round whose aggregate has the lowest validation RMSE pooled over the plants'
    reports (the earliest on a tie). `ml.federated.simulate` keeps the same round."""
    from ml.federated import pooled_rmse

    scored = {r: pooled_rmse(v) for r, v in validation.items() if sum(n for _, n in v) > 0}
    if not scored:
        raise RuntimeError("no plant reported a validation RMSE: no round to publish")
    return min(sorted(scored), key=lambda r: scored[r])


@dataclass
class Taken:
    plant: str
    data: bytes = b""
    n: int = 0
    leaf: str = ""
    refusal: dict[str, Any] | None = None
    validation: tuple[float, int] | None = None  # (RMSE, windows) of the weights received
    seconds: float = 0.0


def update_file(leaf: str) -> str:
    """Where an accepted update's bytes are kept in the bundle's training/ folder: by the leaf
    hash of the record its plant signed over them."""
    return f"updates/{leaf}.bin"


def receipt_file(leaf: str) -> str:
    return f"receipts/{leaf}.json"


def _refusal(plant: str | None, reason: str, digest: str | None) -> dict[str, Any]:
    """A refused or missing update, as the round's record lists it. `claimed_plant` is who the
    answer says it is from: for an answer refused for its signature or key, a claim only."""
    return {"claimed_plant": plant, "reason": reason, "update_sha256": digest}


def strategy(base: LedgerStrategy) -> Any:
    """`base` as a Flower Strategy (flwr imported here)."""
    from flwr.server.strategy import Strategy

    class _Ledger(Strategy):
        def __init__(self) -> None:
            super().__init__()
            self.base = base

        def __repr__(self) -> str:
            return f"LedgerStrategy({base.federation}, {base.settings.aggregation})"

        def initialize_parameters(self, client_manager: Any) -> Any:
            return base.initialize_parameters(client_manager)

        def configure_fit(self, server_round: int, parameters: Any, client_manager: Any) -> Any:
            try:
                return base.configure_fit(server_round, parameters, client_manager)
            except Exception as exc:
                base.failure = f"round {server_round - 1}: {exc}"
                raise

        def aggregate_fit(self, server_round: int, results: Any, failures: Any) -> Any:
            try:
                return base.aggregate_fit(server_round, results, failures)
            except Exception as exc:
                base.failure = f"round {server_round - 1}: {exc}"
                log.exception("round %d failed", server_round - 1)
                raise

        def configure_evaluate(
            self, server_round: int, parameters: Any, client_manager: Any
        ) -> Any:
            return base.configure_evaluate(server_round, parameters, client_manager)

        def aggregate_evaluate(self, server_round: int, results: Any, failures: Any) -> Any:
            return base.aggregate_evaluate(server_round, results, failures)

        def evaluate(self, server_round: int, parameters: Any) -> Any:
            return base.evaluate(server_round, parameters)

    return _Ledger()


MODEL_NAME = "rul-federated"


def publish(base: LedgerStrategy, running: Any, out: Path) -> dict[str, Any]:
    """Write the federated model (the selected training round's aggregate, the calibration
    round's intervals) with a manifest citing every round's record, register it, anchor the log, and
    put the receipts and updates beside it in training/. Returns a summary."""
    from api.manifests import register_manifest
    from ledger.receipts import build_receipt
    from ml.federated import load_update, model_config, model_from_state, pooled_rmse
    from ml.manifest import save_model

    if base.global_bytes is None or base.conformal is None or base.failure:
        raise RuntimeError(base.failure or "the federation did not finish its rounds")
    config = model_config(base.prep)
    model = model_from_state(load_update(base.global_bytes), config)
    final = sha256_0x(base.global_bytes)
    manifest = save_model(
        out,
        model.state_dict(),
        name=MODEL_NAME,
        task="rul",
        architecture="RULNet: 1D CNN over a window of cycles (ml/models/rul.py), federated",
        config={
            "model": config.to_dict(),
            "training": {
                **asdict(base.settings),
                "seed": base.seed,
                "plants": base.plants,
                "protocol": "federated over Flower; every round in the log (docs/federated.md)",
            },
            "conformal": base.conformal.to_dict(),
            "federation": {
                "federation": base.federation,
                "rounds": [r.record for r in base.rounds],
                "selected_round": base.selected,
                "final_aggregate_sha256": final,
            },
        },
        training_data={},  # the plants' data never reached the server; their rounds did
        preprocessing={"subset": "federated", **base.prep.to_dict()},
        metrics={
            "validation_rmse": {
                str(r): round(pooled_rmse(v), 4) for r, v in sorted(base.validation.items())
            },
            "rounds": [
                {"round": r.round, "accepted": len(r.updates), "refused": len(r.refused)}
                for r in base.rounds
            ],
        },
    )
    dep = base.dep
    record = Record.new(
        "model_manifest",
        manifest.as_json(),
        participant=base.operator,
        address=base.signer.address,
    )
    register_manifest(base.service, record, base.signer.sign(dep.domain, record))
    t = time.perf_counter()
    if running.sequencer is not None:
        running.sequencer.step(force=True)
    anchor_s = time.perf_counter() - t
    folder = Path(out) / TRAINING_DIR
    for name, data in base.kept.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for leaf, index in base.indices.items():
        path = folder / receipt_file(leaf)
        path.parent.mkdir(parents=True, exist_ok=True)
        receipt = build_receipt(dep.log, index, dep.domain)
        path.write_text(json.dumps(receipt, indent=1, sort_keys=True) + "\n")
    return {
        "model": str(out),
        "manifest_digest": manifest.digest(),
        "final_aggregate_sha256": final,
        "rounds": [asdict(r) for r in base.rounds],
        "anchor_seconds": round(anchor_s, 4),
    }
