"""Load a shipped model once, then turn inputs into ledger-ready prediction payloads.

    predictor = RULPredictor.from_dir(model_dir("rul-fd001"))  # ml.shipped.model_dir
    record = predictor.predict_window(rows)          # rows: (n_cycles, 26) raw C-MAPSS rows

    predictor = FailurePredictor.from_dir(model_dir("failure-ai4i"))  # ml.shipped.model_dir
    record = predictor.predict_one(product_type="M", air_temperature=298.1, ...)

Every shipped predictor (these two and `ml.inspection.DefectPredictor`) satisfies `Predictor`,
and `predictor_for(task)` finds the class for a manifest's task:

    predictor = predictor_for(manifest.task).from_dir(model_dir)

A payload is a plain JSON-able dict; the ledger wraps it into a signed record. It cites the
model by `model_manifest_digest` and the exact input by `input_digest`, the 0x-prefixed
SHA-256 of the input's float32 little-endian bytes in C order:
  * rul: the raw rows the prediction depends on — the engine's first `baseline_cycles` rows and
    its last `window` rows, each once, oldest first (all rows for a short engine) — with all 26
    columns in file order (unit, cycle, settings, sensors), each parsed as a decimal number and
    rounded to float32; `input_shape` gives (rows, 26);
  * failure: (type index L=0/M=1/H=2, air temperature, process temperature, rotational speed,
    torque, tool wear), 6 values as float32.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, TypeVar, runtime_checkable

import numpy as np
import torch

from ml._progress import progress
from ml.conformal import ConformalIntervals
from ml.data import ai4i
from ml.data.cmapss import N_COLUMNS, Preprocessing, Trajectories, trajectories_from_rows
from ml.errors import ManifestError, MLInputError
from ml.explain import integrated_gradients, summarize_features, summarize_window
from ml.forecast import DemandPredictor
from ml.inspection import DefectPredictor
from ml.manifest import ModelManifest, input_digest, load_manifest, load_tensors
from ml.models.failure import FailureConfig, FailureEnsemble
from ml.models.rul import RULConfig, RULNet
from ml.profile import RowProfile, WindowProfile, load_profile


def rul_predictions(
    model: RULNet, inputs: np.ndarray, *, cap: float, batch: int = 4096
) -> np.ndarray:
    """Predicted RUL for preprocessed windows (n, window, F), clipped to [0, cap]."""
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(inputs), batch):
            out.append(model(torch.from_numpy(inputs[i : i + batch])).numpy())
    pred = np.concatenate(out) if out else np.zeros(0, np.float32)
    return np.clip(pred, 0.0, cap)


def failure_probabilities(
    model: FailureEnsemble, scaler: ai4i.Scaler, raw: np.ndarray, *, batch: int = 8192
) -> np.ndarray:
    """Failure probability for raw rows (n, 6): type index, then the 5 process values."""
    x = scaler.transform(ai4i.engineer(np.asarray(raw, dtype=np.float64)))
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            out.append(model(torch.from_numpy(x[i : i + batch])).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


_P = TypeVar("_P")


def _load(model_dir: Path, task: str) -> tuple[ModelManifest, dict[str, Any]]:
    manifest = load_manifest(Path(model_dir))
    if manifest.task != task:
        raise ManifestError(f"{model_dir}: a {manifest.task!r} model, expected a {task!r} model")
    return manifest, load_tensors(Path(model_dir))


def _profile(model_dir: Path, manifest: ModelManifest, kind: type[_P]) -> _P | None:
    """The model's input profile (None without one), checked to be of the expected kind."""
    profile = load_profile(Path(model_dir), manifest.input_profile_sha256)
    if profile is not None and not isinstance(profile, kind):
        raise ManifestError(f"{model_dir}: input profile is a {profile.kind!r} profile")
    return profile


@runtime_checkable
class Predictor(Protocol):
    """What every shipped predictor offers: built once from a model directory, it cites the
    manifest it was loaded from. How it is then asked depends on its task (`predict_window`,
    `predict_one`, `predict_image`), so a caller that predicts knows which class it holds."""

    task: ClassVar[str]  # the manifest task this class runs: rul | failure | defect | demand

    @property
    def manifest(self) -> ModelManifest: ...

    @property
    def manifest_digest(self) -> str: ...

    @classmethod
    def from_dir(cls, model_dir: Path) -> Self:
        """Load and verify a model directory (weights digest, task, config).

        Raises:
            ManifestError: missing files, digest mismatch, or not a model of this task.
        """
        ...


