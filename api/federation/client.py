"""A plant's side of the federation: a Flower client that signs every update it sends.

The plant's rows never leave it. In round 0 it sends its sufficient statistics; in training
rounds its new weights (safetensors bytes); in the calibration round the residuals of the final
model on its held-out engines (cut as its subset's test file cuts engines). Each time it signs an
`fl_update` record with its own key over the SHA-256 of exactly the bytes it sends, for the
domain the server names (a record signed for another domain verifies against no contract).
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from api.federation.records import (
    STATS_ROUND,
    UPDATE_KIND,
    canonical,
    round_metric,
    sha256_0x,
    stats_bytes,
    update_payload,
)
from ledger.records import Record
from ledger.signing import Domain, Signer

CALIBRATE = "calibrate"
SELECT = "select"


class PlantNode:
    """What the Flower client does, without Flower (so tests can drive it directly)."""

    def __init__(
        self,
        plant: Any,  # ml.federated.PlantClient
        signer: Signer,
        participant: str,
        *,
        poison: float | None = None,
        tamper: bool = False,
    ) -> None:
        self.plant = plant
        self.signer = signer
        self.participant = participant
        self.poison = poison  # tests and drills: scale the honest step (see ml.federated)
        self.tamper = tamper  # tests and drills: send other bytes than the ones signed

    def answer(self, received: bytes, config: dict[str, Any]) -> tuple[bytes, int, dict[str, Any]]:
        """(bytes to send, count, metrics with the signed record) for one round's request."""
        from ml.data.cmapss import Preprocessing
        from ml.federated import FedSettings, load_update, round_settings, update_bytes

        rnd = int(config["round"])
        plants = str(config["plants"]).split(",")
        base = None if rnd == STATS_ROUND else sha256_0x(received)
        rmse: float | None = None
        base_rmse, n_validation = 0.0, 0
        if rnd == STATS_ROUND:
            stats = self.plant.stats()
            data = stats_bytes(stats)
            n = int(np.sum(stats["count"]))
        else:
            if self.plant.prep is None:
                self.plant.prepare(Preprocessing.from_dict(json.loads(config["preprocessing"])))
            state = load_update(received)
            # How the weights received do on this plant's validation engines: the server picks
            # the round to publish from these (signed) figures.
            base_rmse, n_validation = self.plant.evaluate(state)
            if config.get("phase") == CALIBRATE:
                data, n = self._residuals(state)
            elif config.get("phase") == SELECT:
                data, n = b"", 0
            else:
                plan = FedSettings(**json.loads(config["plan"]))
                local = round_settings(
                    plan, rnd - 1, int(config["seed"]), plants.index(self.participant)
                )
                new, n, metrics = self.plant.fit(state, local, poison=self.poison)
                data = update_bytes(new)
                rmse = float(metrics["validation_rmse"])
        t = time.perf_counter()
        payload = update_payload(
            federation=str(config["federation"]),
            round=rnd,
            plant=self.participant,
            base_sha256=base,
            update_sha256=sha256_0x(data),
            n_windows=n,
            validation_rmse=rmse,
            strategy=json.loads(config["plan"])["strategy"],
        )
        if rnd != STATS_ROUND:
            payload["base_validation_rmse"] = round_metric(base_rmse)
            payload["n_validation"] = int(n_validation)
        record = Record.new(
            UPDATE_KIND, payload, participant=self.participant, address=self.signer.address
        )
        domain = Domain.from_json(json.loads(config["domain"]))
        signature = self.signer.sign(domain, record)
        if self.tamper:
            data = data[:-1] + bytes([data[-1] ^ 1]) if data else b"\x00"
        metrics_out = {
            "plant": self.participant,
            "record": json.dumps(record.to_json()),
            "signature": signature.hex(),
            "ledger_seconds": time.perf_counter() - t,  # hashing and signing (the bench)
        }
        return data, n, metrics_out

    def _residuals(self, state: dict[str, np.ndarray]) -> tuple[bytes, int]:
        """Predicted and true RUL at the calibration cuts of this plant's held-out engines (as
        central training calibrates, `ml.tasks.rul.calibration_scores`)."""
        from ml.federated import model_from_state
        from ml.tasks.rul import calibration_scores

        prep, config = self.plant.ready()
        pred, true, _ = calibration_scores(
            model_from_state(state, config),
            prep,
            self.plant.traj,
            self.plant.split["holdout"],
            self.plant.seed,
            self.plant.truncation,
        )
        data = canonical({"plant": self.participant, "predicted": pred.astype(float), "true": true})
        return data, len(true)


def flower_client(node: PlantNode) -> Any:
    """`node` as a Flower NumPyClient."""
    from flwr.client import NumPyClient

    class _Client(NumPyClient):
        def get_parameters(self, config: dict[str, Any]) -> list[np.ndarray]:
            return []

        def fit(self, parameters: list[np.ndarray], config: dict[str, Any]) -> Any:
            received = bytes(parameters[0].tobytes()) if parameters else b""
            data, n, metrics = node.answer(received, config)
            return [np.frombuffer(data, dtype=np.uint8)], n, metrics

        def evaluate(self, parameters: list[np.ndarray], config: dict[str, Any]) -> Any:
            return 0.0, 0, {}

    return _Client().to_client()
