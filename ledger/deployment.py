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
        chain_id: int = DEFAULT_CHAIN_ID,
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
        config: dict[str, Any] = {
            "database_url": database_url or sqlite_url(home / "ledger.db"),
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

    def close(self) -> None:
        self.store.close()


def key_path(home: Path, participant: str, address: str) -> Path:
    return home / "keys" / f"{participant}.{address}.key"


def save_key(home: Path, participant: str, signer: Signer) -> Path:
    path = key_path(home, participant, signer.address)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(signer.private_key.hex() + "\n")
    return path
