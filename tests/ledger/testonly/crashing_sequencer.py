"""`forgeproof sequencer` that ends itself (exit 137, as from SIGKILL) at a named point.

    python -m tests.ledger.testonly.crashing_sequencer POINT sequencer --home H ...

POINT is "after_local_checkpoint", "after_publish", or "" for none; the rest is the command
line of `ledger.cli`. The crash hook is a test seam of `Sequencer`, unset in production.
"""

from __future__ import annotations

import os
import sys

from ledger.cli import main
from ledger.sequencer import Sequencer


def _crash_at(point: str) -> None:
    def hook(name: str) -> None:
        if name == point:
            os._exit(137)

    Sequencer.at_point = hook


if __name__ == "__main__":
    point, sys.argv[1:] = sys.argv[1], sys.argv[2:]
    if point:
        _crash_at(point)
    main()
