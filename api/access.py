"""Who may see which record: one definition, used by every route that reads records.

- operator, manufacturer, auditor: everything;
- supplier, model publisher: the records they produced;
- maintainer: predictions about the assets assigned to it.

A record someone may not see is answered exactly like a record that does not exist for them
(403), so a response never tells whether a record exists.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, select
from sqlalchemy.engine import Connection

from api.auth import Caller
from ledger.log import StoredRecord
from ledger.store.models import AssetAssignment, RecordRow, RecordTag


def visible(query: Select[Any], caller: Caller) -> Select[Any]:
    """Restrict a query over `records` to what `caller` may see."""
    if caller.reads_everything:
        return query
    if caller.role == "maintainer":
        mine = select(AssetAssignment.asset).where(AssetAssignment.maintainer == caller.participant)
        return query.where(
            RecordRow.kind == "prediction",
            RecordRow.leaf_index.in_(select(RecordTag.leaf_index).where(RecordTag.asset.in_(mine))),
        )
    return query.where(RecordRow.participant == caller.participant)


def may_see(conn: Connection, caller: Caller, stored: StoredRecord) -> bool:
    if caller.reads_everything:
        return True
    if caller.role == "maintainer":
        if stored.kind != "prediction":
            return False
        row = conn.execute(
            select(RecordTag.asset)
            .join(AssetAssignment, and_(AssetAssignment.asset == RecordTag.asset))
            .where(
                RecordTag.leaf_index == stored.index,
                AssetAssignment.maintainer == caller.participant,
            )
        ).first()
        return row is not None
    return stored.participant == caller.participant
