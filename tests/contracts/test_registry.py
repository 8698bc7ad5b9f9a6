"""ProvenanceLedger registry: participants, roles, keys, and who may change what.

Every refusal is checked by its custom error name and leaves the registry as it was; every
change by its event. The registry's rules (docs/contract.md):

- a key is bound only with its holder's proof of possession (an EIP-712 KeyBinding signature);
- a participant's keys change only with its consent: the sender, or the signer of a KeyChange
  authorisation, is one of its currently valid keys (operators may revoke, and may bind a key to
  a participant that has none left);
- key changes take effect at the block that carries them, never earlier, never later.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3.logs import DISCARD

from ledger.chain import ChainClient, Tx
from ledger.errors import InputError, KeyNotAuthorized, NotFound, TransactionReverted
from ledger.signing import (
    Domain,
    Signer,
    key_binding_digest,
    key_change_digest,
    sign_key_binding,
    sign_key_change,
)
from tests.ledger.chain.testonly import ChainEnv

ROOT = b"\x11" * 32
ZERO = "0x" + "00" * 20


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


def signer(account: LocalAccount) -> Signer:
    return Signer(bytes(account.key))


def proof(ledger: ChainClient, account: LocalAccount, pid: str, nonce: int | None = None) -> bytes:
    """`account`'s KeyBinding signature for `pid` at its current nonce (or `nonce`)."""
    n = ledger.key_nonce(pid) if nonce is None else nonce
    return sign_key_binding(signer(account), ledger.domain, pid, account.address, n)


def consent(
    ledger: ChainClient,
    by: LocalAccount,
    pid: str,
    *,
    add: str | None = None,
    revoke: str | None = None,
    nonce: int | None = None,
) -> bytes:
    n = ledger.key_nonce(pid) if nonce is None else nonce
    return sign_key_change(signer(by), ledger.domain, pid, n, add=add, revoke=revoke)


def register(
    env: ChainEnv, ledger: ChainClient, pid: str, roles: list[str]
) -> tuple[LocalAccount, ChainClient]:
    """Register `pid` with one fresh key; return the key and a client acting with it."""
    account = env.new_account()
    ledger.register_participant(
        pid, pid.title(), roles, account.address, proof(ledger, account, pid, 0)
    )
    return account, ledger.with_account(account.key)


def snapshot(ledger: ChainClient) -> Any:
    """Everything the registry holds, to compare before and after a refusal."""
    people = ledger.participants()
    keys = {k: ledger.key_info(k) for p in people for k in p.keys}
    return people, keys, ledger.registry_blocks()


# ------------------------------------------------------------------------------- participants
def test_deployer_is_the_first_operator(env: ChainEnv, ledger: ChainClient) -> None:
    operator = ledger.participant("operator")
    assert operator.roles == {"operator"}
    assert operator.keys == (ledger.account.address.lower(),)
    assert operator.nonce == 1
    assert ledger.is_operator()
    assert not ledger.is_operator(env.new_account().address)
    names = [e.name for e in ledger.registry_events(0, ledger.block_number())]
    assert names == ["ParticipantRegistered", "KeyAdded"]
    assert ledger.registry_blocks() == [ledger.deployment_block]


def test_register_participant_and_set_roles(env: ChainEnv, ledger: ChainClient) -> None:
    key = env.new_account()
    tx = ledger.register_participant(
        "acme",
        "Acme Steel",
        ["supplier", "manufacturer"],
        key.address,
        proof(ledger, key, "acme", 0),
    )
    assert events(ledger, tx, "ParticipantRegistered") == [
        {"idHash": id_hash("acme"), "id": "acme", "name": "Acme Steel", "roles": 0b110}
    ]
    assert events(ledger, tx, "KeyAdded") == [
        {
            "idHash": id_hash("acme"),
            "key": key.address,
            "validFrom": tx.block_number,
            "authorizedBy": ledger.account.address,
        }
    ]
    acme = ledger.participant("acme")
    assert (acme.name, acme.roles, acme.registered_at, acme.keys, acme.nonce) == (
        "Acme Steel",
        {"supplier", "manufacturer"},
        tx.block_number,
        (key.address.lower(),),
        1,
    )
    changed = ledger.set_roles("acme", ["auditor"])
    assert events(ledger, changed, "RolesChanged") == [
        {"idHash": id_hash("acme"), "id": "acme", "previousRoles": 0b110, "roles": 0b1000}
    ]
    assert ledger.participant("acme").roles == {"auditor"}
    suspended = ledger.set_roles("acme", [])  # suspension is allowed and explicit
    assert ledger.participant("acme").roles == frozenset()
    assert [p.id for p in ledger.participants()] == ["operator", "acme"]
    # The role history answers for any block.
    assert ledger.roles_at("acme", tx.block_number - 1) == frozenset()
    assert ledger.roles_at("acme", tx.block_number) == {"supplier", "manufacturer"}
    assert ledger.roles_at("acme", changed.block_number) == {"auditor"}
    assert ledger.roles_at("acme", suspended.block_number) == frozenset()
    assert ledger.registry_blocks()[-3:] == [
        tx.block_number,
        changed.block_number,
        suspended.block_number,
    ]


