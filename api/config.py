"""Settings of the provenance service, read from the environment once (FORGEPROOF_*)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FORGEPROOF_")

    home: Path = Path("forgeproof-home")
    database_url: str | None = None  # default: the deployment's own (SQLite in home)
    chain_url: str | None = None  # default: the embedded chain in home
    max_body_bytes: int = 4 * 1024 * 1024
    page_limit: int = 500
    receipt_cache_entries: int = 4096  # encoded receipts kept in memory, ~2 KB each
    # POST /v1/records and /v1/verify answered before routing when they can be (api/fastpost.py);
    # off (FORGEPROOF_FAST_POST=0) every request takes the routes: the bench's baseline.
    fast_post: bool = True
    checkpoint_every: int = 256  # records
    checkpoint_interval_s: float = 5.0
    webhook_timeout_s: float = 5.0
    webhook_max_attempts: int = 8
    # Run a sequencer candidate in this process (one of all candidates publishes, by lease).
    sequencer: bool = True
    lease_ttl_s: float = 6.0  # a dead sequencer's lease is taken over after this long
    max_anchor_lag_s: float = 60.0  # past this, /healthz says degraded and an alarm is raised
    # Webhook targets on loopback, private, link-local or reserved addresses: development only.
    allow_private_webhooks: bool = False
    webhook_workers: int = 8  # deliveries in flight at once, one subscription at a time each
    # A prediction whose input check flags its input (unlike the model's training inputs):
    # "flag" signs it with the flag in its payload; "refuse" answers 422 and appends nothing.
    input_policy: Literal["flag", "refuse"] = "flag"
