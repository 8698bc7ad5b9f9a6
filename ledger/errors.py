"""Exceptions of the ledger package, branched by what a caller can do about them."""

from __future__ import annotations


class LedgerError(Exception):
    """Root of every error the ledger raises on purpose."""


class InputError(LedgerError):
    """Malformed input: bad JSON, a field of the wrong shape, a truncated file."""


class VerificationError(LedgerError):
    """Something claimed does not hold: a proof, a signature, a hash."""


class ProofError(VerificationError):
    """A Merkle inclusion or consistency proof is malformed or does not match the roots."""


class SignatureError(VerificationError):
    """A signature is malformed or was not made by the claimed signer."""


class KeyNotAuthorized(VerificationError):
    """The signing key is unknown, belongs to someone else, or was not valid at that time."""


class NotFound(LedgerError):
    """No such record, participant, key or checkpoint."""


class Conflict(LedgerError):
    """The operation contradicts stored state (a duplicate record, a concurrent append)."""


class StorageError(LedgerError):
    """The database failed underneath us."""


class ChainError(LedgerError):
    """The chain could not be reached or refused a transaction."""
