"""Delivery to maintenance partners and suppliers: a pull feed, webhook subscriptions and their
delivery log."""

from __future__ import annotations

import secrets
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import insert, select, update

from api.deps import FeedReader, ServiceDep, Subscriber
from api.errors import ApiError, forbidden
from api.routes import records
from api.schemas import RecordsPublic
from api.tables import Delivery, Subscription
from api.views import us_to_time
from api.webhooks import TargetRefused, vet
from ledger.registry import now_us

router = APIRouter(tags=["delivery"])
# A maintainer's work list: what the models said, and the alarms saying a model broke its
# promises about these assets (`api.promises`); the rest it may read is under /v1/records.
# A supplier's: the demand forecasts of its products (`api.access`: the feed is filtered by
# the same policy, so neither sees the other's kinds).
FEED_KINDS = ("prediction", "alarm", "forecast")


class SubscriptionCreate(BaseModel):
    url: str = Field(
        pattern=r"^https?://",
        max_length=2048,
        examples=["https://partner.example/hooks/forgeproof"],
    )


class SubscriptionPublic(BaseModel):
    id: str
    url: str
    active: bool
    created_at: str
    secret: str | None = Field(None, description="HMAC secret; shown only when created")


class DeliveryPublic(BaseModel):
    id: int
    record_index: int
    status: str
    attempts: int
    last_error: str | None
    delivered_at: str | None


@router.get("/v1/feed", response_model=RecordsPublic)
def feed(
    caller: FeedReader,
    service: ServiceDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> RecordsPublic:
    """Signed predictions for the assets assigned to the calling maintenance partner, and the
    alarms on broken model promises that name those assets; to a supplier, the signed demand
    forecasts of the products assigned to it."""
    return records.select_records(caller, service, kinds=FEED_KINDS, cursor=cursor, limit=limit)


@router.post("/v1/subscriptions", status_code=201, response_model=SubscriptionPublic)
def subscribe(body: SubscriptionCreate, caller: Subscriber, service: ServiceDep) -> dict[str, Any]:
    """Register a webhook: records are POSTed there, HMAC-signed with the returned secret
    (shown once): to a maintenance partner, the predictions and inspections about its assets;
    to a supplier, the demand forecasts of its products; to the operator, the deployment's
    alarms. The target must be http(s) on a public address,
    without credentials."""
    try:
        vet(body.url, allow_private=service.settings.allow_private_webhooks)
    except TargetRefused as exc:
        raise ApiError(422, "webhook_target_refused", str(exc)) from None
    secret = secrets.token_hex(32)
    sub: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "participant": caller.participant,
        "url": body.url,
        "secret": service.dep.secret_box("webhook").seal(secret),
        "created_us": now_us(),
        "active": True,
    }
    with service.dep.store.transaction() as conn:
        conn.execute(insert(Subscription).values(**sub))
    return {**sub, "secret": secret, "created_at": us_to_time(sub["created_us"])}


def _own(service: ServiceDep, caller: Subscriber, id: str) -> Any:
    with service.dep.store.reading() as conn:
        row = conn.execute(select(Subscription).where(Subscription.id == id)).first()
    if row is None or row.participant != caller.participant:
        raise forbidden("no such subscription of this participant")
    return row


@router.get("/v1/subscriptions", response_model=list[SubscriptionPublic])
def list_subscriptions(caller: Subscriber, service: ServiceDep) -> list[dict[str, Any]]:
    """The calling partner's webhooks."""
    with service.dep.store.reading() as conn:
        rows = conn.execute(
            select(Subscription).where(Subscription.participant == caller.participant)
        ).all()
    return [
        {"id": r.id, "url": r.url, "active": r.active, "created_at": us_to_time(r.created_us)}
        for r in rows
    ]


@router.delete("/v1/subscriptions/{id}", status_code=204)
def unsubscribe(id: str, caller: Subscriber, service: ServiceDep) -> None:
    """Stop a webhook; its pending deliveries stop too."""
    _own(service, caller, id)
    with service.dep.store.transaction() as conn:
        conn.execute(update(Subscription).where(Subscription.id == id).values(active=False))
        conn.execute(
            update(Delivery)
            .where(Delivery.subscription == id, Delivery.status == "pending")
            .values(status="cancelled")
        )


@router.get("/v1/subscriptions/{id}/deliveries", response_model=list[DeliveryPublic])
def deliveries(
    id: str,
    caller: Subscriber,
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """The delivery log of one webhook, newest first."""
    _own(service, caller, id)
    with service.dep.store.reading() as conn:
        rows = conn.execute(
            select(Delivery)
            .where(Delivery.subscription == id)
            .order_by(Delivery.id.desc())
            .limit(limit)
        ).all()
    return [
        {
            "id": r.id,
            "record_index": r.leaf_index,
            "status": r.status,
            "attempts": r.attempts,
            "last_error": r.last_error,
            "delivered_at": us_to_time(r.delivered_us) if r.delivered_us else None,
        }
        for r in rows
    ]
