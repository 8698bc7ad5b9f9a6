"""Who may read which record: one policy, `may_read`, and its SQL form, `visible`.

- operator, manufacturer, auditor: everything;
- supplier: the records it produced, and the demand forecasts of the products assigned to it
  (`api.products`; a forecast's product is tagged at append, `record_tags.product`);
- model publisher: the records it produced;
- maintainer: predictions and inspections about the assets assigned to it (what a model said
  about the machines it services; an inspection is about an asset when its payload names one,
  see `api.service.record_tags`), and the alarms that name one of them (a model's broken
  promises, `api.promises`: the alarm lists its assets in `record_assets`).

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

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.engine import Connection

from api.auth import Caller
from api.tables import AssetAssignment, ProductAssignment, RecordAsset, RecordTag
from ledger.log import StoredRecord
from ledger.store.models import RecordRow

# What a maintenance partner reads about its assets: what a model predicted (remaining life)
# and what it found on inspection (a verdict, with its Grad-CAM overlay kept beside it).
# Webhooks deliver exactly these too (`api.service`), as they deliver what a GET allows.
MAINTAINER_KINDS = frozenset({"prediction", "inspection"})
# Records about several assets at once (`RecordAsset`): read by the maintainers of any of them.
MULTI_ASSET_KINDS = frozenset({"alarm"})
# What a supplier reads about its products beyond its own records: the plant's demand
# forecasts (its expected orders). Not the outcomes that settle them (realised demand of the
# whole plant), nor who else supplies the product.
SUPPLIER_KINDS = frozenset({"forecast"})


@dataclass(frozen=True, slots=True)
class RecordFacts:
    """What the policy looks at: a record's kind, producer, the asset it is about and, for a
    record about several (an alarm), those assets; the product it is about (a forecast)."""

    kind: str
    producer: str
    asset: str | None
    assets: frozenset[str] = frozenset()
    product: str | None = None


def may_read(caller: Caller, facts: RecordFacts, assigned: Collection[str]) -> bool:
    """Whether `caller` may read a record with these facts; `assigned` holds what is assigned
    to the caller's participant: its assets for a maintainer, its products for a supplier
    (consulted for those two roles only)."""
    if caller.reads_everything:
        return True
    if caller.role == "maintainer":
        if facts.kind in MULTI_ASSET_KINDS:
            return any(a in assigned for a in facts.assets)
        return (
            facts.kind in MAINTAINER_KINDS and facts.asset is not None and facts.asset in assigned
        )
    if caller.role == "supplier" and facts.kind in SUPPLIER_KINDS and facts.product in assigned:
        return True
    return facts.producer == caller.participant


def visible(query: Select[Any], caller: Caller) -> Select[Any]:
    """Restrict a query over `records` to what `caller` may read (`may_read` as SQL)."""
    if caller.reads_everything:
        return query
    if caller.role == "maintainer":
        mine = select(AssetAssignment.asset).where(AssetAssignment.maintainer == caller.participant)
        tagged = and_(
            RecordRow.kind.in_(MAINTAINER_KINDS),
            RecordRow.leaf_index.in_(select(RecordTag.leaf_index).where(RecordTag.asset.in_(mine))),
        )
        named = and_(
            RecordRow.kind.in_(MULTI_ASSET_KINDS),
            RecordRow.leaf_index.in_(
                select(RecordAsset.leaf_index).where(RecordAsset.asset.in_(mine))
            ),
        )
        return query.where(or_(tagged, named))
    own = RecordRow.participant == caller.participant
    if caller.role == "supplier":
        products = select(ProductAssignment.product).where(
            ProductAssignment.supplier == caller.participant
        )
        forecasts = and_(
            RecordRow.kind.in_(SUPPLIER_KINDS),
            RecordRow.leaf_index.in_(
                select(RecordTag.leaf_index).where(RecordTag.product.in_(products))
            ),
        )
        return query.where(or_(own, forecasts))
    return query.where(own)


def assigned_to(conn: Connection, caller: Caller) -> set[str]:
    """What `may_read` consults as assigned to `caller`: a maintainer's assets, a supplier's
    products, nothing for anyone else."""
    if caller.role == "maintainer":
        return assigned_assets(conn, caller.participant)
    if caller.role == "supplier":
        return set(
            conn.execute(
                select(ProductAssignment.product).where(
                    ProductAssignment.supplier == caller.participant
                )
            ).scalars()
        )
    return set()


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
    asset = product = None
    assets: frozenset[str] = frozenset()
    assigned: set[str] = set()
    if caller.role == "maintainer":
        asset = conn.execute(
            select(RecordTag.asset).where(RecordTag.leaf_index == stored.index)
        ).scalar()
        if stored.kind in MULTI_ASSET_KINDS:
            assets = record_assets(conn, stored.index)
        assigned = assigned_assets(conn, caller.participant)
    elif caller.role == "supplier" and stored.kind in SUPPLIER_KINDS:
        product = conn.execute(
            select(RecordTag.product).where(RecordTag.leaf_index == stored.index)
        ).scalar()
        assigned = assigned_to(conn, caller)
    facts = RecordFacts(stored.kind, stored.participant, asset, assets, product)
    return may_read(caller, facts, assigned)


def record_assets(conn: Connection, leaf_index: int) -> frozenset[str]:
    """The assets a record about several names (`RecordAsset`)."""
    return frozenset(
        conn.execute(
            select(RecordAsset.asset).where(RecordAsset.leaf_index == leaf_index)
        ).scalars()
    )
