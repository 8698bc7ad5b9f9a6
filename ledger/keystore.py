"""Secrets at rest: signing keys as Ethereum keystore v3 files, and the deployment secret.

A signing key is written as the JSON keystore any Ethereum tool reads (geth, MetaMask import,
`eth_account.Account.decrypt`): scrypt over a passphrase, AES-128-CTR, a MAC. The passphrase
comes from `FORGEPROOF_KEY_PASSPHRASE` (or, on a terminal, a prompt); nothing on disk opens a
key without it. scrypt's cost is `FORGEPROOF_KEYSTORE_SCRYPT_N` (default eth-account's 2**18,
~1 s and 256 MiB per key operation; tests and development lower it, real keys keep it).
Files are mode 0600 in 0700 folders.

The deployment secret (HOME/secret, 32 random bytes, 0600) derives the keys that encrypt other
secrets the database keeps (webhook HMAC secrets, see `SecretBox`): a reader of the database
alone, PostgreSQL's included, learns none of them.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from eth_account import Account

from ledger.errors import InputError
from ledger.settings import LedgerSettings
from ledger.signing import Signer

# The variables (read by `ledger.settings`), named in messages that ask for them.
PASSPHRASE_ENV = "FORGEPROOF_KEY_PASSPHRASE"
SCRYPT_N_ENV = "FORGEPROOF_KEYSTORE_SCRYPT_N"
SECRET_FILE = "secret"


def write_private(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 (never readable by others, not even for a moment)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def encrypt_key(signer: Signer, passphrase: str, *, scrypt_n: int | None = None) -> bytes:
    """The key as an Ethereum keystore v3 JSON document.

    Args:
        signer: the key.
        passphrase: what opens the document again.
        scrypt_n: scrypt's cost, a power of two (default: FORGEPROOF_KEYSTORE_SCRYPT_N, else
            eth-account's standard 2**18).

    Raises:
        InputError: an empty passphrase, or a cost that is no power of two.
    """
    if not passphrase:
        raise InputError(f"an empty passphrase protects nothing: set {PASSPHRASE_ENV}")
    n = LedgerSettings.read().keystore_scrypt_n if scrypt_n is None else scrypt_n
    if n < 2 or n & (n - 1):
        raise InputError(f"scrypt's cost must be a power of two, got {n}")
    keystore = Account.encrypt(signer.private_key, passphrase, kdf="scrypt", iterations=n)
    return json.dumps(keystore, indent=2).encode() + b"\n"


def decrypt_key(data: bytes, passphrase: str | None) -> Signer:
    """Raises: InputError: no passphrase, a wrong one, or not a keystore."""
    if passphrase is None:
        raise InputError(f"the signing key is encrypted: set {PASSPHRASE_ENV}")
    try:
        keystore = json.loads(data)
    except ValueError:
        raise InputError("not an Ethereum keystore (JSON) file") from None
    try:
        return Signer(bytes(Account.decrypt(keystore, passphrase)))
    except ValueError as exc:  # eth-account's "MAC mismatch" and friends
        raise InputError(f"cannot open the signing key: {exc} (wrong passphrase?)") from None


def deployment_secret(home: Path) -> bytes:
    """HOME's 32-byte secret, created (0600) on first use."""
    path = home / SECRET_FILE
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            write_private(path, secrets.token_bytes(32))
    data = path.read_bytes()
    if len(data) != 32:
        raise InputError(f"{path} is {len(data)} bytes, expected 32")
    return data


class SecretBox:
    """Encrypts small secrets for the database with a key derived from the deployment secret
    (Fernet: AES-128-CBC and HMAC-SHA256)."""

    PREFIX = "fernet:"

    def __init__(self, deployment_secret: bytes, purpose: str) -> None:
        key = hashlib.sha256(b"forgeproof/" + purpose.encode() + b"/" + deployment_secret).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, plaintext: str) -> str:
        return self.PREFIX + self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        """Raises: InputError: sealed with another key, or tampered with."""
        if not sealed.startswith(self.PREFIX):
            return sealed  # written before secrets were sealed
        try:
            return self._fernet.decrypt(sealed[len(self.PREFIX) :].encode()).decode()
        except InvalidToken:
            raise InputError(
                "a sealed secret does not open with this deployment's secret"
            ) from None