def test_registration_refusals_change_nothing(env: ChainEnv, ledger: ChainClient) -> None:
    register(env, ledger, "acme", ["supplier"])
    before = snapshot(ledger)
    key = env.new_account()
    other = env.new_account()

    def reg(pid: str, roles: list[str], address: str, sig: bytes) -> Tx:
        return ledger.register_participant(pid, pid, roles, address, sig)

    reverts(
        "ParticipantExists", reg, "acme", ["auditor"], key.address, proof(ledger, key, "acme", 0)
    )
    reverts("EmptyParticipantId", reg, "", ["auditor"], key.address, proof(ledger, key, "", 0))
    reverts("NoRoles", reg, "idle", [], key.address, proof(ledger, key, "idle", 0))
    reverts(
        "UnknownRoles", ledger.transact, "registerParticipant", "x", "X", 1 << 6, key.address, b""
    )
    reverts("UnknownRoles", ledger.transact, "setRoles", "acme", 1 << 7)
    reverts("UnknownParticipant", ledger.set_roles, "nobody", ["auditor"])
    with pytest.raises(InputError, match="unknown role 'boss'"):
        reg("b", ["boss"], key.address, b"")
    # Proof of possession: by the key itself, for this participant, nonce, chain and contract.
    reverts(
        "KeyProofInvalid", reg, "beta", ["supplier"], key.address, proof(ledger, other, "beta", 0)
    )
    reverts(
        "KeyProofInvalid", reg, "beta", ["supplier"], key.address, proof(ledger, key, "gamma", 0)
    )
    reverts(
        "KeyProofInvalid", reg, "beta", ["supplier"], key.address, proof(ledger, key, "beta", 1)
    )
    elsewhere = Domain(ledger.chain_id, "0x" + "99" * 20)
    foreign = sign_key_binding(signer(key), elsewhere, "beta", key.address, 0)
    reverts("KeyProofInvalid", reg, "beta", ["supplier"], key.address, foreign)
    good = proof(ledger, key, "beta", 0)
    reverts("MalformedSignature", reg, "beta", ["supplier"], key.address, good[:64])
    reverts("MalformedSignature", reg, "beta", ["supplier"], key.address, good[:64] + b"\x1d")
    high_s = good[:32] + (SECP256K1_N - int.from_bytes(good[32:64], "big")).to_bytes(32, "big")
    reverts(
        "MalformedSignature",
        reg,
        "beta",
        ["supplier"],
        key.address,
        high_s + bytes([55 - good[64]]),
    )
    # The operator's own key, with its genuine proof: an address is bound once, forever.
    taken = ledger.account
    reverts("KeyExists", reg, "beta", ["supplier"], taken.address, proof(ledger, taken, "beta", 0))
    reverts("ZeroAddress", reg, "beta", ["supplier"], ZERO, good)
    assert snapshot(ledger) == before


SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def test_only_operators_manage_the_registry_and_publish(env: ChainEnv, ledger: ChainClient) -> None:
    outsider = ledger.with_account(env.new_account().key)
    _, supplier = register(env, ledger, "acme", ["supplier", "manufacturer", "auditor"])
    key = env.new_account()
    for who in (outsider, supplier):
        reverts(
            "NotOperator",
            who.register_participant,
            "x",
            "X",
            ["supplier"],
            key.address,
            proof(ledger, key, "x", 0),
        )
        reverts("NotOperator", who.set_roles, "acme", ["operator"])
        reverts("NotOperator", who.transact, "publishCheckpoint", 1, ROOT, [])
        assert not ledger.is_operator(who.account.address)

    # A second operator organisation has the same powers ...
    _, second = register(env, ledger, "op2", ["operator", "auditor"])
    register(env, second, "beta", ["maintainer"])
    second.transact("publishCheckpoint", 1, ROOT, [])
    # ... until its operator role is taken away.
    ledger.set_roles("op2", ["auditor"])
    reverts(
        "NotOperator", second.register_participant, "gamma", "G", ["maintainer"], key.address, b""
    )


