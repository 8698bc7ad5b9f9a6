"""LedgerSettings reads FORGEPROOF_* when asked, and the library hears it at call time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger.chain.compile import find_solcjs
from ledger.chain.devnode import find_anvil
from ledger.errors import InputError
from ledger.keystore import encrypt_key
from ledger.settings import DEFAULT_SCRYPT_N, LedgerSettings
from ledger.signing import Signer

VARIABLES = {
    "FORGEPROOF_DATABASE_URL": "postgresql://db.example/forgeproof",
    "FORGEPROOF_CHAIN_URL": "http://node.example:8545",
    "FORGEPROOF_KEY_PASSPHRASE": "correct horse",
    "FORGEPROOF_KEYSTORE_SCRYPT_N": "2048",
    "FORGEPROOF_ANVIL": "/opt/foundry/anvil",
    "FORGEPROOF_SOLCJS": "/opt/solc/solcjs",
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_it_reads_every_variable(clean_env: pytest.MonkeyPatch) -> None:
    for name, value in VARIABLES.items():
        clean_env.setenv(name, value)
    settings = LedgerSettings.read()
    assert settings.database_url == "postgresql://db.example/forgeproof"
    assert settings.chain_url == "http://node.example:8545"
    assert settings.passphrase == "correct horse"
    assert "correct horse" not in repr(settings)
    assert settings.keystore_scrypt_n == 2048
    assert settings.anvil == "/opt/foundry/anvil"
    assert settings.solcjs == Path("/opt/solc/solcjs")


def test_unset_or_empty_variables_give_the_defaults(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FORGEPROOF_CHAIN_URL", "")
    clean_env.setenv("FORGEPROOF_SOLCJS", "")
    settings = LedgerSettings.read()
    assert settings.database_url is None and settings.chain_url is None
    assert settings.passphrase is None
    assert settings.keystore_scrypt_n == DEFAULT_SCRYPT_N
    assert settings.anvil is None and settings.solcjs is None


@pytest.mark.parametrize("value", ["1000", "1", "many"])
def test_a_bad_value_is_an_input_error_naming_the_variable(
    clean_env: pytest.MonkeyPatch, value: str
) -> None:
    clean_env.setenv("FORGEPROOF_KEYSTORE_SCRYPT_N", value)
    with pytest.raises(InputError, match="FORGEPROOF_KEYSTORE_SCRYPT_N"):
        LedgerSettings.read()


def test_the_library_reads_the_environment_at_call_time(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    anvil = tmp_path / "anvil"
    solcjs = tmp_path / "solcjs"
    anvil.touch()
    solcjs.touch()
    clean_env.setenv("FORGEPROOF_ANVIL", str(anvil))
    clean_env.setenv("FORGEPROOF_SOLCJS", str(solcjs))
    clean_env.setenv("FORGEPROOF_KEYSTORE_SCRYPT_N", "512")
    assert find_anvil() == str(anvil)
    assert find_solcjs() == solcjs
    keystore = json.loads(encrypt_key(Signer.generate(), "secret"))
    assert keystore["crypto"]["kdfparams"]["n"] == 512
    # An argument wins over the environment.
    other = tmp_path / "other"
    other.touch()
    assert find_anvil(str(other)) == str(other)
    assert find_anvil(str(tmp_path / "missing")) is None
    assert find_solcjs(other) == other
    keystore = json.loads(encrypt_key(Signer.generate(), "secret", scrypt_n=256))
    assert keystore["crypto"]["kdfparams"]["n"] == 256
