"""The layers hold (`make lint` runs import-linter with the contract in pyproject.toml), and a
forbidden import breaks the build: the check is run on a copy of the sources with one added."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    for package in ("api", "ledger", "ml"):
        shutil.copytree(
            REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_layers_hold(copy: Path) -> None:
    result = _lint(copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout and "KEPT" in result.stdout


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("ledger/records.py", "import api.config"),  # the library reaching up into the service
        ("ledger/log.py", "from ml.manifest import ModelManifest"),  # sideways, into ml
        ("ml/manifest.py", "import ledger.records"),  # and from ml into the ledger
        ("api/server.py", "from api.routes.models import router"),  # a route module, not main
    ],
)
def test_a_forbidden_import_fails_the_lint(copy: Path, module: str, forbidden: str) -> None:
    path = copy / module
    path.write_text(path.read_text() + f"\n{forbidden}  # noqa\n")
    result = _lint(copy)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and module.replace("/", ".").removesuffix(".py") in (
        result.stdout
    )