class RULPredictor:
    """A loaded remaining-useful-life model with its preprocessing and intervals."""

    task: ClassVar[str] = "rul"

    def __init__(
        self,
        *,
        manifest: ModelManifest,
        model: RULNet,
        prep: Preprocessing,
        conformal: ConformalIntervals,
        profile: WindowProfile | None = None,
    ) -> None:
        self.manifest = manifest
        self.manifest_digest = manifest.digest()
        self.model = model.eval()
        self.prep = prep
        self.conformal = conformal
        self.profile = profile  # None: no input check (a model without a profile)

    @classmethod
    def from_dir(cls, model_dir: Path) -> RULPredictor:
        """Load and verify (weights digest) a model directory written by `train --task rul`.

        Raises:
            ManifestError: missing files, digest mismatch, or not a RUL model.
        """
        manifest, tensors = _load(model_dir, cls.task)
        model = RULNet(RULConfig.from_dict(manifest.config["model"]))
        model.load_state_dict(tensors)
        return cls(
            manifest=manifest,
            model=model,
            prep=Preprocessing.from_dict(manifest.preprocessing),
            conformal=ConformalIntervals.from_dict(manifest.config["conformal"]),
            profile=_profile(model_dir, manifest, WindowProfile),
        )

    def predict_inputs(self, inputs: np.ndarray, *, batch: int = 4096) -> np.ndarray:
        """Predicted RUL for preprocessed windows (n, window, F), clipped to [0, cap]."""
        return rul_predictions(self.model, inputs, cap=self.prep.cap, batch=batch)

    def predict_window(
        self, rows: np.ndarray, *, asset: str | None = None, source: str = "input"
    ) -> dict[str, Any]:
        """Payload for one engine from its raw rows, oldest first.

        `rows` is either file rows (n_cycles, 26: unit, cycle, 3 settings, 21 sensors) or what
        the service receives, consecutive cycles without unit and cycle columns (n_cycles, 24),
        which are then numbered 1..n: the history from the engine's first cycle. The model
        uses the first `baseline_cycles` rows and the last `window` rows; engines shorter than
        the window are padded. `asset` names the engine in the payload.

        Raises:
            MLInputError: wrong shape, NaN, non-integer unit/cycle, more than one engine, or
                fewer than `min_cycles` cycles. Messages name `source` and the row; for
                missing values, also the input check's reasons.
        """
        arr = np.asarray(rows, dtype=np.float64)
        if arr.ndim == 2 and arr.shape[1] == N_COLUMNS - 2:
            n = len(arr)
            index = np.stack([np.ones(n), np.arange(1, n + 1)], axis=1)  # unit 1, cycles 1..n
            arr = np.concatenate([index, arr], axis=1)
        try:
            traj = trajectories_from_rows(arr, source)
        except MLInputError as exc:
            # No model scores a gap: refused under any input policy, with the check's reasons.
            gaps = arr.ndim == 2 and arr.shape[1] == N_COLUMNS and bool(np.isnan(arr).any())
            if self.profile is None or not gaps:
                raise
            reasons = "; ".join(self.profile.check_window(arr).reasons)
            raise MLInputError(f"{exc}; input check: {reasons}") from None
        if len(traj.engine_ids()) != 1:
            raise MLInputError(
                f"{source}: rows of {len(traj.engine_ids())} engines, expected one engine"
            )
        payload = next(self.predict_trajectories(traj))
        if asset is not None:
            payload["asset_id"] = asset
        return payload

    def predict_trajectories(
        self, traj: Trajectories, *, progress_bar: bool = False
    ) -> Iterator[dict[str, Any]]:
        """One payload per engine in `traj` (its last window), in file order.

        Each engine is run on its own (forward pass and integrated gradients), so a payload is
        bit-for-bit the same whether the engine came alone or in a file of many: batched
        kernels may sum in a different order, which would change the attribution digest.

        With an input profile, each payload carries `input_check` (ml.profile), and rows off
        the model's operating conditions are normalised with the nearest one and flagged,
        rather than refused: the deployment's policy decides whether a flag is signed.
        """
        strict = self.profile is None
        last = self.prep.last_windows(traj, strict=strict)
        sensors = self.prep.channel_sensors
        slices = traj.engine_slices()
        with progress("predicting", len(last.units), enabled=progress_bar) as advance:
            for i, unit in enumerate(last.units):
                x = last.inputs[i : i + 1]  # (1, window, channels)
                pred = self.predict_inputs(x)
                attributions, _ = integrated_gradients(self.model, x)
                intervals = {}
                for lv in self.conformal.levels:
                    lo, hi = self.conformal.interval(pred, lv)
                    intervals[str(round(lv * 100))] = [
                        round(float(lo[0]), 3),
                        round(float(hi[0]), 3),
                    ]
                payload = {
                    "kind": "rul_prediction",
                    "model": self.manifest.name,
                    "model_manifest_digest": self.manifest_digest,
                    "asset_id": str(unit),
                    "source": traj.path.name,
                    "last_cycle": int(last.raw[i][-1, 1]),
                    "input_digest": input_digest(last.raw[i]),
                    "input_shape": list(last.raw[i].shape),
                    "rul": round(float(pred[0]), 3),
                    "intervals": intervals,
                    "explanation": summarize_window(attributions[0], sensors, last.cycles[i]),
                }
                if self.profile is not None:
                    # The rows the engine's input depends on (baseline and window), as float64.
                    rows = traj.rows[slices[unit]]
                    rows = rows[self.prep.used_rows(len(rows))]
                    payload["input_check"] = self.profile.check_window(rows).to_dict()
                yield payload
                advance()


