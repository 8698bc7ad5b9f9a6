"""A forgeproof receipt verifier that uses nothing of forgeproof.

Only the standard library, `rfc8785` (canonical JSON) and `eth-account` (EIP-712), as a third
party would write it from docs/receipt.md:

    python verify_receipt.py receipt.json        exit 0: every offline check holds
"""

import hashlib
import json
import sys

import rfc8785
from eth_account import Account
from eth_account.messages import encode_typed_data


def sha256(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        raise ValueError("index beyond tree size")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ValueError("proof too long")
        if fn & 1 or fn == sn:
            r = sha256(b"\x01" + p + r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = sha256(b"\x01" + r + p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ValueError("proof too short")
    return r


def verify(receipt: dict) -> list[str]:
    record = receipt["record"]
    # 1. canonical: leaf = SHA-256(0x00 || SHA-256(RFC 8785 JSON of the record))
    commitment = sha256(rfc8785.dumps(record))
    leaf = sha256(b"\x00" + commitment)
    assert "0x" + leaf.hex() == receipt["leaf_hash"], "record does not hash to the leaf"
    # 2. signature: EIP-712 typed data, signed by record.producer.address
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Record": [
                {"name": "kind", "type": "string"},
                {"name": "participant", "type": "string"},
                {"name": "createdAt", "type": "string"},
                {"name": "commitment", "type": "bytes32"},
            ],
        },
        "primaryType": "Record",
        "domain": receipt["domain"],
        "message": {
            "kind": record["kind"],
            "participant": record["producer"]["participant"],
            "createdAt": record["created_at"],
            "commitment": "0x" + commitment.hex(),
        },
    }
    signer = Account.recover_message(
        encode_typed_data(full_message=typed), signature=receipt["signature"]
    )
    assert signer.lower() == record["producer"]["address"], f"signed by {signer}"
    # 3. inclusion: the proof leads from the leaf to the checkpoint root
    proof = [bytes.fromhex(h[2:]) for h in receipt["inclusion_proof"]]
    cp = receipt["checkpoint"]
    root = root_from_inclusion_proof(leaf, receipt["leaf_index"], cp["size"], proof)
    assert "0x" + root.hex() == cp["root"], "proof does not lead to the checkpoint root"
    return ["canonical", "signature", "inclusion"]


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        checks = verify(json.load(f))
    print("ok:", ", ".join(checks))
