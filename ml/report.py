"""`forgeproof ml report`: every ML figure the docs quote, from a script.

Each section is a task module's pair of functions:

    report(data: Path, *, seeds: Sequence[int] | None, quick: bool, progress: bool) -> dict
        retrain / re-evaluate what the section needs and return its results (JSON-able; per-seed
        results under "runs", plus whatever the tables need). `seeds=None`: the section's
        stated seeds. `quick`: a smoke run (fewer epochs / seeds), never committed.
    report_tables(results: dict) -> dict[str, str]
        markdown tables, by name, rendered from those results alone.

The results are committed as `docs/results/<section>.json`; a doc quotes a table between

    <!-- report:<section>/<name> -->
    ...generated, do not edit...
    <!-- /report:<section>/<name> -->

and `render_docs` rewrites those blocks from the committed results (a test checks that the
docs are exactly what the results render to, so no figure in them is typed in by hand).
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ml.errors import MLInputError

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results"
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))

# section -> module with report() and report_tables()
SECTIONS: dict[str, str] = {
    "rul": "ml.tasks.rul",
    "failure": "ml.tasks.failure",
    "defect": "ml.tasks.defect",
    "federated": "ml.federated",
    "demand": "ml.tasks.demand",
}

_BLOCK = re.compile(
    r"(<!-- report:(?P<name>[a-z0-9_]+/[a-z0-9_]+) -->\n)(?P<body>.*?)(<!-- /report:(?P=name) -->)",
    re.DOTALL,
)


def _module(section: str) -> Any:
    if section not in SECTIONS:
        raise MLInputError(f"unknown report section {section!r}; expected {', '.join(SECTIONS)}")
    return importlib.import_module(SECTIONS[section])


def run_section(
    section: str,
    data: Path,
    *,
    seeds: Sequence[int] | None = None,
    quick: bool = False,
    progress: bool = True,
    results_dir: Path = RESULTS,
) -> Path:
    """Recompute one section and write its results file; returns the file's path."""
    results = _module(section).report(data, seeds=seeds, quick=quick, progress=progress)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{section}.json"
    path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    return path


def load_results(section: str, results_dir: Path = RESULTS) -> dict[str, Any]:
    path = results_dir / f"{section}.json"
    if not path.is_file():
        raise MLInputError(f"{path}: no results; run `forgeproof ml report --section {section}`")
    return dict(json.loads(path.read_text()))


def tables(results_dir: Path = RESULTS) -> dict[str, str]:
    """Every table, as `section/name` -> markdown, from the committed results."""
    out: dict[str, str] = {}
    for section in SECTIONS:
        if not (results_dir / f"{section}.json").is_file():
            continue
        render: Callable[[dict[str, Any]], dict[str, str]] = _module(section).report_tables
        for name, text in render(load_results(section, results_dir)).items():
            out[f"{section}/{name}"] = text.rstrip("\n") + "\n"
    return out


def render_text(text: str, rendered: dict[str, str], *, source: str = "") -> str:
    """`text` with every report block replaced by its rendered table.

    Raises:
        MLInputError: a block names a table no section renders.
    """

    def sub(m: re.Match[str]) -> str:
        name = m["name"]
        if name not in rendered:
            raise MLInputError(f"{source}: block report:{name} names no table the report renders")
        return m.group(1) + rendered[name] + m.group(4)

    return _BLOCK.sub(sub, text)


def render_docs(results_dir: Path = RESULTS, docs: Sequence[Path] = DOCS) -> list[Path]:
    """Rewrite the report blocks of the docs from the results; returns the files changed."""
    rendered = tables(results_dir)
    changed = []
    for path in docs:
        text = path.read_text()
        new = render_text(text, rendered, source=str(path))
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


def stale_blocks(results_dir: Path = RESULTS, docs: Sequence[Path] = DOCS) -> list[str]:
    """`file: report:name` for every block whose text differs from what the results render."""
    rendered = tables(results_dir)
    stale = []
    for path in docs:
        for m in _BLOCK.finditer(path.read_text()):
            if rendered.get(m["name"]) != m["body"]:
                stale.append(f"{path.relative_to(ROOT)}: report:{m['name']}")
    return stale
