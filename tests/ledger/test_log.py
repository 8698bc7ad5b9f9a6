"""The log over a real database: appends, proofs against the reference, atomicity, erasure."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.errors import Conflict, NotFound, ProofError, StorageError
from ledger.log import Log
from ledger.merkle import hash_leaf, verify_consistency, verify_inclusion
from tests.ledger.conftest import Plant
from tests.ledger.testonly import reference


def _commitments(log: Log, n: int) -> list[bytes]:
    from ledger.records import commitment

    out = []
    for i in range(n):
        canonical = log.get(i).canonical
        assert canonical is not None
        out.append(commitment(canonical))
    return out


def test_append_and_prove_against_reference(plant: Plant) -> None:
    log = Log(plant.store)
    for batch in (1, 2, 5, 13, 40):
        log.append(plant.accepted(batch))
    n = log.size
    assert n == 61 and log.committed_size() == 61
    leaves = _commitments(log, n)
    assert log.root() == reference.mth(leaves)
    for size in (1, 2, 7, 32, 33, 61):
        root = reference.mth(leaves[:size])
        assert log.root(size) == root
        for index in {0, size // 2, size - 1}:
            proof = log.inclusion_proof(index, size)
            assert proof.hashes == reference.path(index, leaves[:size])
            verify_inclusion(hash_leaf(leaves[index]), index, size, proof.hashes, root)
        cproof = log.consistency_proof(size, n)
        verify_consistency(size, n, cproof.hashes, root, log.root())


def test_frontier_survives_reopen_and_other_writers(plant: Plant) -> None:
    a = Log(plant.store)
    a.append(plant.accepted(5))
    b = Log(plant.store)  # a second process on the same database
    b.append(plant.accepted(3))
    a.append(plant.accepted(4))  # a must notice b's appends, not overwrite them
    assert a.size == 12 and Log(plant.store).size == 12
    assert a.root() == reference.mth(_commitments(a, 12))


def test_duplicates_are_not_logged_twice(plant: Plant) -> None:
    log = Log(plant.store)
    items = plant.accepted(3)
    first = log.append(items)
    again = log.append([items[1], items[1]])
    assert [a.duplicate for a in again] == [True, True]
    assert [a.index for a in again] == [first[1].index] * 2
    assert log.size == 3


def test_failed_append_writes_nothing(plant: Plant) -> None:
    log = Log(plant.store)
    log.append(plant.accepted(4))
    root = log.root()
    with pytest.raises(RuntimeError), log.appending() as app:
        app.add(plant.accepted(3))
        raise RuntimeError("crash mid-batch")
    assert log.size == 4 and log.committed_size() == 4 and log.root() == root
    with pytest.raises(NotFound):
        log.get(4)
    log.append(plant.accepted(1))
    assert log.get(4).index == 4


def test_proofs_refuse_sizes_beyond_the_log(plant: Plant) -> None:
    log = Log(plant.store)
    log.append(plant.accepted(3))
    with pytest.raises(ProofError, match="no tree of size 4"):
        log.inclusion_proof(0, 4)
    with pytest.raises(ProofError, match="outside"):
        log.inclusion_proof(3, 3)


def test_erasure_keeps_every_proof(plant: Plant) -> None:
    log = Log(plant.store)
    log.append(plant.accepted(9))
    cp = log.checkpoint()
    leaves = _commitments(log, 9)
    log.erase(4)
    with pytest.raises(NotFound, match="erased"):
        log.get(4).record()
    with pytest.raises(Conflict):
        log.erase(4)
    assert log.root(9) == cp.root
    for i in range(9):
        proof = log.inclusion_proof(i, 9)
        verify_inclusion(hash_leaf(leaves[i]), i, 9, proof.hashes, cp.root)


def test_checkpoints(plant: Plant) -> None:
    log = Log(plant.store)
    with pytest.raises(Conflict, match="empty"):
        log.checkpoint()
    log.append(plant.accepted(5))
    cp = log.checkpoint()
    assert cp.size == 5 and log.checkpoint() == cp
    log.append(plant.accepted(2))
    cp2 = log.checkpoint()
    assert [c.size for c in log.checkpoints()] == [7, 5]
    assert log.covering_checkpoint(6).size == 7
    log.mark_anchored(
        5, chain_id=1, contract="0x" + "00" * 20, tx_hash="0x" + "11" * 32, block_number=3
    )
    assert log.covering_checkpoint(2).size == 5  # anchored preferred
    assert log.covering_checkpoint(2).anchored and not cp2.anchored


def test_database_errors_are_storage_errors(plant: Plant) -> None:
    log = Log(plant.store)
    plant.store.engine.dispose()
    with pytest.raises(StorageError), plant.store.transaction() as conn:
        conn.exec_driver_sql("SELECT * FROM no_such_table")
    assert log.size == 0


def test_bulk_cache_is_put_back(tmp_path: Path) -> None:
    from ledger.store import Store, sqlite_url

    store = Store.open(sqlite_url(tmp_path / "cache.db"))
    # One pooled connection, so the one that appended is the one asked afterwards.
    store.engine.pool.dispose()
    log = Log(store)
    with log.appending(cache_mib=64) as app:
        assert app.conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == -64 * 1024
    with store.reading() as conn:
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == -2000
    store.close()