# ------------------------------------------------------------------------------- keys
def test_adding_a_key_needs_its_proof_and_the_participants_consent(
    env: ChainEnv, ledger: ChainClient
) -> None:
    acme_key, acme = register(env, ledger, "acme", ["supplier"])
    beta_key, beta = register(env, ledger, "beta", ["manufacturer"])
    outsider = ledger.with_account(env.new_account().key)
    before = snapshot(ledger)

    new = env.new_account()
    # Refused, each leaving everything as it was: no consent at all (the operator alone may not
    # bind a key to a participant that has one), another participant's consent, a consent for
    # another key, a stale nonce, or a missing proof of possession.
    reverts("NotAuthorized", ledger.add_key, "acme", new.address, proof(ledger, new, "acme"))
    reverts("NotAuthorized", outsider.add_key, "acme", new.address, proof(ledger, new, "acme"))
    reverts("NotAuthorized", beta.add_key, "acme", new.address, proof(ledger, new, "acme"))
    by_beta = consent(ledger, beta_key, "acme", add=new.address)
    reverts(
        "AuthorizationInvalid",
        ledger.add_key,
        "acme",
        new.address,
        proof(ledger, new, "acme"),
        by_beta,
    )
    for_other = consent(ledger, acme_key, "acme", add=env.new_account().address)
    reverts(
        "AuthorizationInvalid",
        ledger.add_key,
        "acme",
        new.address,
        proof(ledger, new, "acme"),
        for_other,
    )
    stale = consent(ledger, acme_key, "acme", add=new.address, nonce=0)
    reverts(
        "AuthorizationInvalid",
        ledger.add_key,
        "acme",
        new.address,
        proof(ledger, new, "acme"),
        stale,
    )
    reverts("KeyProofInvalid", acme.add_key, "acme", new.address, proof(ledger, acme_key, "acme"))
    reverts("MalformedSignature", acme.add_key, "acme", new.address, b"")
    assert snapshot(ledger) == before

    # The participant's own key as sender ...
    tx = acme.add_key("acme", new.address, proof(ledger, new, "acme"))
    assert events(ledger, tx, "KeyAdded") == [
        {
            "idHash": id_hash("acme"),
            "key": new.address,
            "validFrom": tx.block_number,
            "authorizedBy": acme_key.address,
        }
    ]
    # ... or its signature, relayed by anyone (here the operator).
    third = env.new_account()
    ok = consent(ledger, new, "acme", add=third.address)
    tx = ledger.add_key("acme", third.address, proof(ledger, third, "acme"), ok)
    assert events(ledger, tx, "KeyAdded")[0]["authorizedBy"] == new.address
    # A consent is good for one change: the nonce moved on.
    again = env.new_account()
    reverts(
        "AuthorizationInvalid",
        ledger.add_key,
        "acme",
        again.address,
        proof(ledger, again, "acme"),
        ok,
    )
    # An address belongs to one participant forever.
    reverts("KeyExists", beta.add_key, "beta", new.address, proof(ledger, new, "beta"))
    reverts("UnknownParticipant", ledger.add_key, "nobody", again.address, b"")
    assert ledger.participant("acme").nonce == 3


def test_revocation_takes_effect_now_and_never_disowns_the_past(
    env: ChainEnv, ledger: ChainClient
) -> None:
    key, acme = register(env, ledger, "acme", ["supplier"])
    added = ledger.key_info(key.address).valid_from
    env.mine(5)
    signed_at = ledger.block_number()  # a record anchored here
    # No way to name another block: the ABI has none, whoever calls.
    revoke = next(f for f in ledger.artifact.abi if f.get("name") == "revokeKey")
    assert [i["type"] for i in revoke["inputs"]] == ["address", "bytes"]
    tx = acme.revoke_key(key.address)  # a key may revoke itself
    assert events(ledger, tx, "KeyRevoked") == [
        {
            "idHash": id_hash("acme"),
            "key": key.address,
            "revokedFrom": tx.block_number,
            "authorizedBy": key.address,
        }
    ]
    info = ledger.key_info(key.address)
    assert (info.valid_from, info.revoked_from) == (added, tx.block_number)
    assert ledger.key_valid_at("acme", key.address, block=signed_at)  # the past stands
    assert ledger.key_valid_at("acme", key.address, block=tx.block_number - 1)
    assert not ledger.key_valid_at("acme", key.address, block=tx.block_number)
    assert not ledger.key_valid_at("acme", key.address)
    before = snapshot(ledger)
    reverts("KeyAlreadyRevoked", ledger.revoke_key, key.address)
    reverts("UnknownKey", ledger.revoke_key, env.new_account().address)
    # A revoked key speaks for nobody any more.
    new = env.new_account()
    reverts("NotAuthorized", acme.add_key, "acme", new.address, proof(ledger, new, "acme"))
    assert snapshot(ledger) == before

    ledger.require_key("acme", key.address, block=signed_at)
    with pytest.raises(KeyNotAuthorized, match=r"valid over blocks \["):
        ledger.require_key("acme", key.address, block=tx.block_number)
    with pytest.raises(KeyNotAuthorized, match="belongs to 'acme'"):
        ledger.require_key("operator", key.address, block=signed_at)
    with pytest.raises(KeyNotAuthorized, match="not registered"):
        ledger.require_key("acme", env.new_account().address)


