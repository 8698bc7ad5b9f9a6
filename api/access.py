"""Who may read which record: one policy, `may_read`, and its SQL form, `visible`.

- operator, manufacturer, auditor: everything;
- supplier, model publisher: the records they produced;
- maintainer: predictions about the assets assigned to it.

Every path that hands out records goes through it: reading one, listing, the feed, receipts
(the fast path included), exports and webhook deliveries (`api.service`, which delivers a record
to a subscription exactly when its owner could GET it). `visible` is the same rule as a query
filter; tests check the two agree on every (kind, role, relation).

A record someone may not see is answered exactly like a record that does not exist for them
(403), so a response never tells whether a record exists.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.engine import Connection

from api.auth import Caller
from api.tables import AssetAssignment, RecordTag
from ledger.log import StoredRecord
from ledger.store.models import RecordRow

# The only kind a maintenance partner receives: what a model predicted about its assets.
MAINTAINER_KINDS = frozenset({"prediction"})


@dataclass(frozen=True, slots=True)
class RecordFacts:
    """What the policy looks at: a record's kind, producer and the asset it is about."""

    kind: str
    producer: str
    asset: str | None


def may_read(caller: Caller, facts: RecordFacts, assigned: Collection[str]) -> bool:
    """Whether `caller` may read a record with these facts; `assigned` holds the assets
    assigned to the caller's participant (consulted for maintainers only)."""
    if caller.reads_everything:
        return True
    if caller.role == "maintainer":
        return (
            facts.kind in MAINTAINER_KINDS and facts.asset is not None and facts.asset in assigned
        )
    return facts.producer == caller.participant


def visible(query: Select[Any], caller: Caller) -> Select[Any]:
    """Restrict a query over `records` to what `caller` may read (`may_read` as SQL)."""
    if caller.reads_everything:
        return query
    if caller.role == "maintainer":
        mine = select(AssetAssignment.asset).where(AssetAssignment.maintainer == caller.participant)
        return query.where(
            RecordRow.kind.in_(MAINTAINER_KINDS),
            RecordRow.leaf_index.in_(select(RecordTag.leaf_index).where(RecordTag.asset.in_(mine))),
        )
    return query.where(RecordRow.participant == caller.participant)


def assigned_assets(conn: Connection, participant: str) -> set[str]:
    return set(
        conn.execute(
            select(AssetAssignment.asset).where(AssetAssignment.maintainer == participant)
        ).scalars()
    )


def may_see(conn: Connection, caller: Caller, stored: StoredRecord) -> bool:
    """`may_read` for a stored record, looking its asset and the caller's assets up."""
    if caller.reads_everything:
        return True
    asset = None
    assigned: set[str] = set()
    if caller.role == "maintainer":
        asset = conn.execute(
            select(RecordTag.asset).where(RecordTag.leaf_index == stored.index)
        ).scalar()
        assigned = assigned_assets(conn, caller.participant)
    return may_read(caller, RecordFacts(stored.kind, stored.participant, asset), assigned)
