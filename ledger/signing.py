"""EIP-712 signatures over records (secp256k1), byte-identical to eth-account.

Typed data signed for every record:

    EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)
    Record(string kind,string participant,string createdAt,bytes32 commitment)

The domain binds the deployment (its chain and ProvenanceLedger contract); `commitment` binds
every byte of the canonical record, salt included, while kind, participant and time stay
readable in a wallet's signing prompt.

Key changes in the ProvenanceLedger registry are EIP-712 messages in the same domain, checked
by the contract itself (`ecrecover`):

    KeyBinding(string participant,address key,uint256 nonce)      signed by the key being bound
    KeyChange(string participant,address addKey,address revokeKey,uint256 nonce)
                                                                   signed by a valid key of it

`nonce` is the participant's key-change count on chain, so a signature is good for one change.

The fast path signs and recovers with coincurve (libsecp256k1) over cached domain separators
and type hashes; `typed_data()` gives the same message in eth-account's format, so any Ethereum
library can check a signature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import coincurve
import sha3  # safe-pysha3: a C Keccak-256, six times faster than pycryptodome's per call

from ledger.errors import SignatureError
from ledger.records import Record, hex0x

DOMAIN_NAME = "forgeproof"
DOMAIN_VERSION = "1"

EIP712_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
RECORD_TYPE = [
    {"name": "kind", "type": "string"},
    {"name": "participant", "type": "string"},
    {"name": "createdAt", "type": "string"},
    {"name": "commitment", "type": "bytes32"},
]

KEY_BINDING_TYPE = [
    {"name": "participant", "type": "string"},
    {"name": "key", "type": "address"},
    {"name": "nonce", "type": "uint256"},
]
KEY_CHANGE_TYPE = [
    {"name": "participant", "type": "string"},
    {"name": "addKey", "type": "address"},
    {"name": "revokeKey", "type": "address"},
    {"name": "nonce", "type": "uint256"},
]
ZERO_ADDRESS = "0x" + "00" * 20

# secp256k1 group order: signatures with s above half of it are malleable copies (EIP-2).
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def keccak256(data: bytes) -> bytes:
    return sha3.keccak_256(data).digest()


DOMAIN_TYPEHASH = keccak256(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
RECORD_TYPEHASH = keccak256(
    b"Record(string kind,string participant,string createdAt,bytes32 commitment)"
)

KEY_BINDING_TYPEHASH = keccak256(b"KeyBinding(string participant,address key,uint256 nonce)")
KEY_CHANGE_TYPEHASH = keccak256(
    b"KeyChange(string participant,address addKey,address revokeKey,uint256 nonce)"
)


@lru_cache(maxsize=4096)
def _keccak_str(s: str) -> bytes:
    # kind and participant repeat endlessly across records: hash each once.
    return keccak256(s.encode())


@dataclass(frozen=True)
class Domain:
    """The EIP-712 domain of one deployment."""

    chain_id: int
    verifying_contract: str
    name: str = DOMAIN_NAME
    version: str = DOMAIN_VERSION
    separator: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        sep = _separator(self.name, self.version, self.chain_id, self.verifying_contract)
        object.__setattr__(self, "separator", sep)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract.lower(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Domain:
        """The domain exactly as given: all four fields, nothing else, nothing filled in.

        Raises:
            ValueError: a field is missing, extra or of the wrong type.
        """
        fields = {"name", "version", "chainId", "verifyingContract"}
        if not isinstance(d, dict) or set(d) != fields:
            got = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"an EIP-712 domain has exactly {sorted(fields)}, got {got}")
        chain_id, contract = d["chainId"], d["verifyingContract"]
        if not isinstance(chain_id, int) or isinstance(chain_id, bool) or chain_id < 0:
            raise ValueError(f"chainId must be a non-negative integer, got {chain_id!r}")
        if not isinstance(contract, str) or contract != contract.lower():
            raise ValueError(f"verifyingContract must be lower-case hex, got {contract!r}")
        if not isinstance(d["name"], str) or not isinstance(d["version"], str):
            raise ValueError("name and version must be strings")
        return cls(
            chain_id=chain_id, verifying_contract=contract, name=d["name"], version=d["version"]
        )


@lru_cache(maxsize=256, typed=True)
def _separator(name: str, version: str, chain_id: int, verifying_contract: str) -> bytes:
    """A domain's EIP-712 separator: four Keccak hashes, remembered (every receipt a verifier
    reads names its domain, nearly always the same one). Failures are not remembered, and
    arguments of other types (1.0 for 1) are never confused (`typed`).

    Raises:
        ValueError: the contract is not 20 bytes of hex.
        OverflowError: the chain id does not fit 32 bytes.
    """
    contract = bytes.fromhex(verifying_contract.removeprefix("0x"))
    if len(contract) != 20:
        raise ValueError(f"verifying contract is {len(contract)} bytes, expected 20")
    return keccak256(
        DOMAIN_TYPEHASH
        + keccak256(name.encode())
        + keccak256(version.encode())
        + chain_id.to_bytes(32, "big")
        + contract.rjust(32, b"\0")
    )


def record_digest(
    domain: Domain, kind: str, participant: str, created_at: str, commitment: bytes
) -> bytes:
    """The 32-byte EIP-712 digest a producer signs for a record."""
    struct = keccak256(
        RECORD_TYPEHASH
        + _keccak_str(kind)
        + _keccak_str(participant)
        + keccak256(created_at.encode())
        + commitment
    )
    return keccak256(b"\x19\x01" + domain.separator + struct)


def digest_of(domain: Domain, record: Record, commitment: bytes | None = None) -> bytes:
    return record_digest(
        domain,
        record.kind,
        record.producer.participant,
        record.created_at,
        commitment if commitment is not None else record.commitment(),
    )


def typed_data(domain: Domain, record: Record) -> dict[str, Any]:
    """The same message as eth-account / eth_signTypedData_v4 `full_message`."""
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_TYPE, "Record": RECORD_TYPE},
        "primaryType": "Record",
        "domain": domain.to_json(),
        "message": {
            "kind": record.kind,
            "participant": record.producer.participant,
            "createdAt": record.created_at,
            "commitment": hex0x(record.commitment()),
        },
    }


def _address_word(address: str) -> bytes:
    raw = bytes.fromhex(address.removeprefix("0x"))
    if len(raw) != 20:
        raise ValueError(f"address is {len(raw)} bytes, expected 20")
    return raw.rjust(32, b"\0")


def key_binding_digest(domain: Domain, participant: str, key: str, nonce: int) -> bytes:
    """The digest `key` signs to consent to being bound to `participant` (proof of possession)."""
    struct = keccak256(
        KEY_BINDING_TYPEHASH
        + keccak256(participant.encode())
        + _address_word(key)
        + nonce.to_bytes(32, "big")
    )
    return keccak256(b"\x19\x01" + domain.separator + struct)


def key_change_digest(
    domain: Domain,
    participant: str,
    nonce: int,
    *,
    add: str | None = None,
    revoke: str | None = None,
) -> bytes:
    """The digest a valid key of `participant` signs to consent to adding `add` and/or
    revoking `revoke`."""
    struct = keccak256(
        KEY_CHANGE_TYPEHASH
        + keccak256(participant.encode())
        + _address_word(add or ZERO_ADDRESS)
        + _address_word(revoke or ZERO_ADDRESS)
        + nonce.to_bytes(32, "big")
    )
    return keccak256(b"\x19\x01" + domain.separator + struct)


def key_binding_typed_data(
    domain: Domain, participant: str, key: str, nonce: int
) -> dict[str, Any]:
    """`key_binding_digest`'s message as eth_signTypedData_v4 takes it."""
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_TYPE, "KeyBinding": KEY_BINDING_TYPE},
        "primaryType": "KeyBinding",
        "domain": domain.to_json(),
        "message": {"participant": participant, "key": key.lower(), "nonce": nonce},
    }


