"""Keys over time: rotation, revocation, and checks at the record's time."""

from __future__ import annotations

import pytest

from ledger.errors import Conflict, InputError, KeyNotAuthorized, NotFound
from ledger.registry import Registry
from ledger.signing import Signer
from ledger.store import Store

T0 = 1_700_000_000_000_000  # microseconds
HOUR = 3_600_000_000


def test_rotation_and_revocation_by_time(store: Store) -> None:
    reg = Registry(store)
    reg.add_participant("acme", "ACME", ["supplier"])
    k1, k2 = Signer.generate().address, Signer.generate().address
    reg.add_key("acme", k1, valid_from_us=T0)
    reg.rotate_key("acme", k2, at_us=T0 + 2 * HOUR)
    keys = reg.snapshot()
    now = T0 + 3 * HOUR
    # k1 signed before the rotation, but it is revoked now: nothing new is accepted from it.
    with pytest.raises(KeyNotAuthorized, match="revoked"):
        keys.check("acme", k1, T0 + HOUR, now)
    # ... while a receipt check at the record's own time still finds it valid then.
    keys.check("acme", k1, T0 + HOUR, T0 + HOUR)
    with pytest.raises(KeyNotAuthorized, match="not valid at the record's time"):
        keys.check("acme", k1, T0 + 2 * HOUR, T0 + 2 * HOUR)
    keys.check("acme", k2, T0 + 2 * HOUR + 1, now)
    with pytest.raises(KeyNotAuthorized, match="not valid"):
        keys.check("acme", k2, T0 + HOUR, now)  # backdated before k2 existed
    reg.revoke_key(k2, at_us=T0 + 4 * HOUR, reason="compromised")
    with pytest.raises(KeyNotAuthorized, match="revoked"):
        reg.snapshot().check("acme", k2, T0 + 5 * HOUR, T0 + 5 * HOUR)
    with pytest.raises(Conflict, match="already revoked"):
        reg.revoke_key(k2, at_us=T0 + 6 * HOUR)


def test_unknown_and_foreign_keys(store: Store) -> None:
    reg = Registry(store)
    reg.add_participant("a", "A", ["supplier"])
    reg.add_participant("b", "B", ["auditor"])
    ka = Signer.generate().address
    reg.add_key("a", ka, valid_from_us=T0)
    keys = reg.snapshot()
    with pytest.raises(KeyNotAuthorized, match="not registered"):
        keys.check("a", Signer.generate().address, T0, T0)
    with pytest.raises(KeyNotAuthorized, match="belongs to a, not to b"):
        keys.check("b", ka, T0, T0)


def test_registry_input_errors(store: Store) -> None:
    reg = Registry(store)
    with pytest.raises(InputError, match="unknown role"):
        reg.add_participant("x", "X", ["janitor"])
    reg.add_participant("x", "X", ["auditor", "maintainer"])
    assert reg.participant("x").roles == {"auditor", "maintainer"}
    with pytest.raises(Conflict, match="already exists"):
        reg.add_participant("x", "X", ["auditor"])
    with pytest.raises(NotFound):
        reg.add_key("nobody", Signer.generate().address)
    key = Signer.generate().address
    reg.add_key("x", key)
    with pytest.raises(Conflict, match="already registered"):
        reg.add_key("x", key)
