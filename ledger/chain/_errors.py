"""Translate what web3, eth-tester and HTTP throw into `ledger.errors` at the boundary.

A revert reaches us in two shapes: from a JSON-RPC node, web3 raises `ContractLogicError`
(`ContractCustomError` for custom errors) with the revert data as 0x-hex in `.data`; from
eth-tester it raises `TransactionFailed`, whose cause chain holds py-evm's `Revert(bytes)` or
that object's repr. Both decode here, against the contract ABI, into one `TransactionReverted`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from typing import Any

import requests
from eth.exceptions import Revert as EVMRevert
from eth_abi import abi as eth_abi
from eth_abi.exceptions import DecodingError
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak
from web3 import exceptions as w3exc

from ledger.errors import ChainError, ChainUnavailable, LedgerError, TransactionReverted

_BYTES_REPR = re.compile(r"""b(['"]).*\1""", re.DOTALL)
_STANDARD_ERRORS = [
    {"type": "error", "name": "Error", "inputs": [{"name": "message", "type": "string"}]},
    {"type": "error", "name": "Panic", "inputs": [{"name": "code", "type": "uint256"}]},
]

# Failures worth retrying: the node did not answer, or answered "later".
TRANSIENT: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    ConnectionError,
    TimeoutError,
    w3exc.ProviderConnectionError,
    w3exc.TooManyRequests,
    w3exc.RequestTimedOut,
)


def _canonical_type(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in param["components"])
        return f"({inner}){param['type'][5:]}"
    return str(param["type"])


class ErrorDecoder:
    """Custom errors of an ABI (plus Error(string) and Panic(uint256)), by selector."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for item in [*abi, *_STANDARD_ERRORS]:
            if item.get("type") != "error":
                continue
            types = [_canonical_type(p) for p in item["inputs"]]
            selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
            self._errors[selector] = (item["name"], [p["name"] for p in item["inputs"]], types)

    def decode(self, data: bytes) -> tuple[str, dict[str, object]]:
        """(error name, arguments by name); ("", {}) for empty data, "unknown" if unlisted."""
        if not data:
            return "", {}
        known = self._errors.get(data[:4])
        if known is None:
            return "unknown", {"data": "0x" + data.hex()}
        name, names, types = known
        try:
            values = eth_abi.decode(types, data[4:])
        except DecodingError:
            return name, {"data": "0x" + data.hex()}
        return name, {n: _jsonable(v) for n, v in zip(names, values, strict=True)}


def _jsonable(value: object) -> object:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it wraps, nearest first; never into errors we raised ourselves, whose
    causes belong to an earlier, already translated failure."""
    seen: set[int] = set()
    queue: list[BaseException | None] = [exc]
    while queue:
        e = queue.pop(0)
        if e is None or id(e) in seen or isinstance(e, LedgerError):
            continue
        seen.add(id(e))
        yield e
        queue.extend(a for a in e.args if isinstance(a, BaseException))
        queue.extend([e.__cause__, e.__context__])


def revert_data(exc: BaseException) -> bytes | None:
    """The raw revert data carried by a web3 or eth-tester revert, or None if `exc` is none."""
    is_revert = False
    for e in _chain(exc):
        if isinstance(e, w3exc.ContractLogicError):
            is_revert = True
            data = e.data
            if isinstance(data, dict):
                data = data.get("data") or data.get("result")
            if isinstance(data, str) and data.startswith("0x"):
                return bytes.fromhex(data[2:])
        elif isinstance(e, EVMRevert):
            is_revert = True
            if e.args and isinstance(e.args[0], bytes):
                return bytes(e.args[0])
        elif isinstance(e, TransactionFailed):
            is_revert = True
            for arg in e.args:
                if isinstance(arg, str) and (m := _BYTES_REPR.search(arg)):
                    try:
                        return bytes(ast.literal_eval(m.group(0)))
                    except (ValueError, SyntaxError):
                        continue
    return b"" if is_revert else None


def is_revert(exc: BaseException) -> bool:
    return revert_data(exc) is not None


def reverted(
    exc: BaseException | None,
    decoder: ErrorDecoder,
    what: str,
    *,
    data: bytes | None = None,
    tx_hash: str | None = None,
) -> TransactionReverted:
    """A `TransactionReverted` naming the decoded custom error of `exc` (or of `data`)."""
    if data is None and exc is not None:
        data = revert_data(exc)
    name, args = decoder.decode(data or b"")
    shown = ", ".join(f"{k}={v}" for k, v in args.items())
    detail = f"{name}({shown})" if name else (str(exc) if exc else "no revert data")
    return TransactionReverted(
        f"{what} reverted: {detail}", error_name=name, error_args=args, tx_hash=tx_hash
    )


def unavailable(what: str, exc: BaseException, attempts: int) -> ChainUnavailable:
    return ChainUnavailable(f"{what}: node unreachable after {attempts} attempt(s): {exc}")


def foreign(what: str, exc: BaseException) -> ChainError:
    """Any other failure from below, as a ChainError that keeps the original as its cause."""
    return ChainError(f"{what} failed: {type(exc).__name__}: {exc}")


def is_nonce_error(exc: BaseException) -> bool:
    """The node refused the nonce (anvil/geth: "nonce too low"; py-evm: "Invalid ... nonce")."""
    text = " ".join(str(e) for e in [exc, *_chain_all(exc)]).lower()
    return "nonce" in text and ("too low" in text or "invalid" in text or "expected" in text)


def _chain_all(exc: BaseException) -> Iterator[BaseException]:
    e = exc.__cause__ or exc.__context__
    while e is not None:
        yield e
        e = e.__cause__ or e.__context__


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt: the node did not answer, or answered "later" (never a revert,
    nor an error we raised ourselves)."""
    if isinstance(exc, LedgerError) or is_revert(exc):
        return False
    return isinstance(exc, TRANSIENT) or http_transient(exc)


def http_transient(exc: BaseException) -> bool:
    """HTTP 429 and 5xx are worth retrying; other HTTP errors are not."""
    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        return exc.response.status_code == 429 or exc.response.status_code >= 500
    return False
