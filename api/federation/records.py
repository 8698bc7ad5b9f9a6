"""What a federation writes into the log, and the digests it commits to.

Two record kinds (docs/federated.md):

`fl_update`, signed by the plant (a participant with the manufacturer role) with its own key:

    {"federation": id, "round": r, "plant": participant, "base_sha256": the global weights it
     started from (round 0: none), "update_sha256": SHA-256 of the exact bytes it sent,
     "n_windows": training windows (round 0: training rows), "validation_rmse": local metric,
     "strategy": "fedavg" | "fedprox", and from round 1 on "base_validation_rmse",
     "n_validation": how the weights it received do on its validation engines}

Rounds: 0 normalisation, 1..R training, R + 1 selection (the plants only report how the last
aggregate validates; the round record names the training round with the best pooled validation
RMSE, `selected_round`, and its aggregate), R + 2 calibration of the selected weights' intervals.
Round 0 is the normalisation round: the "update" is the plant's sufficient statistics (regime
centres and per-regime count, sum and centred sum of squares of each sensor) as canonical JSON,
never a raw row. Rounds 1..R carry weights as safetensors bytes (`ml.federated.update_bytes`).

`fl_round`, signed by the operator (who runs the server):

    {"federation": id, "round": r, "previous": leaf hash of round r - 1's record (round 0:
     null), "base_sha256": the weights sent out (round 0: null), "updates": leaf hashes of the
     fl_update records aggregated, in plant order, "refused": [{"claimed_plant", "reason",
     "update_sha256"}] (answers refused, and plants that did not answer; who an answer refused
     for its signature is from is only its claim), "aggregation": method,
     "aggregate_sha256": SHA-256 of the result (round 0: of the merged preprocessing as
     canonical JSON; the selection round R + 1: of the selected round's aggregate, named in
     "selected_round"; the calibration round R + 2: of the intervals), "missing": the plants
     with no accepted update this round, and in round 0 "plan": the rounds, strategy and
     aggregation settings}

The published model's manifest names the federation and the leaf hashes of its rounds, in
order (`config.federation`); its weights are the selected round's aggregate.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import rfc8785

UPDATE_KIND = "fl_update"
ROUND_KIND = "fl_round"
STATS_ROUND = 0


def sha256_0x(data: bytes) -> str:
    return "0x" + hashlib.sha256(data).hexdigest()


def _plain(value: Any) -> Any:
    """numpy arrays and scalars as JSON lists and numbers (floats kept exactly: RFC 8785 writes
    the shortest round-tripping form)."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()] if value.ndim else _plain(value.item())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def canonical(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON-able value (numpy allowed)."""
    return rfc8785.dumps(_plain(value))


def stats_bytes(stats: Mapping[str, Any]) -> bytes:
    """A plant's round-0 contribution, as the bytes it signs and sends."""
    return canonical(stats)


def stats_from_bytes(data: bytes) -> dict[str, Any]:
    d = json.loads(data)
    for key in ("centers", "count", "sum", "m2"):
        d[key] = np.asarray(d[key], dtype=np.int64 if key == "count" else np.float64)
    return dict(d)


def preprocessing_bytes(prep_dict: Mapping[str, Any]) -> bytes:
    """The merged preprocessing (`Preprocessing.to_dict()`), as round 0's aggregate."""
    return canonical(prep_dict)


def update_payload(
    *,
    federation: str,
    round: int,
    plant: str,
    base_sha256: str | None,
    update_sha256: str,
    n_windows: int,
    validation_rmse: float | None,
    strategy: str,
) -> dict[str, Any]:
    return {
        "federation": federation,
        "round": round,
        "plant": plant,
        "base_sha256": base_sha256,
        "update_sha256": update_sha256,
        "n_windows": int(n_windows),
        "validation_rmse": None if validation_rmse is None else round_metric(validation_rmse),
        "strategy": strategy,
    }


def round_metric(x: float) -> float:
    return float(f"{x:.6g}")


def round_payload(
    *,
    federation: str,
    round: int,
    previous: str | None,
    base_sha256: str | None,
    updates: list[str],
    refused: list[dict[str, Any]],
    aggregation: str,
    aggregate_sha256: str,
) -> dict[str, Any]:
    return {
        "federation": federation,
        "round": round,
        "previous": previous,
        "base_sha256": base_sha256,
        "updates": updates,
        "refused": refused,
        "aggregation": aggregation,
        "aggregate_sha256": aggregate_sha256,
    }
