"""ProvenanceLedger registry: participants, roles, keys, and who may change what.

Every refusal is checked by its custom error name, every change by its event.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_utils import keccak
from web3.logs import DISCARD

from ledger.chain import ChainClient, Tx
from ledger.errors import InputError, KeyNotAuthorized, NotFound, TransactionReverted
from tests.ledger.chain.testonly import ChainEnv

ROOT = b"\x11" * 32


def reverts(name: str, fn: Any, *args: Any, **kwargs: Any) -> TransactionReverted:
    with pytest.raises(TransactionReverted) as info:
        fn(*args, **kwargs)
    assert info.value.error_name == name, str(info.value)
    return info.value


def events(client: ChainClient, tx: Tx, name: str) -> list[dict[str, Any]]:
    receipt = client.w3.eth.get_transaction_receipt(tx.tx_hash)  # type: ignore[arg-type]
    decoded = getattr(client.contract.events, name)().process_receipt(receipt, errors=DISCARD)
    return [dict(e["args"]) for e in decoded]


def id_hash(participant_id: str) -> bytes:
    return keccak(text=participant_id)


def member(env: ChainEnv, ledger: ChainClient, pid: str, roles: list[str]) -> ChainClient:
    """Register `pid` with one fresh key and return a client acting with that key."""
    ledger.register_participant(pid, pid.title(), roles)
    account = env.new_account()
    ledger.add_key(pid, account.address)
    return ledger.with_account(account.key)


# ------------------------------------------------------------------------------- participants
def test_deployer_is_the_first_operator(env: ChainEnv, ledger: ChainClient) -> None:
    operator = ledger.participant("operator")
    assert operator.roles == {"operator"}
    assert operator.keys == (ledger.account.address.lower(),)
    assert ledger.is_operator()
    assert not ledger.is_operator(env.new_account().address)
    logs = ledger.w3.eth.get_logs(
        {"address": ledger.contract.address, "fromBlock": ledger.deployment_block}
    )
    names = [
        e["event"]
        for log in logs
        for e in [
            *ledger.contract.events.ParticipantRegistered().process_receipt(
                {"logs": [log]}, errors=DISCARD
            ),
            *ledger.contract.events.KeyAdded().process_receipt({"logs": [log]}, errors=DISCARD),
        ]
    ]
    assert names == ["ParticipantRegistered", "KeyAdded"]


def test_register_participant_and_set_roles(ledger: ChainClient) -> None:
    tx = ledger.register_participant("acme", "Acme Steel", ["supplier", "manufacturer"])
    assert events(ledger, tx, "ParticipantRegistered") == [
        {"idHash": id_hash("acme"), "id": "acme", "name": "Acme Steel", "roles": 0b110}
    ]
    acme = ledger.participant("acme")
    assert (acme.name, acme.roles, acme.registered_at, acme.keys) == (
        "Acme Steel",
        {"supplier", "manufacturer"},
        tx.block_number,
        (),
    )
    tx = ledger.set_roles("acme", ["auditor"])
    assert events(ledger, tx, "RolesChanged") == [
        {"idHash": id_hash("acme"), "id": "acme", "previousRoles": 0b110, "roles": 0b1000}
    ]
    assert ledger.participant("acme").roles == {"auditor"}
    ledger.set_roles("acme", [])  # suspension is allowed and explicit
    assert ledger.participant("acme").roles == frozenset()
    assert [p.id for p in ledger.participants()] == ["operator", "acme"]


def test_registration_refusals(ledger: ChainClient) -> None:
    ledger.register_participant("acme", "Acme", ["supplier"])
    reverts("ParticipantExists", ledger.register_participant, "acme", "Again", ["auditor"])
    reverts("EmptyParticipantId", ledger.register_participant, "", "Nobody", ["auditor"])
    reverts("NoRoles", ledger.register_participant, "idle", "Idle", [])
    reverts("UnknownRoles", ledger.transact, "registerParticipant", "x", "X", 1 << 6)
    reverts("UnknownRoles", ledger.transact, "setRoles", "acme", 1 << 7)
    reverts("UnknownParticipant", ledger.set_roles, "nobody", ["auditor"])
    with pytest.raises(InputError, match="unknown role 'boss'"):
        ledger.register_participant("b", "B", ["boss"])


def test_only_operators_manage_the_registry_and_publish(env: ChainEnv, ledger: ChainClient) -> None:
    outsider = ledger.with_account(env.new_account().key)
    supplier = member(env, ledger, "acme", ["supplier", "manufacturer", "auditor"])
    for who in (outsider, supplier):
        reverts("NotOperator", who.register_participant, "x", "X", ["supplier"])
        reverts("NotOperator", who.set_roles, "acme", ["operator"])
        reverts("NotOperator", who.transact, "publishCheckpoint", 1, ROOT, [])
        assert not ledger.is_operator(who.account.address)

    # A second operator organisation has the same powers ...
    second = member(env, ledger, "op2", ["operator", "auditor"])
    second.register_participant("beta", "Beta", ["maintainer"])
    second.transact("publishCheckpoint", 1, ROOT, [])
    # ... until its operator role is taken away.
    ledger.set_roles("op2", ["auditor"])
    reverts("NotOperator", second.register_participant, "gamma", "Gamma", ["maintainer"])


def test_operator_powers_follow_key_validity(env: ChainEnv, ledger: ChainClient) -> None:
    later = env.new_account()
    start = ledger.block_number() + 4
    ledger.add_key("operator", later.address, valid_from=start)
    early = ledger.with_account(later.key)
    reverts("NotOperator", early.register_participant, "x", "X", ["supplier"])
    # Calls and gas estimates run against the latest block: wait until it is `start`.
    while ledger.block_number() < start:
        env.mine()
    early.register_participant("x", "X", ["supplier"])
    # The original operator key revokes itself; it loses every power at once.
    ledger.revoke_key(ledger.account.address)
    reverts("NotOperator", ledger.register_participant, "y", "Y", ["supplier"])
    reverts("NotOperator", ledger.transact, "publishCheckpoint", 1, ROOT, [])
    assert not ledger.is_operator()
    assert early.is_operator()


# ------------------------------------------------------------------------------- keys
def test_add_key_authority(env: ChainEnv, ledger: ChainClient) -> None:
    acme = member(env, ledger, "acme", ["supplier"])
    beta = member(env, ledger, "beta", ["manufacturer"])
    outsider = ledger.with_account(env.new_account().key)

    new = env.new_account().address
    tx = acme.add_key("acme", new)  # a participant manages its own keys
    assert events(ledger, tx, "KeyAdded") == [
        {"idHash": id_hash("acme"), "key": new, "validFrom": tx.block_number}
    ]
    assert ledger.key_info(new).participant_id == "acme"
    reverts("NotAuthorized", beta.add_key, "acme", env.new_account().address)
    reverts("NotAuthorized", acme.add_key, "beta", env.new_account().address)
    reverts("NotAuthorized", outsider.add_key, "acme", env.new_account().address)
    reverts("NotAuthorized", beta.revoke_key, new)
    reverts("NotAuthorized", outsider.revoke_key, new)
    reverts("NotAuthorized", beta.rotate_key, new, env.new_account().address)
    assert ledger.key_info(new).revoked_from is None
    # An address belongs to one participant forever, even across participants.
    reverts("KeyExists", ledger.add_key, "beta", new)
    reverts("KeyExists", acme.add_key, "acme", new)
    reverts("ZeroAddress", ledger.add_key, "acme", "0x" + "00" * 20)
    reverts("UnknownParticipant", ledger.add_key, "nobody", env.new_account().address)
    reverts(
        "EffectiveBlockInPast",
        ledger.add_key,
        "acme",
        env.new_account().address,
        valid_from=ledger.block_number() - 1,
    )


def test_key_validity_window_and_revocation(env: ChainEnv, ledger: ChainClient) -> None:
    ledger.register_participant("acme", "Acme", ["supplier"])
    key = env.new_account().address
    start = ledger.block_number() + 3
    ledger.add_key("acme", key, valid_from=start)
    assert not ledger.key_valid_at("acme", key, block=start - 1)
    assert ledger.key_valid_at("acme", key, block=start)
    assert not ledger.key_valid_at("operator", key, block=start)  # another's key: False
    assert not ledger.key_valid_at("acme", env.new_account().address, block=start)

    reverts("EffectiveBlockBeforeValidFrom", ledger.revoke_key, key, revoked_from=start - 1)
    while ledger.block_number() < start + 2:
        env.mine()
    tx = ledger.revoke_key(key)  # from the revoking transaction's own block
    assert events(ledger, tx, "KeyRevoked") == [
        {"idHash": id_hash("acme"), "key": key, "revokedFrom": tx.block_number}
    ]
    info = ledger.key_info(key)
    assert (info.valid_from, info.revoked_from) == (start, tx.block_number)
    assert ledger.key_valid_at("acme", key, block=tx.block_number - 1)
    assert not ledger.key_valid_at("acme", key, block=tx.block_number)
    assert not ledger.key_valid_at("acme", key)  # now
    reverts("KeyAlreadyRevoked", ledger.revoke_key, key)
    reverts("UnknownKey", ledger.revoke_key, env.new_account().address)

    ledger.require_key("acme", key, block=start)
    with pytest.raises(KeyNotAuthorized, match=r"valid over blocks \["):
        ledger.require_key("acme", key, block=tx.block_number)
    with pytest.raises(KeyNotAuthorized, match="belongs to 'acme'"):
        ledger.require_key("operator", key, block=start)
    with pytest.raises(KeyNotAuthorized, match="not registered"):
        ledger.require_key("acme", env.new_account().address)


def test_backdated_revocation_disowns_what_a_compromised_key_signed(
    env: ChainEnv, ledger: ChainClient
) -> None:
    acme = member(env, ledger, "acme", ["supplier"])
    stolen = acme.account.address
    added = ledger.key_info(stolen).valid_from
    env.mine(5)
    compromised_at = added + 2
    ledger.revoke_key(stolen, revoked_from=compromised_at)
    assert ledger.key_valid_at("acme", stolen, block=compromised_at - 1)
    assert not ledger.key_valid_at("acme", stolen, block=compromised_at)
    # The revoked key can no longer act for its participant.
    reverts("NotAuthorized", acme.add_key, "acme", env.new_account().address)


def test_self_revocation_and_rotation(env: ChainEnv, ledger: ChainClient) -> None:
    acme = member(env, ledger, "acme", ["supplier"])
    outsider = ledger.with_account(env.new_account().key)
    spare = env.new_account()
    acme.add_key("acme", spare.address)
    acme.revoke_key(acme.account.address)  # a key may revoke itself
    reverts("NotAuthorized", acme.add_key, "acme", env.new_account().address)

    holder = ledger.with_account(spare.key)
    new = env.new_account().address
    effective = ledger.block_number() + 3
    reverts("NotAuthorized", outsider.rotate_key, spare.address, new, effective_block=effective)
    reverts(
        "EffectiveBlockInPast",
        holder.rotate_key,
        spare.address,
        new,
        effective_block=ledger.block_number(),
    )
    tx = holder.rotate_key(spare.address, new, effective_block=effective)
    assert events(ledger, tx, "KeyAdded") == [
        {"idHash": id_hash("acme"), "key": new, "validFrom": effective}
    ]
    assert events(ledger, tx, "KeyRevoked") == [
        {"idHash": id_hash("acme"), "key": spare.address, "revokedFrom": effective}
    ]
    assert ledger.key_valid_at("acme", spare.address, block=effective - 1)
    assert not ledger.key_valid_at("acme", new, block=effective - 1)
    assert not ledger.key_valid_at("acme", spare.address, block=effective)
    assert ledger.key_valid_at("acme", new, block=effective)
    assert ledger.participant("acme").keys == (
        acme.account.address.lower(),
        spare.address.lower(),
        new.lower(),
    )
    # Rotating "now" (0) takes effect in the transaction's block.
    newer = env.new_account().address
    tx = ledger.rotate_key(new, newer)
    assert ledger.key_info(newer).valid_from == tx.block_number
    assert ledger.key_info(new).revoked_from == tx.block_number


def test_key_validity_by_time(env: ChainEnv, ledger: ChainClient) -> None:
    ledger.register_participant("acme", "Acme", ["supplier"])
    key = env.new_account().address
    base = int(ledger.w3.eth.get_block("latest")["timestamp"])
    env.mine_at(base + 100)
    added = ledger.add_key("acme", key)
    added_at = int(ledger.w3.eth.get_block(added.block_number)["timestamp"])
    env.mine_at(added_at + 100)
    revoked = ledger.revoke_key(key)
    revoked_at = int(ledger.w3.eth.get_block(revoked.block_number)["timestamp"])
    assert added_at >= base + 100 and revoked_at >= added_at + 100

    assert not ledger.key_valid_at("acme", key, timestamp=added_at - 1)
    assert ledger.key_valid_at("acme", key, timestamp=added_at)
    assert ledger.key_valid_at("acme", key, timestamp=added_at + 50)
    assert not ledger.key_valid_at("acme", key, timestamp=revoked_at)
    assert ledger.block_at_time(added_at + 50) >= added.block_number
    with pytest.raises(NotFound, match="before the deployment"):
        ledger.block_at_time(0)


def test_views_refuse_unknowns(ledger: ChainClient) -> None:
    with pytest.raises(NotFound):
        ledger.participant("nobody")
    with pytest.raises(NotFound):
        ledger.key_info("0x" + "42" * 20)
    with pytest.raises(NotFound):
        ledger.key_valid_at("nobody", ledger.account.address, block=1)
    reverts("ParticipantIndexOutOfRange", ledger.call, "participantIdAt", 1)
    reverts("NoCheckpoint", ledger.call, "latestCheckpoint")
    assert ledger.latest_checkpoint() is None
    assert ledger.checkpoints() == []
    with pytest.raises(NotFound):
        ledger.checkpoint(1)
