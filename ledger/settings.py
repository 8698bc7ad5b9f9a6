"""What the ledger reads from the environment (FORGEPROOF_*), in one place.

Library functions take these values as arguments; where an argument is left out, they read
`LedgerSettings.read()` at call time (never at import time), so that a process, or a test,
that sets a variable later is heard.

    FORGEPROOF_DATABASE_URL        database of an opened deployment, over its config's
    FORGEPROOF_CHAIN_URL           JSON-RPC node of a deployment, over its config's
    FORGEPROOF_KEY_PASSPHRASE      opens the deployment's keystore files
    FORGEPROOF_KEYSTORE_SCRYPT_N   scrypt cost of new keystore files (a power of two)
    FORGEPROOF_ANVIL               the anvil binary (a path, or a name on PATH)
    FORGEPROOF_SOLCJS              the solc-js compiler (development only)

An empty variable counts as unset.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.errors import InputError

ENV_PREFIX = "FORGEPROOF_"
# scrypt's N: eth-account's (and geth's) standard 2**18 takes ~1 s and 256 MiB per key
# operation. Tests and development lower it through the environment; real keys keep it.
DEFAULT_SCRYPT_N = 2**18


class LedgerSettings(BaseSettings):
    """The ledger's configuration from the environment (see the module docstring)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True)

    database_url: str | None = None
    chain_url: str | None = None
    key_passphrase: SecretStr | None = None
    keystore_scrypt_n: int = DEFAULT_SCRYPT_N
    anvil: str | None = None
    solcjs: Path | None = None

    @field_validator("keystore_scrypt_n")
    @classmethod
    def _power_of_two(cls, n: int) -> int:
        if n < 2 or n & (n - 1):
            raise ValueError(f"must be a power of two, got {n}")
        return n

    @classmethod
    def read(cls) -> LedgerSettings:
        """The settings as the environment says now.

        Raises:
            InputError: a variable does not parse (the message names it).
        """
        try:
            return cls()
        except ValidationError as exc:
            problems = "; ".join(
                f"{ENV_PREFIX}{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}"
                for e in exc.errors()
            )
            raise InputError(f"invalid environment: {problems}") from exc

    @property
    def passphrase(self) -> str | None:
        """FORGEPROOF_KEY_PASSPHRASE in the clear, or None."""
        return self.key_passphrase.get_secret_value() if self.key_passphrase else None
