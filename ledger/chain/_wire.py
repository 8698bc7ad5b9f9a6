"""Conversions between web3's values and the project's wire forms (lower-case 0x hex)."""

from __future__ import annotations

from typing import Any

from eth_typing import ChecksumAddress
from eth_utils import keccak, to_checksum_address

from ledger.errors import InputError


def hex0x(b: bytes) -> str:
    """0x-prefixed lower-case hex (HexBytes included, whose own `hex()` varies by version)."""
    return "0x" + bytes(b).hex()


def wire_address(address: str) -> str:
    """Lower-case 0x address, the project's wire form.

    Raises:
        InputError: not an address (or a mixed-case one with a wrong checksum).
    """
    return checksum(address).lower()


def checksum(address: str) -> ChecksumAddress:
    """The EIP-55 form web3 insists on.

    Raises:
        InputError: not an address (or a mixed-case one with a wrong checksum).
    """
    try:
        return to_checksum_address(address)
    except ValueError as exc:
        raise InputError(f"not an address: {address!r}") from exc


def event_topic(abi: Any) -> str:
    """topic0 of an ABI event: the keccak of its signature, as 0x hex."""
    signature = f"{abi['name']}({','.join(i['type'] for i in abi['inputs'])})"
    return hex0x(keccak(text=signature))
