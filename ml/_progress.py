"""Progress bars on stderr (stdout stays clean for JSON), or nothing when disabled."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Advance(Protocol):
    def __call__(self, steps: float = 1, *, note: str | None = None) -> None: ...


@contextmanager
def progress(description: str, total: float | None, *, enabled: bool = True) -> Iterator[Advance]:
    """Yield `advance(steps=1, note=None)`; `note` replaces the text after the bar."""
    if not enabled:

        def quiet(steps: float = 1, *, note: str | None = None) -> None:
            return None

        yield quiet
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=total, note="")

        def advance(steps: float = 1, *, note: str | None = None) -> None:
            if note is None:
                bar.advance(task, steps)
            else:
                bar.update(task, advance=steps, note=note)

        yield advance
