"""The models this server can run: shipped model folders, loaded once, found by digest or task.

Manifests are registered in the ledger before any prediction cites them (`register_shipped`).
Predictions are signed by the operator: the operator's infrastructure ran the model, and the
record says who asked.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api.errors import ApiError
from ledger.errors import NotFound
from ml.errors import MLError
from ml.manifest import ModelManifest, load_manifest
from ml.shipped import MODELS

if TYPE_CHECKING:  # ml.predict imports torch: loaded on the first prediction, not at start-up
    from ml.predict import Predictor

SHIPPED = MODELS  # package data of ml (ml/shipped/models)


def apply_input_policy(policy: str, payload: dict[str, Any]) -> None:
    """Honour the deployment's input policy (Settings.input_policy) for a prediction payload.

    Under "flag" a flagged input is signed with its flag; under "refuse" it is not signed.

    Raises:
        ApiError: 422 `input_flagged` naming the reasons, when the policy is "refuse" and the
            payload's input check flags its input.
    """
    check = payload.get("input_check")
    if policy == "refuse" and check is not None and check["status"] == "flag":
        raise ApiError(
            422,
            "input_flagged",
            "the input does not look like the model's training inputs, and this deployment "
            f"refuses such inputs: {'; '.join(check['reasons'])}",
            input_check=check,
        )


class ModelRunner:
    def __init__(self, model_dirs: list[Path]) -> None:
        self.dirs: dict[str, Path] = {}
        self.manifests: dict[str, ModelManifest] = {}
        for d in model_dirs:
            manifest = load_manifest(d)
            digest = manifest.digest()
            self.dirs[digest] = d
            self.manifests[digest] = manifest
        self._loaded: dict[str, Predictor] = {}
        self._lock = threading.Lock()

    @classmethod
    def shipped(cls, root: Path = SHIPPED) -> ModelRunner:
        dirs = sorted(p.parent for p in root.glob("*/manifest.json")) if root.is_dir() else []
        return cls(dirs)

    def digest_for(self, task: str, digest: str | None = None) -> str:
        """The model to run: `digest` if given (and held here), else this server's model for `task`.

        Raises:
            NotFound: no such model on this server.
        """
        if digest is not None:
            if digest not in self.manifests or self.manifests[digest].task != task:
                raise NotFound(f"no {task} model with manifest digest {digest} on this server")
            return digest
        for d, m in self.manifests.items():
            if m.task == task:
                return d
        raise NotFound(f"this server holds no {task} model")

    def predictor(self, digest: str) -> Predictor:
        """The loaded predictor of a model held here (by `digest_for`), loaded on first use.

        Raises:
            NotFound: no predictor runs this model's task.
            ManifestError: the model directory no longer matches its manifest.
        """
        from ml.predict import predictor_for

        with self._lock:
            if digest not in self._loaded:
                task = self.manifests[digest].task
                try:
                    cls = predictor_for(task)
                except MLError as exc:
                    raise NotFound(f"this server cannot run {task} models") from exc
                self._loaded[digest] = cls.from_dir(self.dirs[digest])
            return self._loaded[digest]
