"""ledger/logs.py: what the long-running commands print."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from ledger import logs


@pytest.fixture
def fresh_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (
        root.level,
        root.handlers[:],
        {n: logging.getLogger(n).level for n in logs.INFO_LOGGERS},
    )
    yield
    root.setLevel(saved[0])
    root.handlers = saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def test_forgeproof_reports_at_info_and_chatty_libraries_do_not(fresh_logging: None) -> None:
    # basicConfig does nothing while the root has handlers (pytest adds its own per test).
    logging.getLogger().handlers = []
    logs.configure()
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler, logging.StreamHandler)
    out = io.StringIO()
    handler.setStream(out)
    logging.getLogger("forgeproof.sequencer").info("checkpoint 12 published")
    logging.info("#events = 1")  # the EPCIS hash generator, on the root logger
    logging.getLogger("somelib").info("detail")
    logging.getLogger("somelib").warning("something odd")
    text = out.getvalue()
    assert "checkpoint 12 published" in text
    assert "something odd" in text
    assert "#events" not in text and "detail" not in text
