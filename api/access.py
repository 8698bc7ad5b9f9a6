"""Who may read which record: one policy, `may_read`, and its SQL form, `visible`.

- operator, manufacturer, auditor: everything;
- supplier, model publisher: the records they produced;
- maintainer: predictions and inspections about the assets assigned to it (what a model said
  about the machines it services; an inspection is about an asset when its payload names one,
  see `api.service.record_tags`).

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

# What a maintenance partner reads about its assets: what a model predicted (remaining life)
# and what it found on inspection (a verdict, with its Grad-CAM overlay kept beside it).
# Webhooks deliver exactly these too (`api.service`), as they deliver what a GET allows.
MAINTAINER_KINDS = frozenset({"prediction", "inspection"})


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


def readable_assets(conn: Connection, caller: Caller) -> dict[str, list[str]]:
    """The assets `caller` may look at, each with its maintenance partners: a maintainer's own
    assignments; every assignment for a caller that reads everything; none for anyone else.

    A maintainer is shown only its own name beside its assets: who else services an asset is
    not its business.
    """
    q = select(AssetAssignment.asset, AssetAssignment.maintainer).order_by(
        AssetAssignment.asset, AssetAssignment.maintainer
    )
    if caller.role == "maintainer":
        q = q.where(AssetAssignment.maintainer == caller.participant)
    elif not caller.reads_everything:
        return {}
    out: dict[str, list[str]] = {}
    for asset, maintainer in conn.execute(q).all():
        out.setdefault(asset, []).append(maintainer)
    return out


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
