"""A deployment on disk: configuration, database, key files, and the objects built on them.

HOME/config.json     database URL, EIP-712 domain, operator id
HOME/ledger.db       SQLite database (unless config names another URL)
HOME/keys/*.key      signing keys of locally held participants (hex, mode 0600)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rlp

from ledger.errors import InputError, NotFound
from ledger.log import Log
from ledger.registry import Registry, now_us
from ledger.signing import Domain, Signer, keccak256
from ledger.store import Store, sqlite_url

CONFIG = "config.json"
DEFAULT_CHAIN_ID = 131277322940537  # eth-tester's chain id: the embedded chain


def create_address(sender: str, nonce: int) -> str:
    """The address of a contract deployed by `sender` with `nonce` (CREATE)."""
    return "0x" + keccak256(rlp.encode([bytes.fromhex(sender[2:]), nonce]))[-20:].hex()


@dataclass
class Deployment:
    home: Path
    config: dict[str, Any]
    store: Store
    log: Log
    registry: Registry
    domain: Domain

    @classmethod
    def init(
        cls,
        home: Path,
        *,
        database_url: str | None = None,
        chain_url: str | None = None,
        chain_id: int | None = None,
        operator: str = "operator",
    ) -> Deployment:
        """Create a deployment: config, schema, and an operator with a fresh key.

        The EIP-712 domain names the contract the operator's first transaction will create,
        so records can be signed before the contract is deployed.

        Raises:
            InputError: `home` already holds a deployment.
        """
        if (home / CONFIG).exists():
            raise InputError(f"{home} already holds a deployment ({CONFIG} exists)")
        home.mkdir(parents=True, exist_ok=True)
        signer = Signer.generate()
        if chain_id is None:
            chain_id = _node_chain_id(chain_url) if chain_url else DEFAULT_CHAIN_ID
        config: dict[str, Any] = {
            "database_url": database_url or sqlite_url(home / "ledger.db"),
            "chain_url": chain_url,
            "domain": Domain(chain_id, create_address(signer.address, 0)).to_json(),
            "operator": operator,
        }
        store = Store.open(config["database_url"])
        registry = Registry(store)
        registry.add_participant(operator, "Operator", ["operator"])
        registry.add_key(operator, signer.address, valid_from_us=now_us())
        save_key(home, operator, signer)
        tmp = home / (CONFIG + ".tmp")
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        tmp.replace(home / CONFIG)
        return cls._build(home, config, store)

    @classmethod
    def open(cls, home: Path) -> Deployment:
        """Open an existing deployment.

        Raises:
            NotFound: no deployment at `home`.
        """
        path = home / CONFIG
        if not path.is_file():
            raise NotFound(f"no deployment at {home} (run `forgeproof init` first)")
        config = json.loads(path.read_text())
        url = os.environ.get("FORGEPROOF_DATABASE_URL") or config["database_url"]
        return cls._build(home, config, Store.open(url))

    @classmethod
    def _build(cls, home: Path, config: dict[str, Any], store: Store) -> Deployment:
        return cls(
            home=home,
            config=config,
            store=store,
            log=Log(store),
            registry=Registry(store),
            domain=Domain.from_json(config["domain"]),
        )

    def signer(self, participant: str) -> Signer:
        """The locally held key of `participant` that is valid now.

        Raises:
            NotFound: no valid key of that participant is held here.
        """
        now = now_us()
        for key in self.registry.keys(participant):
            path = key_path(self.home, participant, key.address)
            if key.valid_at(now) and path.is_file():
                return Signer(bytes.fromhex(path.read_text().strip()))
        raise NotFound(f"no valid key of {participant!r} is held in {self.home / 'keys'}")

    def open_chain(self, **options: Any) -> Any:
        """The deployment's chain client, acting as the operator; deploys on first use.

        Embedded (eth-tester under HOME/chain) unless the config or FORGEPROOF_CHAIN_URL names
        a JSON-RPC node. The contract lands at the address the EIP-712 domain names.

        Raises:
            ChainUnavailable: the node cannot be reached, or another process holds the chain.
            ContractMismatch: the contract is not where the domain says.
        """
        from ledger.chain import ChainClient
        from ledger.errors import ContractMismatch

        key = self.signer(self.config["operator"]).private_key
        url = os.environ.get("FORGEPROOF_CHAIN_URL") or self.config.get("chain_url")
        if url:
            _fund_on_dev_node(url, self.signer(self.config["operator"]).address)
            chain = ChainClient.from_url(
                url, private_key=key, deployment_file=self.home / "chain-deployment.json", **options
            )
        else:
            chain = ChainClient.embedded(self.home / "chain", private_key=key, **options)
        if (
            chain.address.lower() != self.domain.verifying_contract
            or chain.chain_id != self.domain.chain_id
        ):
            chain.close()
            raise ContractMismatch(
                f"the chain's contract is {chain.address} on chain {chain.chain_id}; records here"
                f" are signed for {self.domain.verifying_contract} on chain {self.domain.chain_id}"
            )
        return chain

    def close(self) -> None:
        self.store.close()


def _node_chain_id(url: str) -> int:
    import requests

    from ledger.errors import ChainUnavailable

    try:
        reply = requests.post(
            url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=10
        )
        return int(reply.json()["result"], 16)
    except (requests.RequestException, ValueError, KeyError) as exc:
        raise ChainUnavailable(f"cannot ask {url} for its chain id: {exc}") from exc


def _fund_on_dev_node(url: str, address: str) -> None:
    """On a development node (anvil), give the operator gas money; elsewhere fund it yourself."""
    import requests

    try:
        balance = requests.post(
            url,
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "eth_getBalance",
                "params": [address, "latest"],
            },
            timeout=10,
        ).json()["result"]
        if int(balance, 16) == 0:
            requests.post(
                url,
                json={
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "anvil_setBalance",
                    "params": [address, hex(10**21)],
                },
                timeout=10,
            )
    except (requests.RequestException, ValueError, KeyError):
        pass  # not fatal here: the deployment transaction will say what is wrong


def key_path(home: Path, participant: str, address: str) -> Path:
    return home / "keys" / f"{participant}.{address}.key"


def save_key(home: Path, participant: str, signer: Signer) -> Path:
    path = key_path(home, participant, signer.address)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(signer.private_key.hex() + "\n")
    return path
