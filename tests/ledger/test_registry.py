"""The registry: the contract holds it, the database mirrors it, a changed mirror is caught.

- `KeySnapshot.check`: what the log accepts at append time (bound, unrevoked, role allows kind);
- `Registry.sync` / `check`: the mirror follows the chain's events and refuses to agree with a
  database edited behind its back (finding 1 of issue #13, as an attack);
- `RegistryWriter`: changes go to the contract first; each refusal is the contract's, named,
  and leaves chain and mirror as they were;
- a stateful property test drives the contract with random registry operations against a
  small Python model of its rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from ledger.chain import ChainClient
from ledger.errors import (
    Conflict,
    InputError,
    KeyNotAuthorized,
    NotFound,
    NotPermitted,
    RegistryMismatch,
    SignatureError,
)
from ledger.registry import Registry, RegistryWriter, check_kind, roles_for_kind
from ledger.signing import Signer, sign_key_binding, sign_key_change
from ledger.store import Store
from ledger.store.models import ParticipantRow, RegistryEventRow
from tests.ledger.testonly.registry import StaticRegistry, forge_key


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ChainClient]:
    with ChainClient.embedded(tmp_path / "chain") as c:
        yield c


@pytest.fixture
def writer(store: Store, chain: ChainClient) -> RegistryWriter:
    registry = Registry(store)
    registry.sync(chain)
    return RegistryWriter(registry, chain)


def rows(store: Store) -> list[tuple[object, ...]]:
    with store.reading() as conn:
        return [tuple(r) for r in conn.execute(select(RegistryEventRow)).all()]


# ------------------------------------------------------------------------------- snapshot
def test_what_the_log_accepts_at_append_time() -> None:
    reg = StaticRegistry()
    reg.add_participant("acme", "ACME", ["supplier"])
    reg.add_participant("line", "Line", ["manufacturer"])
    reg.add_participant("tuv", "TUV", ["auditor"])
    ka, kl, kt = (Signer.generate().address for _ in range(3))
    for pid, key in (("acme", ka), ("line", kl), ("tuv", kt)):
        reg.add_key(pid, key)
    keys = reg.snapshot()
    keys.check("acme", ka, "supplier_record")
    keys.check("line", kl, "prediction")
    with pytest.raises(KeyNotAuthorized, match="not registered"):
        keys.check("acme", Signer.generate().address, "supplier_record")
    with pytest.raises(KeyNotAuthorized, match="belongs to acme, not to line"):
        keys.check("line", ka, "supplier_record")
    # Kinds by role: suppliers do not sign what a model said; auditors sign nothing.
    with pytest.raises(NotPermitted, match="may not sign prediction records"):
        keys.check("acme", ka, "prediction")
    with pytest.raises(NotPermitted, match="may not sign inspection"):
        keys.check("acme", ka, "inspection")
    with pytest.raises(NotPermitted, match=r"tuv \(auditor\) may not sign note records"):
        keys.check("tuv", kt, "note")
    assert roles_for_kind("model_manifest") == {"operator", "model_publisher"}
    # A revoked key signs nothing new; a participant without roles neither.
    reg.revoke_key(ka)
    with pytest.raises(KeyNotAuthorized, match="revoked at block"):
        reg.snapshot().check("acme", ka, "supplier_record")
    reg.set_roles("line", [])
    with pytest.raises(NotPermitted, match=r"line \(no role\)"):
        reg.snapshot().check("line", kl, "note")
    check_kind("line", frozenset({"operator"}), "prediction")


# ------------------------------------------------------------------------------- the mirror
def test_the_mirror_follows_the_chain(store: Store, writer: RegistryWriter) -> None:
    acme = writer.enrol("acme", "ACME", ["supplier"])
    writer.rotate_held("acme", acme)
    writer.set_roles("acme", ["supplier", "manufacturer"])
    # What the mirror holds is what the chain's events say, and the contract's storage agrees.
    fresh = Registry(store)  # another process: reads the database only
    assert not fresh.synced
    assert fresh.state() == writer.registry.state()
    fresh.check(writer.chain)
    keys = fresh.keys("acme")
    assert [k.active for k in keys] == [False, True]
    assert keys[0].revoked_from == keys[1].valid_from  # rotation: one block
    assert keys[1].added_by == acme.address  # the old key consented
    assert fresh.participant("acme").roles == {"supplier", "manufacturer"}
    history = fresh.state().role_history["acme"]
    assert [sorted(r) for _, r in history] == [["supplier"], ["manufacturer", "supplier"]]
    with store.reading() as conn:
        table = conn.execute(select(ParticipantRow.id, ParticipantRow.roles)).all()
    assert sorted(table) == [("acme", "manufacturer,supplier"), ("operator", "operator")]
    # A sync that finds nothing new writes nothing.
    before = rows(store)
    writer.registry.sync(writer.chain)
    assert rows(store) == before


def test_a_key_added_to_the_database_alone_is_caught(store: Store, writer: RegistryWriter) -> None:
    """Issue #13, finding 1: anyone who can write the operator's database adds a key for a
    supplier and signs records 'by' it. The mirror is checked against the chain: refused."""
    writer.enrol("acme", "ACME", ["supplier"])
    forger = forge_key(store, "acme")
    # A process that trusts the database alone would accept the forger's records ...
    Registry(store).snapshot().check("acme", forger.address, "supplier_record")
    # ... a sync against the chain refuses the mirror, and writes nothing.
    before = rows(store)
    with pytest.raises(RegistryMismatch, match="in the mirror, not on chain"):
        Registry(store).sync(writer.chain)
    assert rows(store) == before
    # The chain's own verdict on that key.
    with pytest.raises(KeyNotAuthorized, match="not registered on chain"):
        writer.chain.require_key("acme", forger.address)
    # Repair rewrites the mirror from the chain.
    Registry(store).sync(writer.chain, repair=True)
    with pytest.raises(KeyNotAuthorized):
        Registry(store).snapshot().check("acme", forger.address, "supplier_record")


@pytest.mark.parametrize("edit", ["swap key", "un-revoke", "delete", "future block"])
def test_every_edit_of_the_mirror_is_caught(
    store: Store, writer: RegistryWriter, edit: str
) -> None:
    acme = writer.enrol("acme", "ACME", ["supplier"])
    writer.rotate_held("acme", acme)
    registry = writer.registry  # a long-running process: it has synced before the edit
    with store.transaction() as conn:
        if edit == "swap key":
            conn.execute(
                update(RegistryEventRow)
                .where(RegistryEventRow.key == acme.address, RegistryEventRow.name == "KeyAdded")
                .values(key=Signer.generate().address)
            )
        elif edit == "un-revoke":
            conn.execute(delete(RegistryEventRow).where(RegistryEventRow.name == "KeyRevoked"))
        elif edit == "delete":
            conn.execute(
                delete(RegistryEventRow).where(RegistryEventRow.name == "ParticipantRegistered")
            )
        else:
            conn.execute(
                update(RegistryEventRow)
                .where(RegistryEventRow.name == "KeyRevoked")
                .values(block_number=10**9)
            )
    with pytest.raises(RegistryMismatch):
        registry.sync(writer.chain)
    with pytest.raises(RegistryMismatch):
        Registry(store).sync(writer.chain)
    # The long-running process keeps deciding from what it checked, not from the edit.
    assert not registry.state().keys[acme.address].active
    if edit == "delete":  # a mirror that contradicts itself is refused even without a chain
        with pytest.raises(RegistryMismatch, match="before it was registered"):
            Registry(store).state()


def test_two_processes_sync_together(store: Store, writer: RegistryWriter) -> None:
    other = Registry(store)
    other.sync(writer.chain)
    writer.enrol("acme", "ACME", ["supplier"])  # this process writes the new events ...
    other.sync(writer.chain)  # ... the other finds them already there, and agrees
    writer.enrol("beta", "Beta", ["auditor"])
    third = Registry(store)
    third.sync(writer.chain)
    other.sync(writer.chain)
    assert other.state() == third.state() == writer.registry.state()


# ------------------------------------------------------------------------------- writes
def test_refusals_are_named_and_change_nothing(store: Store, writer: RegistryWriter) -> None:
    acme = writer.enrol("acme", "ACME", ["supplier"])
    domain = writer.domain
    chain = writer.chain

    def state() -> tuple[object, ...]:
        return (rows(store), chain.participants(), writer.registry.state())

    before = state()
    new = Signer.generate()
    nonce = writer.nonce("acme")
    proof = sign_key_binding(new, domain, "acme", new.address, nonce)
    refusals = [
        (Conflict, "already exists", lambda: writer.enrol("acme", "Again", ["supplier"])),
        (InputError, "unknown role", lambda: writer.enrol("x", "X", ["janitor"])),
        (InputError, "at least one role", lambda: writer.enrol("x", "X", [])),
        (NotFound, "no participant 'nobody'", lambda: writer.add_key("nobody", new.address, proof)),
        (NotFound, "not registered", lambda: writer.revoke_key(new.address)),
        # The operator alone may not bind a key to a participant that has one.
        (NotPermitted, "consent", lambda: writer.add_key("acme", new.address, proof)),
        (
            SignatureError,
            "not a valid key of 'acme'",
            lambda: writer.add_key(
                "acme",
                new.address,
                proof,
                sign_key_change(Signer.generate(), domain, "acme", nonce, add=new.address),
            ),
        ),
        (
            SignatureError,
            "not by the key",
            lambda: writer.add_key(
                "acme",
                new.address,
                sign_key_binding(acme, domain, "acme", new.address, nonce),
                sign_key_change(acme, domain, "acme", nonce, add=new.address),
            ),
        ),
        (
            Conflict,
            "already bound",
            lambda: writer.register(
                "beta",
                "B",
                ["supplier"],
                acme.address,
                sign_key_binding(acme, domain, "beta", acme.address, 0),
            ),
        ),
    ]
    for kind, text, attempt in refusals:
        with pytest.raises(kind, match=text):
            attempt()
        assert state() == before, text
    writer.revoke_key(acme.address)
    with pytest.raises(Conflict, match="already revoked"):
        writer.revoke_key(acme.address)


# ------------------------------------------------------------------------------- model
from tests.ledger.testonly.registry_model import RegistryMachine  # noqa: E402

TestRegistryAgainstModel = RegistryMachine.TestCase