class FailurePredictor:
    """A loaded machine-failure model with its scaler and decision threshold."""

    task: ClassVar[str] = "failure"

    def __init__(
        self,
        *,
        manifest: ModelManifest,
        model: FailureEnsemble,
        scaler: ai4i.Scaler,
        threshold: float,
        profile: RowProfile | None = None,
    ) -> None:
        self.manifest = manifest
        self.manifest_digest = manifest.digest()
        self.model = model.eval()
        self.scaler = scaler
        self.threshold = threshold
        self.profile = profile  # None: no input check (a model without a profile)

    @classmethod
    def from_dir(cls, model_dir: Path) -> FailurePredictor:
        """Load and verify a model directory written by `train --task failure`.

        Raises:
            ManifestError: missing files, digest mismatch, or not a failure model.
        """
        manifest, tensors = _load(model_dir, cls.task)
        model = FailureEnsemble(FailureConfig.from_dict(manifest.config["model"]))
        model.load_state_dict(tensors)
        return cls(
            manifest=manifest,
            model=model,
            scaler=ai4i.Scaler.from_dict(manifest.preprocessing["scaler"]),
            threshold=float(manifest.config["threshold"]),
            profile=_profile(model_dir, manifest, RowProfile),
        )

    def inputs(self, raw: np.ndarray) -> np.ndarray:
        """Model inputs (n, n_features) from raw rows (n, 6)."""
        return self.scaler.transform(ai4i.engineer(raw))

    def predict_proba(self, raw: np.ndarray, *, batch: int = 8192) -> np.ndarray:
        """Failure probability for raw rows (n, 6): type index, then the 5 process values."""
        return failure_probabilities(self.model, self.scaler, raw, batch=batch)

    def predict_rows(
        self, rows: ai4i.Rows, *, progress_bar: bool = False
    ) -> Iterator[dict[str, Any]]:
        """One payload per row, in file order (each row run on its own, see RUL)."""
        x = self.inputs(rows.raw)
        checks = self.profile.check_rows(rows.raw) if self.profile is not None else None
        with progress("predicting", len(rows), enabled=progress_bar) as advance:
            for i in range(len(rows)):
                with torch.inference_mode():
                    prob = float(self.model(torch.from_numpy(x[i : i + 1]))[0])
                attributions, _ = integrated_gradients(self.model, x[i : i + 1])
                payload = {
                    "kind": "failure_risk",
                    "model": self.manifest.name,
                    "model_manifest_digest": self.manifest_digest,
                    "asset_id": rows.ids[i],
                    "source": rows.path.name,
                    "line": int(rows.lines[i]),
                    "input_digest": input_digest(rows.raw[i]),
                    "failure_probability": round(prob, 6),
                    "threshold": round(self.threshold, 6),
                    "failure_predicted": bool(prob >= self.threshold),
                    "explanation": summarize_features(attributions[0], ai4i.FEATURE_NAMES),
                }
                if checks is not None:
                    payload["input_check"] = checks[i].to_dict()
                yield payload
                advance()

    def predict_one(
        self,
        *,
        asset_id: str,
        product_type: str,
        air_temperature: float,
        process_temperature: float,
        rotational_speed: float,
        torque: float,
        tool_wear: float,
    ) -> dict[str, Any]:
        """Payload for one machine state (units as in AI4I: K, K, rpm, Nm, min).

        Raises:
            MLInputError: the type is not L/M/H or a value is not finite.
        """
        values = [air_temperature, process_temperature, rotational_speed, torque, tool_wear]
        if product_type not in ai4i.TYPES:
            raise MLInputError(f"product type is {product_type!r}, expected one of L, M, H")
        for name, value in zip(ai4i.PROCESS_COLUMNS, values, strict=True):
            if not math.isfinite(float(value)):
                raise MLInputError(f"{name} is {value!r}, expected a finite number")
        rows = ai4i.Rows(
            path=Path("input"),
            ids=[asset_id],
            raw=np.array([[ai4i.TYPES.index(product_type), *values]], dtype=np.float64),
            labels=None,
            lines=np.array([1]),
        )
        return next(self.predict_rows(rows))


_SHIPPED: tuple[type[Predictor], ...] = (
    RULPredictor,
    FailurePredictor,
    DefectPredictor,
    DemandPredictor,
)
PREDICTORS: dict[str, type[Predictor]] = {p.task: p for p in _SHIPPED}  # task -> class


def predictor_for(task: str) -> type[Predictor]:
    """The predictor class for a manifest's `task`.

    Raises:
        MLInputError: no predictor runs this task.
    """
    try:
        return PREDICTORS[task]
    except KeyError:
        raise MLInputError(
            f"no predictor for task {task!r}; expected one of {', '.join(PREDICTORS)}"
        ) from None
