"""Pausing Python's cyclic garbage collector around bulk work.

Capture and recall build tens of thousands of small containers (tuples, dicts, sets) in one
go, none of them cyclic. Every 700 new containers the collector runs, and every tenth of those
runs walks an older generation again: on a heap that already holds ~100k fetched rows or a
captured document, that was a third of a recall's Python time and up to a third of a capture's
(measured, docs/epcis.md). Reference counting still frees everything; the paused collector
resumes when the work ends and catches up on its next run.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """Disable the collector for the block; nested or concurrent uses leave it to the
    outermost one that found it enabled (it is one switch for the whole process)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
