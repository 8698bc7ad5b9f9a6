"""Logging for the long-running commands (`forgeproof up`, `forgeproof sequencer`).

forgeproof's own loggers (`forgeproof.*`) and database migrations report at INFO; everything
else only from WARNING up. Some libraries log their working detail on the root logger (the EPCIS
event-hash generator writes every event it hashes at INFO), which would otherwise bury what
an operator needs to see.
"""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(name)s %(message)s"
INFO_LOGGERS = ("forgeproof", "alembic.runtime.migration")


def configure() -> None:
    logging.basicConfig(level=logging.WARNING, format=FORMAT)
    for name in INFO_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