def key_change_typed_data(
    domain: Domain,
    participant: str,
    nonce: int,
    *,
    add: str | None = None,
    revoke: str | None = None,
) -> dict[str, Any]:
    """`key_change_digest`'s message as eth_signTypedData_v4 takes it."""
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_TYPE, "KeyChange": KEY_CHANGE_TYPE},
        "primaryType": "KeyChange",
        "domain": domain.to_json(),
        "message": {
            "participant": participant,
            "addKey": (add or ZERO_ADDRESS).lower(),
            "revokeKey": (revoke or ZERO_ADDRESS).lower(),
            "nonce": nonce,
        },
    }


def address_of_public_key(pub: coincurve.PublicKey) -> str:
    return hex0x(keccak256(pub.format(compressed=False)[1:])[-20:])


class Signer:
    """A producer's signing key (fast path: libsecp256k1 through coincurve)."""

    def __init__(self, private_key: bytes) -> None:
        if len(private_key) != 32:
            raise ValueError(f"private key is {len(private_key)} bytes, expected 32")
        self._key = coincurve.PrivateKey(private_key)
        self.address = address_of_public_key(self._key.public_key)

    @classmethod
    def generate(cls) -> Signer:
        return cls(coincurve.PrivateKey().secret)

    @property
    def private_key(self) -> bytes:
        return bytes(self._key.secret)

    def sign_digest(self, digest: bytes) -> bytes:
        """65 bytes r || s || v with v in {27, 28}, as Ethereum signs."""
        sig = self._key.sign_recoverable(digest, hasher=None)
        return sig[:64] + bytes([27 + sig[64]])

    def sign(self, domain: Domain, record: Record) -> bytes:
        return self.sign_digest(digest_of(domain, record))