def test_who_may_revoke(env: ChainEnv, ledger: ChainClient) -> None:
    acme_key, acme = register(env, ledger, "acme", ["supplier"])
    beta_key, beta = register(env, ledger, "beta", ["supplier"])
    outsider = ledger.with_account(env.new_account().key)
    spare = env.new_account()
    acme.add_key("acme", spare.address, proof(ledger, spare, "acme"))
    before = snapshot(ledger)
    reverts("NotAuthorized", beta.revoke_key, spare.address)
    reverts("NotAuthorized", outsider.revoke_key, spare.address)
    by_beta = consent(ledger, beta_key, "acme", revoke=spare.address)
    reverts("AuthorizationInvalid", outsider.revoke_key, spare.address, by_beta)
    assert snapshot(ledger) == before
    # With the participant's signature anyone may relay it; an operator needs none.
    ok = consent(ledger, acme_key, "acme", revoke=spare.address)
    tx = outsider.revoke_key(spare.address, ok)
    assert events(ledger, tx, "KeyRevoked")[0]["authorizedBy"] == acme_key.address
    tx = ledger.revoke_key(beta_key.address)
    assert events(ledger, tx, "KeyRevoked")[0]["authorizedBy"] == ledger.account.address


def test_a_stolen_operator_key_is_stopped_at_once(env: ChainEnv, ledger: ChainClient) -> None:
    """The old contract let `revokeKey(key, 2**64-1)` schedule a revocation out of reach, after
    which every revocation reverted: a stolen operator key stayed operator for good."""
    thief_key, thief = register(env, ledger, "op2", ["operator"])
    # No key change names a block: nothing can be scheduled out of reach, nor backdated ...
    for fn in ("addKey", "rotateKey", "revokeKey", "registerParticipant"):
        abi = next(f for f in ledger.artifact.abi if f.get("name") == fn)
        assert not [i for i in abi["inputs"] if i["type"].startswith("uint64")], fn
    # ... and the first operator revokes the stolen key: it loses every power in that block.
    tx = ledger.revoke_key(thief_key.address)
    assert not ledger.is_operator(thief_key.address)
    assert ledger.key_info(thief_key.address).revoked_from == tx.block_number
    key = env.new_account()
    reverts(
        "NotOperator",
        thief.register_participant,
        "x",
        "X",
        ["supplier"],
        key.address,
        proof(ledger, key, "x", 0),
    )
    reverts("NotOperator", thief.transact, "publishCheckpoint", 1, ROOT, [])
    reverts("NotAuthorized", thief.revoke_key, ledger.account.address)


def test_recovery_when_no_key_is_left(env: ChainEnv, ledger: ChainClient) -> None:
    key, acme = register(env, ledger, "acme", ["supplier"])
    acme.revoke_key(key.address)
    new = env.new_account()
    tx = ledger.add_key("acme", new.address, proof(ledger, new, "acme"))  # no consent possible
    assert events(ledger, tx, "KeyAdded")[0]["authorizedBy"] == ledger.account.address
    # Once it has a key again, the operator's word alone no longer binds one.
    other = env.new_account()
    reverts("NotAuthorized", ledger.add_key, "acme", other.address, proof(ledger, other, "acme"))


