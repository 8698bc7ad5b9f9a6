"""forgeproof provenance service (FastAPI)."""
