"""A stateful property test of the ProvenanceLedger registry against a small Python model.

Hypothesis drives the contract on the embedded chain with random registrations, key additions,
rotations, revocations and role changes, sent by random senders with good, stale, foreign or
missing signatures. The model says, from the rules in docs/contract.md alone, whether each
call succeeds or which custom error refuses it, and what the registry holds afterwards. After
every step the contract's storage must equal the model (so a refusal changed nothing, and a
change took effect at the block of its own transaction); at the end of each run the database
mirror, synced from the chain's events, must equal it too.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from ledger.chain import ROLE_BITS, ChainClient, bits_to_roles
from ledger.chain._embedded import fund_from_faucet
from ledger.errors import TransactionReverted
from ledger.registry import Registry
from ledger.signing import Signer, sign_key_binding, sign_key_change
from ledger.store import Store, sqlite_url
from tests.ledger.chain.testonly import ChainEnv

OPERATOR = ROLE_BITS["operator"]
ROLE_SETS = [
    ["supplier"],
    ["manufacturer"],
    ["auditor"],
    ["supplier", "model_publisher"],
    ["operator", "auditor"],
    [],
]
IDS = ["a", "b", "c", "d"]

_ENV: ChainEnv | None = None


def _env() -> ChainEnv:
    """One embedded chain for every run: each run deploys a contract of its own on it."""
    global _ENV
    if _ENV is None:
        _ENV = ChainEnv.embedded_at(Path(tempfile.mkdtemp(prefix="registry-model-")))
    return _ENV


@dataclass
class MParticipant:
    roles: int
    nonce: int
    keys: list[str] = field(default_factory=list)
    history: list[tuple[int, int]] = field(default_factory=list)  # (from block, roles)

    def roles_at(self, block: int) -> int:
        roles = 0
        for start, held in self.history:
            if start <= block:
                roles = held
        return roles


@dataclass
class MKey:
    owner: str
    valid_from: int
    revoked_from: int | None = None

    def valid_at(self, block: int) -> bool:
        return self.valid_from <= block and (self.revoked_from is None or block < self.revoked_from)


class Refused(Exception):
    """The model's verdict: the contract must revert with this custom error."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class RegistryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.env = _env()
        # Keys are drawn from a counter, not at random: the same draws must pick the same
        # keys on every run (Hypothesis replays and shrinks).
        self.accounts: dict[str, LocalAccount] = {}
        op = self._account()
        fund_from_faucet(self.env.w3, op.address)
        self.chain, _ = ChainClient.deploy(self.env.w3, private_key=op.key)
        self.deployer = op.address.lower()
        block = self.chain.deployment_block
        self.people: dict[str, MParticipant] = {
            "operator": MParticipant(OPERATOR, 1, [op.address.lower()], [(block, OPERATOR)])
        }
        self.order = ["operator"]
        self.keys: dict[str, MKey] = {op.address.lower(): MKey("operator", block)}
        self.outsider = self._account()

    # --- helpers ------------------------------------------------------------------------
    def _account(self) -> LocalAccount:
        seed = keccak(text=f"registry-model-{len(self.accounts)}")
        account: LocalAccount = Account.from_key(seed)
        self.accounts[account.address.lower()] = account
        return account

    def _funded(self, account: LocalAccount) -> ChainClient:
        fund_from_faucet(self.chain.w3, account.address)
        return self.chain.with_account(account.key)

    def _valid_now(self, address: str) -> bool:
        key = self.keys.get(address.lower())
        return key is not None and key.revoked_from is None

    def _own_valid(self, pid: str, address: str) -> bool:
        key = self.keys.get(address.lower())
        return key is not None and key.owner == pid and key.revoked_from is None

    def _is_operator(self, address: str) -> bool:
        key = self.keys.get(address.lower())
        if key is None or key.revoked_from is not None:
            return False
        return bool(self.people[key.owner].roles & OPERATOR)

    def _valid_keys(self, pid: str | None = None) -> list[str]:
        return sorted(
            a
            for a, k in self.keys.items()
            if k.revoked_from is None and (pid is None or k.owner == pid)
        )

    def _signer(self, address: str) -> Signer:
        return Signer(bytes(self.accounts[address.lower()].key))

    def _proof(self, pid: str, key: str, good: bool) -> bytes:
        nonce = self.people[pid].nonce if pid in self.people else 0
        by = key if good else self.outsider.address
        return sign_key_binding(self._signer(by), self.chain.domain, pid, key, nonce)

    def _sender(self, data: Any, pid: str | None) -> LocalAccount:
        """A sender: mostly a valid key of `pid` (or, for operator calls, the first operator
        key), else any valid key or an outsider."""
        usual = self._valid_keys(pid) if pid is not None else [self.deployer]
        if usual and data.draw(st.integers(0, 2), label="usual sender") > 0:
            return self.accounts[data.draw(st.sampled_from(sorted(usual)), label="sender")]
        choices = [self.outsider.address.lower(), *self._valid_keys()]
        return self.accounts[data.draw(st.sampled_from(sorted(choices)), label="sender")]

    def _consent(
        self, data: Any, pid: str, add: str | None, revoke: str | None
    ) -> tuple[bytes, str | None]:
        """An authorisation and the key the model says it is by (None: nobody valid)."""
        how = data.draw(st.sampled_from(["none", "own", "stale", "foreign"]), label="consent")
        nonce = self.people[pid].nonce if pid in self.people else 0
        own = self._valid_keys(pid)
        others = [a for a in self._valid_keys() if a not in own] + [self.outsider.address.lower()]
        if how == "none":
            return b"", None
        if how == "own" and own:
            by = data.draw(st.sampled_from(own), label="consenting key")
            return sign_key_change(
                self._signer(by), self.chain.domain, pid, nonce, add=add, revoke=revoke
            ), by
        if how == "stale" and own:
            by = data.draw(st.sampled_from(own), label="stale key")
            sig = sign_key_change(
                self._signer(by), self.chain.domain, pid, nonce + 1, add=add, revoke=revoke
            )
            return sig, "invalid"
        by = data.draw(st.sampled_from(others), label="foreign key")
        return sign_key_change(
            self._signer(by), self.chain.domain, pid, nonce, add=add, revoke=revoke
        ), "invalid"

    def _by(self, pid: str, sender: str, auth: bytes, signed_by: str | None) -> str | None:
        """The contract's _consent: the sender if it is a valid key of `pid`, else the signer of
        the authorisation, which must be one (AuthorizationInvalid), else nobody."""
        if self._own_valid(pid, sender):
            return sender.lower()
        if not auth:
            return None
        if signed_by is None or signed_by == "invalid":
            raise Refused("AuthorizationInvalid")
        return signed_by

    def _expect(self, predict: Any, send: Any) -> Any:
        """Run `send` and hold it to the model's `predict` (which raises Refused)."""
        try:
            apply = predict()
        except Refused as refused:
            event(f"refused: {refused.name}")
            try:
                send()
            except TransactionReverted as exc:
                assert exc.error_name == refused.name, (refused.name, str(exc))
                return None
            raise AssertionError(
                f"the contract accepted what the model refuses: {refused.name}"
            ) from None
        event(f"accepted: {getattr(send, '__qualname__', 'call')}")
        tx = send()
        apply(tx.block_number)
        return tx

    def _bind(self, pid: str, key: str, block: int) -> None:
        self.keys[key.lower()] = MKey(pid, block)
        self.people[pid].keys.append(key.lower())

    def _revoke(self, key: str, block: int) -> None:
        self.keys[key.lower()].revoked_from = block

    # --- rules --------------------------------------------------------------------------
    @initialize()
    def first_participant(self) -> None:
        key = self._account()
        proof = sign_key_binding(self._signer(key.address), self.chain.domain, "a", key.address, 0)
        tx = self.chain.register_participant("a", "A", ["supplier"], key.address, proof)
        bits = ROLE_BITS["supplier"]
        self.people["a"] = MParticipant(bits, 1, [], [(tx.block_number, bits)])
        self.order.append("a")
        self._bind("a", key.address, tx.block_number)

    @rule(data=st.data())
    def register(self, data: Any) -> None:
        pid = data.draw(st.sampled_from(IDS), label="id")
        roles = data.draw(st.sampled_from(ROLE_SETS), label="roles")
        bits = sum(ROLE_BITS[r] for r in roles)
        sender = self._sender(data, None)
        reuse = data.draw(st.booleans(), label="reuse a key") and bool(self.keys)
        key = (
            data.draw(st.sampled_from(sorted(self.keys)), label="key")
            if reuse
            else self._account().address.lower()
        )
        good = data.draw(st.booleans(), label="good proof") or data.draw(st.booleans())
        proof = self._proof(pid, key, good)

        def predict() -> Any:
            if not self._is_operator(sender.address):
                raise Refused("NotOperator")
            if bits == 0:
                raise Refused("NoRoles")
            if pid in self.people:
                raise Refused("ParticipantExists")
            if not good:
                raise Refused("KeyProofInvalid")
            if key in self.keys:
                raise Refused("KeyExists")

            def apply(block: int) -> None:
                self.people[pid] = MParticipant(bits, 1, [], [(block, bits)])
                self.order.append(pid)
                self._bind(pid, key, block)

            return apply

        client = self._funded(sender)
        self._expect(predict, lambda: client.register_participant(pid, pid, roles, key, proof))

    @precondition(lambda self: len(self.people) > 1)
    @rule(data=st.data())
    def add_key(self, data: Any) -> None:
        pid = data.draw(st.sampled_from(sorted(self.people) + ["nobody"]), label="participant")
        sender = self._sender(data, pid)
        key = self._account().address.lower()
        if data.draw(st.integers(0, 9), label="reuse") == 0:
            key = data.draw(st.sampled_from(sorted(self.keys)), label="taken key")
        auth, signed_by = self._consent(data, pid, key, None)
        good = data.draw(st.integers(0, 5), label="proof") > 0
        proof = self._proof(pid, key, good)

        def predict() -> Any:
            if pid not in self.people:
                raise Refused("UnknownParticipant")
            by = self._by(pid, sender.address, auth, signed_by)
            if by is None and (self._valid_keys(pid) or not self._is_operator(sender.address)):
                raise Refused("NotAuthorized")
            if not good:
                raise Refused("KeyProofInvalid")
            if key in self.keys:
                raise Refused("KeyExists")

            def apply(block: int) -> None:
                self._bind(pid, key, block)
                self.people[pid].nonce += 1

            return apply

        client = self._funded(sender)
        self._expect(predict, lambda: client.add_key(pid, key, proof, auth))

    @precondition(lambda self: len(self.keys) > 1)
    @rule(data=st.data())
    def rotate_key(self, data: Any) -> None:
        old = data.draw(st.sampled_from(sorted(self.keys)), label="old key")
        pid = self.keys[old].owner
        sender = self._sender(data, pid)
        new = self._account().address.lower()
        if data.draw(st.integers(0, 9), label="reuse") == 0:
            new = data.draw(st.sampled_from(sorted(self.keys)), label="taken key")
        auth, signed_by = self._consent(data, pid, new, old)
        good = data.draw(st.integers(0, 5), label="proof") > 0
        proof = self._proof(pid, new, good)

        def predict() -> Any:
            if self._by(pid, sender.address, auth, signed_by) is None:
                raise Refused("NotAuthorized")
            if not good:
                raise Refused("KeyProofInvalid")
            if self.keys[old].revoked_from is not None:
                raise Refused("KeyAlreadyRevoked")
            if new in self.keys:
                raise Refused("KeyExists")

            def apply(block: int) -> None:
                self._revoke(old, block)
                self._bind(pid, new, block)
                self.people[pid].nonce += 1

            return apply

        client = self._funded(sender)
        self._expect(predict, lambda: client.rotate_key(old, new, proof, auth))

    @rule(data=st.data())
    def revoke_key(self, data: Any) -> None:
        others = sorted(set(self.keys) - {self.deployer})
        if others and data.draw(st.integers(0, 9), label="spare the deployer") > 0:
            key = data.draw(st.sampled_from(others), label="key")
        else:
            key = data.draw(st.sampled_from(sorted(self.keys)), label="key")
        pid = self.keys[key].owner
        sender = self._sender(data, pid)
        auth, signed_by = self._consent(data, pid, None, key)

        def predict() -> Any:
            by = self._by(pid, sender.address, auth, signed_by)
            if by is None and not self._is_operator(sender.address):
                raise Refused("NotAuthorized")
            if self.keys[key].revoked_from is not None:
                raise Refused("KeyAlreadyRevoked")

            def apply(block: int) -> None:
                self._revoke(key, block)
                self.people[pid].nonce += 1

            return apply

        client = self._funded(sender)
        self._expect(predict, lambda: client.revoke_key(key, auth))

    @rule(data=st.data())
    def set_roles(self, data: Any) -> None:
        pid = data.draw(st.sampled_from(sorted(self.people) + ["nobody"]), label="participant")
        roles = data.draw(st.sampled_from(ROLE_SETS), label="roles")
        bits = sum(ROLE_BITS[r] for r in roles)
        sender = self._sender(data, None)

        def predict() -> Any:
            if not self._is_operator(sender.address):
                raise Refused("NotOperator")
            if pid not in self.people:
                raise Refused("UnknownParticipant")

            def apply(block: int) -> None:
                p = self.people[pid]
                p.roles = bits
                if p.history and p.history[-1][0] == block:
                    p.history[-1] = (block, bits)
                else:
                    p.history.append((block, bits))

            return apply

        client = self._funded(sender)
        self._expect(predict, lambda: client.set_roles(pid, roles))

    @rule(blocks=st.integers(1, 3))
    def mine(self, blocks: int) -> None:
        self.env.mine(blocks)

    # --- what must hold -----------------------------------------------------------------
    @invariant()
    def chain_matches_model(self) -> None:
        on_chain = self.chain.participants()
        assert [p.id for p in on_chain] == self.order
        for p in on_chain:
            m = self.people[p.id]
            assert (p.roles, p.nonce, list(p.keys)) == (bits_to_roles(m.roles), m.nonce, m.keys)
        for address, m in self.keys.items():
            k = self.chain.key_info(address)
            assert (k.participant_id, k.valid_from, k.revoked_from) == (
                m.owner,
                m.valid_from,
                m.revoked_from,
            )
            # Signing power at the blocks around each change: key window and roles then.
            for block in {m.valid_from - 1, m.valid_from, (m.revoked_from or 1) - 1}:
                want = m.valid_at(block) and self.people[m.owner].roles_at(block) != 0
                assert self.chain.key_valid_at(m.owner, address, block=block) is want

    def teardown(self) -> None:
        # The database mirror, synced from the chain's events, says what the model says.
        with tempfile.TemporaryDirectory() as tmp:
            store = Store.open(sqlite_url(Path(tmp) / "mirror.db"))
            try:
                state = Registry(store).sync(self.chain)
                assert sorted(state.participants) == sorted(self.people)
                for pid, m in self.people.items():
                    assert state.participants[pid].roles == bits_to_roles(m.roles)
                for address, m in self.keys.items():
                    k = state.keys[address]
                    assert (k.participant, k.valid_from, k.revoked_from) == (
                        m.owner,
                        m.valid_from,
                        m.revoked_from,
                    )
                Registry(store).check(self.chain)
            finally:
                store.close()


RegistryMachine.TestCase.settings = settings(
    max_examples=15,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
