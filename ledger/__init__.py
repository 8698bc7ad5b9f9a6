"""forgeproof ledger: signed records in an RFC 6962 Merkle log with offline-verifiable receipts."""

__version__ = "0.1.0"
