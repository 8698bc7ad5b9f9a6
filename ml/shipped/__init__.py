"""The models and samples that ship inside the package (package data, found through
`importlib.resources`, so an installed wheel has them as much as a checkout does).

    model_dir("rul-fd001")                  # the directory of a shipped model
    shipped_models()                        # {name: directory} of every one
    sample("cmapss/test_FD001.txt")         # a shipped input sample (see samples/*/README.md)
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from ml.errors import MLInputError


def _root(name: str) -> Path:
    found = files(__name__) / name
    if not isinstance(found, Path):  # a zip import: unpack before use instead
        raise MLInputError(f"shipped {name} are not on a file system here: {found}")
    return found


MODELS = _root("models")
SAMPLES = _root("samples")


def shipped_models() -> dict[str, Path]:
    """Every shipped model, by name (its directory's name)."""
    return {p.parent.name: p.parent for p in sorted(MODELS.glob("*/manifest.json"))}


def model_dir(name: str) -> Path:
    """A shipped model's directory.

    Raises:
        MLInputError: no such shipped model.
    """
    models = shipped_models()
    if name not in models:
        raise MLInputError(f"no shipped model {name!r}; shipped: {', '.join(models)}")
    return models[name]


def sample(path: str) -> Path:
    """A shipped sample, by its path under samples/.

    Raises:
        MLInputError: no such sample.
    """
    found = SAMPLES / path
    if not found.exists():
        raise MLInputError(f"no shipped sample {path!r} under {SAMPLES}")
    return found