def sign_key_binding(
    signer: Signer, domain: Domain, participant: str, key: str, nonce: int
) -> bytes:
    """`signer`'s KeyBinding signature: proof that it holds `key` (itself) for `participant`."""
    return signer.sign_digest(key_binding_digest(domain, participant, key, nonce))


def sign_key_change(
    signer: Signer,
    domain: Domain,
    participant: str,
    nonce: int,
    *,
    add: str | None = None,
    revoke: str | None = None,
) -> bytes:
    """`signer`'s KeyChange signature: consent to `participant` adding and/or revoking keys."""
    return signer.sign_digest(key_change_digest(domain, participant, nonce, add=add, revoke=revoke))


def recover_digest(digest: bytes, signature: bytes) -> str:
    """The address whose key made `signature` over `digest`.

    Raises:
        SignatureError: wrong length, v not 27/28, high s (malleable), or no key recovers.
    """
    if len(signature) != 65:
        raise SignatureError(f"signature is {len(signature)} bytes, expected 65")
    v = signature[64]
    if v not in (27, 28):
        raise SignatureError(f"signature v is {v}, expected 27 or 28")
    s = int.from_bytes(signature[32:64], "big")
    if not 0 < s <= _N // 2:
        raise SignatureError("signature s is not in the lower half of the curve order (EIP-2)")
    try:
        pub = coincurve.PublicKey.from_signature_and_message(
            signature[:64] + bytes([v - 27]), digest, hasher=None
        )
    except Exception as exc:  # coincurve raises bare Exception for unrecoverable input
        raise SignatureError(f"no public key recovers from this signature: {exc}") from None
    return address_of_public_key(pub)


def verify_record_signature(
    domain: Domain, record: Record, signature: bytes, commitment: bytes | None = None
) -> None:
    """Check that `record.producer.address` signed `record` in `domain`.

    Raises:
        SignatureError: the signature is malformed or was made by another key.
    """
    signer = recover_digest(digest_of(domain, record, commitment), signature)
    if signer != record.producer.address:
        raise SignatureError(
            f"signature was made by {signer}, record claims producer {record.producer.address}"
        )
