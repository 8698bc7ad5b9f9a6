"""A deployment on disk: configuration, database, key files, and the objects built on them.

HOME/config.json     database URL, EIP-712 domain (the contract's chain and address), operator id
HOME/ledger.db       SQLite database (unless config names another URL)
HOME/chain/          the embedded chain (unless config or FORGEPROOF_CHAIN_URL names a node)
HOME/keys/*.json     signing keys of locally held participants, Ethereum keystore v3 files
                     (scrypt; the passphrase from FORGEPROOF_KEY_PASSPHRASE)
HOME/secret          32 random bytes: the key that seals secrets kept in the database

HOME is mode 0700 and every file in it 0600. What the environment overrides is read through
`ledger.settings.LedgerSettings` when it is needed, never at import.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.errors import ContractMismatch, InputError, NotFound, StorageError
from ledger.keystore import (
    PASSPHRASE_ENV,
    SecretBox,
    decrypt_key,
    deployment_secret,
    encrypt_key,
    write_private,
)
from ledger.log import Log
from ledger.registry import Registry, RegistryWriter
from ledger.settings import LedgerSettings
from ledger.signing import Domain, Signer
from ledger.store import Store, sqlite_url

if TYPE_CHECKING:
    from ledger.chain import ChainClient
    from ledger.chain.lazy import LazyChain

CONFIG = "config.json"


@dataclass
class Deployment:
    home: Path
    config: dict[str, Any]
    store: Store
    log: Log
    registry: Registry
    domain: Domain

    passphrase: str | None = None  # opens the key files (default: FORGEPROOF_KEY_PASSPHRASE)
    _signers: dict[Path, Signer] = field(default_factory=dict, repr=False)

    @classmethod
    def init(
        cls,
        home: Path,
        *,
        database_url: str | None = None,
        chain_url: str | None = None,
        operator: str = "operator",
        passphrase: str | None = None,
        **chain_options: Any,
    ) -> Deployment:
        """Create a deployment: an operator key, the contract deployed from it, the database
        with the registry mirrored from the chain, and the config naming them.

        The contract is deployed here, before any record is signed: records and key changes
        are signed for the domain of a contract that exists.

        Processes initialising (or opening, `open_or_init`) one HOME at the same moment take
        turns on a lock file in it: one deploys the contract and writes the config, atomically.

        Raises:
            InputError: `home` already holds a deployment.
            ChainUnavailable: the node cannot be reached.
        """
        with _home_lock(home):
            return cls._create(home, database_url, chain_url, operator, passphrase, chain_options)

    @classmethod
    def open_or_init(
        cls,
        home: Path,
        *,
        database_url: str | None = None,
        chain_url: str | None = None,
        passphrase: str | None = None,
    ) -> tuple[Deployment, bool]:
        """The deployment at `home`, created first if there is none; (deployment, created).
        Any number of processes may call this at once: exactly one creates it."""
        with _home_lock(home):
            if (home / CONFIG).exists():
                return cls.open(home, passphrase=passphrase), False
            return cls._create(home, database_url, chain_url, "operator", passphrase, {}), True

    @classmethod
    def _create(
        cls,
        home: Path,
        database_url: str | None,
        chain_url: str | None,
        operator: str,
        passphrase: str | None,
        chain_options: dict[str, Any],
    ) -> Deployment:
        if (home / CONFIG).exists():
            raise InputError(f"{home} already holds a deployment ({CONFIG} exists)")
        if (home / "chain").exists() or (home / "keys").exists():
            raise InputError(
                f"{home} holds a chain or keys but no {CONFIG}: an earlier init did not finish; "
                "move it aside or choose another --home"
            )
        passphrase = passphrase or LedgerSettings.read().passphrase
        if not passphrase:
            raise InputError(f"set {PASSPHRASE_ENV}: it encrypts the deployment's signing keys")
        database_url = database_url or sqlite_url(home / "ledger.db")
        store = Store.open(database_url)
        try:
            claim = _claim_database(store, database_url)
        except BaseException:
            store.close()
            raise
        try:
            signer = Signer.generate()
            save_key(home, operator, signer, passphrase=passphrase)
            deployment_secret(home)
            chain = _deploy(home, chain_url, signer, operator_id=operator, **chain_options)
        except BaseException:
            _release_claim(store, claim)
            store.close()
            raise
        try:
            config: dict[str, Any] = {
                "database_url": database_url,
                "chain_url": chain_url,
                "domain": chain.domain.to_json(),
                "operator": operator,
            }
            _settle_claim(store, claim, chain.domain.verifying_contract)
            registry = Registry(store)
            registry.sync(chain)
        finally:
            chain.close()
        _private(home)
        tmp = home / (CONFIG + ".tmp")
        write_private(tmp, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())
        tmp.replace(home / CONFIG)
        return cls._build(home, config, store, registry, passphrase)

    @classmethod
    def open(
        cls, home: Path, *, passphrase: str | None = None, database_url: str | None = None
    ) -> Deployment:
        """Open an existing deployment.

        Args:
            home: the deployment's folder.
            passphrase: opens the key files (default: FORGEPROOF_KEY_PASSPHRASE).
            database_url: the database (default: FORGEPROOF_DATABASE_URL, else the config's).

        Raises:
            NotFound: no deployment at `home`.
            ContractMismatch: the database serves another deployment.
        """
        path = home / CONFIG
        if not path.is_file():
            raise NotFound(f"no deployment at {home} (run `forgeproof init` first)")
        config = json.loads(path.read_text())
        url = database_url or LedgerSettings.read().database_url or config["database_url"]
        store = Store.open(url)
        try:
            _check_claim(store, Domain.from_json(config["domain"]).verifying_contract)
        except BaseException:
            store.close()
            raise
        return cls._build(home, config, store, Registry(store), passphrase)

    @classmethod
    def _build(
        cls,
        home: Path,
        config: dict[str, Any],
        store: Store,
        registry: Registry,
        passphrase: str | None,
    ) -> Deployment:
        return cls(
            home=home,
            config=config,
            store=store,
            log=Log(store),
            registry=registry,
            domain=Domain.from_json(config["domain"]),
            passphrase=passphrase or LedgerSettings.read().passphrase,
        )

    @property
    def operator(self) -> str:
        return str(self.config["operator"])

    def signer(self, participant: str) -> Signer:
        """The locally held key of `participant` that is valid now.

        Raises:
            NotFound: no unrevoked key of that participant is held here.
        """
        for key in reversed(self.registry.keys(participant)):
            if not key.active:
                continue
            path = key_path(self.home, participant, key.address)
            legacy = path.with_suffix(".key")  # plain hex, written before keystores
            if path.is_file():
                if path not in self._signers:
                    self._signers[path] = decrypt_key(path.read_bytes(), self.passphrase)
                return self._signers[path]
            if legacy.is_file():
                return Signer(bytes.fromhex(legacy.read_text().strip()))
        raise NotFound(f"no valid key of {participant!r} is held in {self.home / 'keys'}")

    def secret_box(self, purpose: str) -> SecretBox:
        """Seals secrets the database keeps (webhook HMAC secrets) with this deployment's."""
        return SecretBox(deployment_secret(self.home), purpose)

    def open_chain(self, *, sync: bool = True, **options: Any) -> ChainClient:
        """The deployment's chain client, acting as the operator, with the registry mirror
        synced to it (unless `sync` is off: `forgeproof registry sync` decides for itself).

        Embedded (eth-tester under HOME/chain) unless the config or FORGEPROOF_CHAIN_URL names
        a JSON-RPC node.

        Raises:
            ChainUnavailable: the node cannot be reached, or another process holds the chain.
            ContractMismatch: the contract is not the one the domain names.
            RegistryMismatch: the database's mirror says what the chain does not.
        """
        chain = _attach(self.home, self.chain_url, self.signer(self.operator), self.domain, options)
        try:
            if chain.domain != self.domain:
                raise ContractMismatch(
                    f"the chain's contract is {chain.address} on chain {chain.chain_id}; records "
                    f"here are signed for {self.domain.verifying_contract} on chain "
                    f"{self.domain.chain_id}"
                )
            if sync:
                self.registry.sync(chain)
        except BaseException:
            chain.close()
            raise
        return chain

    @property
    def chain_url(self) -> str | None:
        """The JSON-RPC node (FORGEPROOF_CHAIN_URL, else the config's), or None: embedded."""
        return LedgerSettings.read().chain_url or self.config.get("chain_url")

    def lazy_chain(self, **options: Any) -> LazyChain:
        """The deployment's chain, connected on first use and until then raising
        ChainUnavailable: a process starts, serves and appends while the node is down. The
        registry mirror is not synced on connecting (the service's follower does that)."""
        from ledger.chain.lazy import LazyChain

        return LazyChain(lambda: self.open_chain(sync=False, **options))

    def writer(self, chain: ChainClient) -> RegistryWriter:
        """Registry changes through `chain` (see `open_chain`), mirrored here."""
        return RegistryWriter(self.registry, chain)

    def close(self) -> None:
        self.store.close()


# A database serves one deployment: a row of `leases` under this name says which contract's
# (or, while `init` runs, which creator claimed it). Processes on other hosts, with homes of
# their own, cannot share `_home_lock`; this is what stops them making a second deployment.
CLAIM = "deployment"


def _claim_database(store: Store, url: str) -> str:
    """Claim a fresh database for the deployment being created; the claimant's id.

    Raises:
        InputError: the database serves a deployment already, or another process is creating
            one in it.
    """
    from sqlalchemy import func, insert, make_url, select

    from ledger.lease import candidate_id
    from ledger.registry import now_us
    from ledger.store.models import LeaseRow, LogState, RegistryEventRow

    claimant = candidate_id("init")
    with store.reading() as conn:
        holder = conn.execute(select(LeaseRow.holder).where(LeaseRow.name == CLAIM)).scalar()
        used = (conn.execute(select(LogState.size)).scalar() or 0) > 0 or conn.execute(
            select(func.count()).select_from(RegistryEventRow)
        ).scalar_one() > 0
    if holder is None and not used:
        try:
            with store.transaction() as conn:
                conn.execute(
                    insert(LeaseRow).values(
                        name=CLAIM, holder=claimant, term=0, beat=0, renewed_us=now_us()
                    )
                )
            return claimant
        except StorageError:
            with store.reading() as conn:
                holder = conn.execute(
                    select(LeaseRow.holder).where(LeaseRow.name == CLAIM)
                ).scalar()
    safe = make_url(url).render_as_string(hide_password=True)
    if holder is not None and not holder.startswith("0x"):
        raise InputError(
            f"another process ({holder}) is creating a deployment in {safe}; open that one "
            f"(copy its home) instead. If that process died, delete the row {CLAIM!r} of the "
            "leases table and try again"
        )
    raise InputError(
        f"{safe} already serves a deployment (contract {holder or 'unknown'}): open it with "
        "that deployment's home (copy it here) instead of creating another"
    )


def _settle_claim(store: Store, claimant: str, contract: str) -> None:
    from sqlalchemy import update

    from ledger.store.models import LeaseRow

    with store.transaction() as conn:
        conn.execute(
            update(LeaseRow)
            .where(LeaseRow.name == CLAIM, LeaseRow.holder == claimant)
            .values(holder=contract.lower())
        )


def _release_claim(store: Store, claimant: str) -> None:
    from sqlalchemy import delete

    from ledger.store.models import LeaseRow

    with suppress(StorageError), store.transaction() as conn:
        conn.execute(delete(LeaseRow).where(LeaseRow.name == CLAIM, LeaseRow.holder == claimant))


def _check_claim(store: Store, contract: str) -> None:
    """Refuse a home whose contract is not the one the database serves.

    Raises:
        ContractMismatch: the database belongs to another deployment.
    """
    from sqlalchemy import select

    from ledger.store.models import LeaseRow

    with store.reading() as conn:
        holder = conn.execute(select(LeaseRow.holder).where(LeaseRow.name == CLAIM)).scalar()
    if holder is not None and holder.startswith("0x") and holder != contract.lower():
        raise ContractMismatch(
            f"the database serves the deployment of contract {holder}, but this home's "
            f"config names {contract.lower()}: it belongs to another deployment"
        )


@contextmanager
def _home_lock(home: Path) -> Iterator[None]:
    """An exclusive lock on HOME/.lock (created 0700/0600), held while a deployment is created
    or opened-or-created: processes started at the same moment take turns."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(home / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _attach(
    home: Path, url: str | None, operator: Signer, domain: Domain, options: dict[str, Any]
) -> ChainClient:
    """The deployment's contract (the one its domain names) at `url`, or the embedded chain
    under HOME/chain, acting as `operator`. Never deploys."""
    from ledger.chain import ChainClient
    from ledger.chain import Deployment as ChainDeployment

    if not url:
        return ChainClient.embedded(home / "chain", private_key=operator.private_key, **options)
    file = home / "chain-deployment.json"
    block = ChainDeployment.load(file).block_number if file.exists() else 0
    return ChainClient.from_url(
        url,
        private_key=operator.private_key,
        address=domain.verifying_contract,
        deployment_block=block,
        **options,
    )


def _deploy(home: Path, url: str | None, operator: Signer, **options: Any) -> ChainClient:
    """The chain at `url` (or the embedded one under HOME/chain), acting as `operator`, with
    the contract deployed from `operator`'s key (or the one it already deployed)."""
    from ledger.chain import ChainClient

    if url:
        _fund_on_dev_node(url, operator.address)
        return ChainClient.from_url(
            url,
            private_key=operator.private_key,
            deployment_file=home / "chain-deployment.json",
            **options,
        )
    return ChainClient.embedded(home / "chain", private_key=operator.private_key, **options)


def _fund_on_dev_node(url: str, address: str) -> None:
    """On a development node (anvil), give the operator gas money; elsewhere fund it yourself."""
    from web3 import Web3
    from web3.exceptions import Web3Exception

    from ledger.chain.devnode import fund_dev_account

    w3 = Web3(
        Web3.HTTPProvider(url, request_kwargs={"timeout": 10}, exception_retry_configuration=None)
    )
    # Not fatal here: the deployment transaction will say what is wrong (requests' errors,
    # which web3 lets through, are OSErrors).
    with suppress(OSError, Web3Exception, ValueError):
        fund_dev_account(w3, address)


def key_path(home: Path, participant: str, address: str) -> Path:
    return home / "keys" / f"{participant}.{address}.json"


def save_key(
    home: Path, participant: str, signer: Signer, *, passphrase: str | None = None
) -> Path:
    """Write `signer` as an Ethereum keystore v3 file (0600) under HOME/keys (0700).

    Raises:
        InputError: no passphrase (`passphrase`, or FORGEPROOF_KEY_PASSPHRASE).
    """
    path = key_path(home, participant, signer.address)
    passphrase = passphrase or LedgerSettings.read().passphrase
    if not passphrase:
        raise InputError(f"set {PASSPHRASE_ENV}: it encrypts the signing keys held here")
    write_private(path, encrypt_key(signer, passphrase))
    return path


def _private(home: Path) -> None:
    """HOME and what it holds: folders 0700, files 0600."""
    for root, dirs, files in os.walk(home):
        os.chmod(root, 0o700)
        for name in dirs:
            os.chmod(Path(root) / name, 0o700)
        for name in files:
            os.chmod(Path(root) / name, 0o600)
