"""Chains to test against: the embedded eth-tester chain and an anvil process, behind one face.

`ChainEnv` hides what differs (funding an account, mining, setting block time, snapshots) so
that one client test suite runs on both. Every test deploys its own contract with a fresh
operator key, so tests never see each other's state.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import RPCEndpoint

from ledger.chain import ChainClient
from ledger.chain._embedded import EmbeddedChain, fund_from_faucet, locked_provider
from ledger.chain.devnode import free_port

__all__ = ["ChainEnv", "free_port", "register"]


class ChainEnv:
    """One chain, embedded or anvil, with the test conveniences each provides differently."""

    def __init__(
        self, kind: str, w3: Web3, embedded: EmbeddedChain | None = None, url: str = ""
    ) -> None:
        self.kind = kind
        self.w3 = w3
        self.embedded = embedded
        self.url = url

    @classmethod
    def embedded_at(cls, path: Path) -> ChainEnv:
        chain = EmbeddedChain(path)
        return cls("embedded", Web3(locked_provider(chain.tester)), embedded=chain)

    @classmethod
    def anvil(cls, url: str) -> ChainEnv:
        return cls("anvil", Web3(Web3.HTTPProvider(url)), url=url)

    def fresh_provider(self) -> Any:
        """A new provider on the same chain, for tests that tamper with one."""
        if self.embedded is not None:
            return locked_provider(self.embedded.tester)
        return Web3.HTTPProvider(self.url)

    def close(self) -> None:
        if self.embedded is not None:
            self.embedded.close()

    def rpc(self, method: str, params: list[Any]) -> Any:
        response = self.w3.provider.make_request(RPCEndpoint(method), params)
        if "error" in response:
            raise RuntimeError(f"{method} failed: {response['error']}")
        return response.get("result")

    def new_account(self) -> LocalAccount:
        """A fresh key with funds."""
        account: LocalAccount = Account.from_key("0x" + secrets.token_hex(32))
        if self.kind == "embedded":
            fund_from_faucet(self.w3, account.address)
        else:
            self.rpc("anvil_setBalance", [account.address, hex(10**22)])
        return account

    def deploy(self, **options: Any) -> ChainClient:
        """A fresh ProvenanceLedger whose operator is a fresh key."""
        operator = self.new_account()
        client, _ = ChainClient.deploy(self.w3, private_key=operator.key, **options)
        return client

    def mine(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            self.rpc("evm_mine", [])

    def mine_at(self, timestamp: int) -> None:
        """Mine one block with this timestamp."""
        if self.embedded is not None:
            self.embedded.tester.time_travel(timestamp)
        else:
            self.rpc("evm_mine", [timestamp])

    def block_number(self) -> int:
        return int(self.w3.eth.block_number)


def register(
    client: ChainClient, pid: str, name: str, roles: list[str], key: Any = None
) -> LocalAccount:
    """Register `pid` through `client` (an operator) with `key`'s proof of possession (default:
    a fresh key); returns the key."""
    from ledger.signing import Signer, sign_key_binding

    account: LocalAccount = key or Account.create()
    proof = sign_key_binding(Signer(bytes(account.key)), client.domain, pid, account.address, 0)
    client.register_participant(pid, name, roles, account.address, proof)
    return account