def test_rotation_is_one_transaction_with_consent(env: ChainEnv, ledger: ChainClient) -> None:
    old, acme = register(env, ledger, "acme", ["supplier"])
    new = env.new_account()
    before = snapshot(ledger)
    # The operator alone cannot rotate; a rotation to a taken key changes nothing (the old key
    # stays valid: the participant is never locked out by a refused rotation).
    reverts(
        "NotAuthorized", ledger.rotate_key, old.address, new.address, proof(ledger, new, "acme")
    )
    taken = ledger.account.address
    sig = consent(ledger, old, "acme", add=taken, revoke=old.address)
    reverts(
        "KeyProofInvalid", ledger.rotate_key, old.address, taken, proof(ledger, new, "acme"), sig
    )
    wrong = consent(ledger, old, "acme", add=new.address)  # consent to add only, not to rotate
    reverts(
        "AuthorizationInvalid",
        ledger.rotate_key,
        old.address,
        new.address,
        proof(ledger, new, "acme"),
        wrong,
    )
    assert snapshot(ledger) == before
    assert ledger.key_valid_at("acme", old.address)

    sig = consent(ledger, old, "acme", add=new.address, revoke=old.address)
    tx = ledger.rotate_key(old.address, new.address, proof(ledger, new, "acme"), sig)
    assert events(ledger, tx, "KeyRevoked")[0]["revokedFrom"] == tx.block_number
    assert events(ledger, tx, "KeyAdded")[0]["validFrom"] == tx.block_number
    assert not ledger.key_valid_at("acme", old.address, block=tx.block_number)
    assert ledger.key_valid_at("acme", new.address, block=tx.block_number)
    assert ledger.key_valid_at("acme", old.address, block=tx.block_number - 1)
    newer = env.new_account()
    sig = consent(ledger, new, "acme", add=newer.address, revoke=old.address)
    reverts(
        "KeyAlreadyRevoked",
        ledger.rotate_key,
        old.address,
        newer.address,
        proof(ledger, newer, "acme"),
        sig,
    )
    reverts("NotAuthorized", acme.rotate_key, new.address, newer.address, b"")  # old key: no say


def test_a_participant_without_roles_signs_nothing_new(env: ChainEnv, ledger: ChainClient) -> None:
    key, _ = register(env, ledger, "acme", ["supplier"])
    env.mine()
    before = ledger.block_number()
    tx = ledger.set_roles("acme", [])
    assert ledger.key_valid_at("acme", key.address, block=before)
    assert not ledger.key_valid_at("acme", key.address, block=tx.block_number)
    with pytest.raises(KeyNotAuthorized, match="held no role"):
        ledger.require_key("acme", key.address, block=tx.block_number)
    back = ledger.set_roles("acme", ["supplier"])
    assert ledger.key_valid_at("acme", key.address, block=back.block_number)
    assert not ledger.key_valid_at("acme", key.address, block=tx.block_number)


def test_typed_data_digests_match_the_contract(env: ChainEnv, ledger: ChainClient) -> None:
    key, _ = register(env, ledger, "acme", ["supplier"])
    new = env.new_account().address
    nonce = ledger.key_nonce("acme")
    assert bytes(ledger.call("domainSeparator")) == ledger.domain.separator
    assert bytes(ledger.call("keyBindingDigest", "acme", new)) == key_binding_digest(
        ledger.domain, "acme", new, nonce
    )
    assert bytes(ledger.call("keyChangeDigest", "acme", new, key.address)) == key_change_digest(
        ledger.domain, "acme", nonce, add=new, revoke=key.address
    )


def test_key_validity_by_time(env: ChainEnv, ledger: ChainClient) -> None:
    base = int(ledger.w3.eth.get_block("latest")["timestamp"])
    env.mine_at(base + 100)
    key = env.new_account()
    added = ledger.register_participant(
        "acme", "Acme", ["supplier"], key.address, proof(ledger, key, "acme", 0)
    )
    added_at = int(ledger.w3.eth.get_block(added.block_number)["timestamp"])
    env.mine_at(added_at + 100)
    revoked = ledger.revoke_key(key.address)
    revoked_at = int(ledger.w3.eth.get_block(revoked.block_number)["timestamp"])
    assert added_at >= base + 100 and revoked_at >= added_at + 100

    assert not ledger.key_valid_at("acme", key.address, timestamp=added_at - 1)
    assert ledger.key_valid_at("acme", key.address, timestamp=added_at)
    assert ledger.key_valid_at("acme", key.address, timestamp=added_at + 50)
    assert not ledger.key_valid_at("acme", key.address, timestamp=revoked_at)
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
    with pytest.raises(NotFound):
        ledger.roles_at("nobody", 1)
    reverts("ParticipantIndexOutOfRange", ledger.call, "participantIdAt", 1)
    reverts("NoCheckpoint", ledger.call, "latestCheckpoint")
    assert ledger.latest_checkpoint() is None
    assert ledger.checkpoints() == []
    with pytest.raises(NotFound):
        ledger.checkpoint(1)
    with pytest.raises(NotFound):
        ledger.covering_checkpoint(0)
