"""Checking submissions: the same verdicts on one process and on many, in input order."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import func, select

from ledger.errors import InputError, InvalidLines, KeyNotAuthorized, LedgerError
from ledger.ingest import (
    Accepted,
    Rejected,
    _Submission,
    append_lines,
    check_batch,
    check_line,
    check_lines,
    check_record,
    parse_line,
    parse_submission,
    sign_and_check,
    submission_json,
)
from ledger.log import Log
from ledger.records import Record, commitment, format_time, unhex
from ledger.registry import KeySnapshot, now_us
from ledger.signing import Signer
from ledger.store.models import LogState, Node, RecordRow
from tests.ledger.conftest import DOMAIN, Plant
from tests.ledger.testonly import reference


def test_parallel_checking_matches_serial(plant: Plant) -> None:
    lines = []
    for i in range(1300):
        rec, sig = plant.record(lot=f"L{i}")
        lines.append(json.dumps(submission_json(rec, sig)).encode())
    lines[5] = b"not json"
    lines[700] = lines[700].replace(
        b'"kind": "note"', b'"kind": "inspection"'
    )  # breaks the signature
    lines.insert(900, b"   \n")  # blank lines are skipped, numbering is kept
    keys = plant.registry.snapshot()
    serial = list(check_lines(lines, DOMAIN, keys, workers=1))
    parallel = list(check_lines(lines, DOMAIN, keys, workers=2, chunk=128))
    assert serial == parallel
    assert len(serial) == 1300
    rejected = [r for r in serial if isinstance(r, Rejected)]
    assert [r.line for r in rejected] == [6, 701]
    assert "malformed JSON" in rejected[0].error and "signature" in rejected[1].error
    assert all(isinstance(a, Accepted) for a in serial if not isinstance(a, Rejected))


def _lines(plant: Plant, n: int, start: int = 0) -> list[bytes]:
    out = []
    for i in range(start, start + n):
        rec, sig = plant.record(lot=f"L{i}")
        out.append(json.dumps(submission_json(rec, sig)).encode())
    return out


def _log_state(plant: Plant) -> tuple[int, int, int]:
    """(log_state size, record rows, node rows) straight from the store."""
    with plant.store.reading() as conn:
        return (
            conn.execute(select(LogState.size)).scalar_one(),
            conn.execute(select(func.count()).select_from(RecordRow)).scalar_one(),
            conn.execute(select(func.count()).select_from(Node)).scalar_one(),
        )


def test_bulk_append_matches_one_by_one(plant: Plant) -> None:
    lines = _lines(plant, 1100)
    lines.insert(3, lines[1])  # a duplicate inside the input
    log = Log(plant.store)
    done = append_lines(log, lines, DOMAIN, plant.registry.snapshot(), workers=2, batch=300)
    assert (done.appended, done.duplicates, done.rejected, done.size) == (1100, 1, [], 1100)
    assert _log_state(plant) == (1100, 1100, 2 * 1100 - (1100).bit_count())
    # Every record where serial checking and one-at-a-time appends would put it.
    keys = plant.registry.snapshot()
    expected = [a for a in check_lines(lines, DOMAIN, keys, workers=1) if isinstance(a, Accepted)]
    assert [log.get(i).leaf_hash for i in (0, 1, 2, 3, 1099)] == [
        expected[i].leaf_hash for i in (0, 1, 2, 4, 1100)
    ]
    stored = [log.get(i).leaf_hash for i in range(1100)]
    assert log.root() == reference.mth(
        [commitment(log.get(i).canonical or b"") for i in range(1100)]
    )
    assert len(set(stored)) == 1100
    again = append_lines(log, lines[:10], DOMAIN, keys, workers=1)
    assert (again.appended, again.duplicates, again.size) == (0, 10, 1100)


def test_bad_lines_append_nothing(plant: Plant) -> None:
    log = Log(plant.store)
    append_lines(log, _lines(plant, 5), DOMAIN, plant.registry.snapshot())
    before = (_log_state(plant), log.root())
    lines = _lines(plant, 1200, start=5)
    lines[1150] = b'{"record": {}, "signature": "0x"}'  # after two batches went to the store
    with pytest.raises(InvalidLines) as caught:
        append_lines(log, lines, DOMAIN, plant.registry.snapshot(), workers=2, batch=500)
    assert caught.value.rejected[0][0] == 1151 and "record" in caught.value.rejected[0][1]
    assert "nothing was appended" in str(caught.value)
    assert (_log_state(plant), log.root(), log.size) == (*before, 5)
    # With skip_invalid the good lines go in and the bad one is reported.
    done = append_lines(log, lines, DOMAIN, plant.registry.snapshot(), skip_invalid=True)
    assert done.appended == 1199 and [r.line for r in done.rejected] == [1151]


def test_checking_stops_at_the_limit_of_bad_lines(plant: Plant) -> None:
    lines = [b"[]"] * 30 + _lines(plant, 3)
    with pytest.raises(InvalidLines) as caught:
        append_lines(Log(plant.store), lines, DOMAIN, plant.registry.snapshot(), max_rejected=20)
    assert caught.value.stopped and len(caught.value.rejected) == 20
    assert _log_state(plant) == (0, 0, 0)


def _append_then_die(url: str, lines: list[bytes], pids: Path, keys: KeySnapshot) -> None:
    from ledger.store import Store

    store = Store.open(url)
    flushed = 0

    def progress(n: int) -> None:
        nonlocal flushed
        flushed += n
        if flushed >= 600:  # three batches are in the store, uncommitted: die like kill -9
            pids.write_text(" ".join(str(p.pid) for p in multiprocessing.active_children()))
            os._exit(137)

    append_lines(Log(store), lines, DOMAIN, keys, workers=2, batch=200, progress=progress)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; nobody may have reaped it yet


def test_a_process_killed_mid_append_leaves_nothing(plant: Plant, tmp_path: Path) -> None:
    lines = _lines(plant, 1000)
    url = plant.store.engine.url.render_as_string(hide_password=False)
    pids = tmp_path / "workers"
    proc = multiprocessing.get_context("spawn").Process(
        target=_append_then_die, args=(url, lines, pids, plant.registry.snapshot())
    )
    proc.start()
    proc.join(120)
    assert proc.exitcode == 137
    assert _log_state(plant) == (0, 0, 0)
    # Its checking processes do not outlive it.
    workers = [int(p) for p in pids.read_text().split()]
    assert len(workers) == 2
    deadline = time.monotonic() + 10
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(_alive, workers))
    # The database is whole and the log carries on from where it was.
    log = Log(plant.store)
    done = append_lines(log, lines, DOMAIN, plant.registry.snapshot())
    assert done.appended == 1000 and _log_state(plant)[0] == 1000


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(st.characters(codec="utf-8"), max_size=6),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(st.characters(codec="utf-8"), max_size=4), children, max_size=3)
    ),
    max_leaves=12,
)


def _slow_parse(line: bytes) -> tuple[Record, bytes]:
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"malformed JSON: {exc}") from None
    return parse_submission(obj)


def _outcome(parse: Any, line: bytes) -> str:
    # repr, not ==: it tells 1 from 1.0 and True, and NaN equals itself.
    try:
        record, signature = parse(line)
    except InputError as exc:
        return f"refused: {exc}"
    return repr((record.model_dump(), signature))


def _same_parse(line: bytes) -> None:
    """parse_line decides as json.loads + validation does, and words refusals the same."""
    assert _outcome(parse_line, line) == _outcome(_slow_parse, line)
    try:
        fast = _Submission.model_validate_json(line)
    except ValidationError:
        return
    # Whatever the one-pass reader accepts, json.loads reads the same way.
    assert _outcome(_slow_parse, line) == repr((fast.record.model_dump(), unhex(fast.signature)))


@settings(max_examples=400)
@given(
    payload=st.dictionaries(st.text(max_size=5), _json_values, max_size=4),
    ascii_only=st.booleans(),
    twist=st.sampled_from(["none", "dup-kind", "dup-payload", "dup-signature", "spaces", "bom"]),
)
def test_one_pass_parser_reads_what_json_loads_reads(
    payload: dict[str, Any], ascii_only: bool, twist: str
) -> None:
    rec = Record.new("note", {"x": 1}, participant="p", address="0x" + "11" * 20).to_json()
    rec["payload"] = payload
    text = json.dumps({"record": rec, "signature": "0x" + "1b" * 65}, ensure_ascii=ascii_only)
    if twist == "dup-kind":  # the first "kind" is overridden by the real one in both readers
        text = text.replace('{"record": {', '{"record": {"kind": "other", ', 1)
    elif twist == "dup-payload":
        text = text.replace('{"record": {', '{"record": {"payload": {"a": 1.5}, ', 1)
    elif twist == "dup-signature":
        text = '{"signature": "0x00", ' + text[1:]
    elif twist == "spaces":
        text = " \t\n" + text.replace(", ", " ,\n ") + " \r\n"
    line = text.encode()
    if twist == "bom":
        line = b"\xef\xbb\xbf" + line  # json.loads accepts it, pydantic does not
    _same_parse(line)


@pytest.mark.parametrize(
    "line",
    [
        b'{"record": {}, "signature": "0x"}',
        b'{"record": {"kind": "a\\ud800"}, "signature": "0x"}',
        b"[1, 2]",
        b"not json",
        b'{"signature": "0x' + b"1b" * 65 + b'", "record": null}',
    ],
)
def test_one_pass_parser_refusals_get_the_precise_complaint(line: bytes) -> None:
    with pytest.raises(InputError) as fast:
        parse_line(line)
    with pytest.raises(InputError) as slow:
        _slow_parse(line)
    assert str(fast.value) == str(slow.value)


def test_batch_checking_gives_each_line_its_own_verdict(plant: Plant) -> None:
    supplier, operator = plant.signers["supplier-a"], plant.signers["operator"]
    stranger = Signer.generate()

    def line(rec: Record, sig: bytes) -> bytes:
        return json.dumps(submission_json(rec, sig)).encode()

    def signed(rec: Record, by: Signer) -> bytes:
        return line(rec, by.sign(DOMAIN, rec))

    ok = Record.new("note", {"n": 1}, participant="supplier-a", address=supplier.address)
    future = Record.new(
        "note",
        {},
        participant="supplier-a",
        address=supplier.address,
        created_at=format_time(datetime.now(UTC) + timedelta(hours=1)),
    )
    borrowed = Record.new("note", {}, participant="operator", address=supplier.address)
    unknown = Record.new("note", {}, participant="supplier-a", address=stranger.address)
    nan = Record.new(
        "note", {"x": float("nan")}, participant="supplier-a", address=supplier.address
    )
    sig = supplier.sign(DOMAIN, ok)
    lines = [
        signed(ok, supplier),  # accepted
        b"{oops",  # malformed JSON
        signed(ok, operator),  # signed by another key than the one it names
        line(ok, sig[:64] + b"\x1d"),  # v is not 27 or 28
        line(ok, b"\x00" * 65),  # nothing recovers
        signed(future, supplier),  # stamped in the future
        signed(borrowed, supplier),  # someone else's key
        signed(unknown, stranger),  # a key nobody registered
        json.dumps({"record": nan.to_json(), "signature": "0x" + "00" * 65}).encode(),
        signed(
            Record.new("note", {}, participant="supplier-a", address=supplier.address), supplier
        ),
    ]
    numbered = list(enumerate(lines, start=7))
    keys, now = plant.registry.snapshot(), now_us()
    one_by_one: list[Accepted | Rejected] = []
    for n, text in numbered:
        try:
            one_by_one.append(check_line(text, DOMAIN, keys, now))
        except LedgerError as exc:
            one_by_one.append(Rejected(n, str(exc)))
    batch = check_batch(numbered, DOMAIN, keys, now)
    assert batch == one_by_one
    kinds = [type(v).__name__ for v in batch]
    assert kinds == ["Accepted"] + ["Rejected"] * 8 + ["Accepted"]
    assert [v.line for v in batch if isinstance(v, Rejected)] == list(range(8, 16))


def test_sign_and_check_gives_what_signing_then_check_record_gives(plant: Plant) -> None:
    """The batch path of EPCIS capture: the same Accepted records (signatures are
    deterministic), and the same refusal for a key that is not the participant's."""
    operator = plant.signers["operator"]
    keys, now = plant.registry.snapshot(), now_us()
    records = [
        Record.new("epcis_event", {"n": i}, participant="operator", address=operator.address)
        for i in range(5)
    ]
    expected = [check_record(r, operator.sign(DOMAIN, r), DOMAIN, keys, now) for r in records]
    assert sign_and_check(records, operator, DOMAIN, keys, now) == expected
    assert sign_and_check([], operator, DOMAIN, keys, now) == []
    stranger = Signer.generate()
    foreign = [
        Record.new("epcis_event", {"n": 1}, participant="operator", address=stranger.address)
    ]
    with pytest.raises(KeyNotAuthorized):
        sign_and_check(foreign, stranger, DOMAIN, keys, now)
