"""The models this server can run: shipped model folders, loaded once, found by digest or task.

Manifests are registered in the ledger before any prediction cites them (`register_shipped`).
Predictions are signed by the operator: the operator's infrastructure ran the model, and the
record says who asked.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ledger.errors import NotFound
from ml.manifest import ModelManifest, load_manifest

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "models"


class ModelRunner:
    def __init__(self, model_dirs: list[Path]) -> None:
        self.dirs: dict[str, Path] = {}
        self.manifests: dict[str, ModelManifest] = {}
        for d in model_dirs:
            manifest = load_manifest(d)
            digest = manifest.digest()
            self.dirs[digest] = d
            self.manifests[digest] = manifest
        self._loaded: dict[str, Any] = {}
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

    def predictor(self, digest: str) -> Any:
        with self._lock:
            if digest not in self._loaded:
                task = self.manifests[digest].task
                if task == "defect":
                    from ml.inspect import DefectPredictor

                    self._loaded[digest] = DefectPredictor.from_dir(self.dirs[digest])
                elif task == "rul":
                    from ml.predict import RULPredictor

                    self._loaded[digest] = RULPredictor.from_dir(self.dirs[digest])
                elif task == "failure":
                    from ml.predict import FailurePredictor

                    self._loaded[digest] = FailurePredictor.from_dir(self.dirs[digest])
                else:
                    raise NotFound(f"this server cannot run {task} models")
            return self._loaded[digest]
