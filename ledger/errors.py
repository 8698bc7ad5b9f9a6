"""Exceptions of the ledger package, branched by what a caller can do about them."""

from __future__ import annotations


class LedgerError(Exception):
    """Root of every error the ledger raises on purpose."""


class InputError(LedgerError):
    """Malformed input: bad JSON, a field of the wrong shape, a truncated file."""


class InvalidLines(InputError):
    """Some submitted lines were refused, so a bulk append wrote nothing.

    Attributes:
        rejected: (line number, reason) of each refused line, in input order.
        stopped: checking stopped early, at the limit of refused lines.
    """

    def __init__(self, rejected: list[tuple[int, str]], *, stopped: bool) -> None:
        more = f" (stopped at the first {len(rejected)})" if stopped else ""
        super().__init__(f"{len(rejected)} invalid line(s){more}; nothing was appended")
        self.rejected = rejected
        self.stopped = stopped


class VerificationError(LedgerError):
    """Something claimed does not hold: a proof, a signature, a hash."""


class ProofError(VerificationError):
    """A Merkle inclusion or consistency proof is malformed or does not match the roots."""


class SignatureError(VerificationError):
    """A signature is malformed or was not made by the claimed signer."""


class KeyNotAuthorized(VerificationError):
    """The signing key is unknown, belongs to someone else, or was not valid at that time."""


class NotPermitted(VerificationError):
    """The participant's roles do not allow this: a supplier signing a prediction, an auditor
    signing anything."""


class RegistryMismatch(VerificationError):
    """The database's mirror of the on-chain registry says something the chain does not: it was
    edited behind forgeproof's back. Nothing is appended until it is repaired from the chain.

    Attributes:
        differences: what differs, one sentence each.
    """

    def __init__(self, differences: list[str]) -> None:
        shown = "; ".join(differences[:5]) + ("; ..." if len(differences) > 5 else "")
        super().__init__(
            f"the registry mirror disagrees with the chain in {len(differences)} place(s): {shown}"
        )
        self.differences = differences


class NotFound(LedgerError):
    """No such record, participant, key or checkpoint."""


class Conflict(LedgerError):
    """The operation contradicts stored state (a duplicate record, a concurrent append)."""


class StorageError(LedgerError):
    """The database failed underneath us."""


class ChainError(LedgerError):
    """The chain could not be reached or refused a transaction."""


class ChainUnavailable(ChainError):
    """The node cannot be reached (or kept failing after retries): queue and try again later."""


class TransactionReverted(ChainError):
    """The contract refused a call or transaction; `error_name` is its decoded custom error.

    Attributes:
        error_name: the Solidity custom error ("SizeNotIncreasing"), "Error" for a
            require-string, "Panic" for a panic, or "" when the revert carried no data.
        error_args: the decoded arguments, by parameter name.
        tx_hash: the 0x-hex hash of the mined transaction, when it got that far.
    """

    def __init__(
        self,
        message: str,
        *,
        error_name: str = "",
        error_args: dict[str, object] | None = None,
        tx_hash: str | None = None,
    ) -> None:
        super().__init__(message)
        self.error_name = error_name
        self.error_args = dict(error_args or {})
        self.tx_hash = tx_hash


class CheckpointConflict(ChainError):
    """The chain already holds another root for this size: the log and the chain disagree."""


class ContractMismatch(ChainError):
    """The code at the configured address is not the ProvenanceLedger build this client knows."""


class CompileError(LedgerError):
    """The Solidity compiler is missing, has the wrong version, or rejected the source."""
