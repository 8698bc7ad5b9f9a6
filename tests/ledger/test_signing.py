"""EIP-712 record signatures: byte-identical to eth-account, fast recovery, malleability."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import SignatureError
from ledger.records import Record
from ledger.signing import (
    Domain,
    Signer,
    digest_of,
    recover_digest,
    typed_data,
    verify_record_signature,
)

DOMAIN = Domain(chain_id=131277322940537, verifying_contract="0x" + "ab" * 20)


@settings(max_examples=25, deadline=None)
@given(
    key=st.binary(min_size=32, max_size=32).filter(lambda b: 0 < int.from_bytes(b, "big") < 2**255),
    kind=st.sampled_from(["prediction", "inspection", "epcis_event"]),
    participant=st.from_regex(r"^[A-Za-z0-9._:-]{1,20}$", fullmatch=True),
    payload=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
)
def test_byte_identical_to_eth_account(
    key: bytes, kind: str, participant: str, payload: dict
) -> None:
    signer = Signer(key)
    assert signer.address == Account.from_key(key).address.lower()
    payload = {k: v for k, v in payload.items() if not isinstance(v, int) or abs(v) < 2**53}
    rec = Record.new(kind, payload, participant=participant, address=signer.address)
    ours = signer.sign(DOMAIN, rec)
    theirs = Account.sign_typed_data(key, full_message=typed_data(DOMAIN, rec))
    assert ours == bytes(theirs.signature)
    assert digest_of(DOMAIN, rec) == bytes(theirs.message_hash)
    recovered = Account.recover_message(
        encode_typed_data(full_message=typed_data(DOMAIN, rec)), signature=ours
    )
    assert recovered.lower() == signer.address
    verify_record_signature(DOMAIN, rec, ours)


def _signed() -> tuple[Signer, Record, bytes]:
    signer = Signer.generate()
    rec = Record.new("note", {"a": 1}, participant="p", address=signer.address)
    return signer, rec, signer.sign(DOMAIN, rec)


def test_wrong_signer_is_named() -> None:
    _, rec, _ = _signed()
    other = Signer.generate()
    with pytest.raises(SignatureError, match="record claims producer"):
        verify_record_signature(DOMAIN, rec, other.sign(DOMAIN, rec))


def test_other_domain_does_not_verify() -> None:
    _, rec, sig = _signed()
    elsewhere = Domain(chain_id=1, verifying_contract=DOMAIN.verifying_contract)
    with pytest.raises(SignatureError):
        verify_record_signature(elsewhere, rec, sig)


def test_tampered_record_does_not_verify() -> None:
    _, rec, sig = _signed()
    tampered = rec.model_copy(update={"payload": {"a": 2}})
    with pytest.raises(SignatureError):
        verify_record_signature(DOMAIN, tampered, sig)


def test_malformed_and_malleable_signatures() -> None:
    _, rec, sig = _signed()
    digest = digest_of(DOMAIN, rec)
    with pytest.raises(SignatureError, match="65"):
        recover_digest(digest, sig[:64])
    with pytest.raises(SignatureError, match="v is"):
        recover_digest(digest, sig[:64] + b"\x05")
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    s = int.from_bytes(sig[32:64], "big")
    flipped = sig[:32] + (n - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    with pytest.raises(SignatureError, match="EIP-2"):
        recover_digest(digest, flipped)
    with pytest.raises(SignatureError):
        recover_digest(digest, b"\x00" * 64 + b"\x1b")
