"""forgeproof ML: predictive-maintenance and inspection models whose outputs the ledger signs."""
