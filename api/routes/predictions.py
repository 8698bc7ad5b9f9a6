"""Predictions: the service runs a registered model and signs what it says."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel, Field, StringConstraints

from api.deps import RunsModels, ServiceDep
from api.errors import ApiError
from api.forecasts import DEMAND_TASK, FORECAST_KIND, check_forecast, parse_week
from api.predictions import export_inspection, save_explanation, sign_prediction
from api.runner import apply_input_policy
from ledger.errors import InputError, NotFound
from ml.errors import MLError

router = APIRouter(prefix="/v1/predictions", tags=["predictions"])


class RULRequest(BaseModel):
    asset: str = Field(min_length=1, max_length=128, description="engine / machine id")
    cycles: list[list[float]] = Field(
        min_length=1,
        description="the asset's cycles from its first one, oldest first: 3 settings and 21 "
        "sensors each (the model compares the latest cycles with the first ones)",
    )
    model: str | None = Field(None, description="manifest digest; default: this server's RUL model")


class PredictionPublic(BaseModel):
    id: str
    index: int
    record: dict[str, Any]
    signature: str
    epcis_event_id: str | None = Field(
        None, description="the EPCIS ObjectEvent (bizStep inspecting) exported for the verdict"
    )


def _runner(service: Any) -> Any:
    runner = service.runner
    if runner is None:
        raise NotFound("this server runs no models")
    return runner


@router.post("/rul", status_code=201, response_model=PredictionPublic)
def predict_rul(body: RULRequest, caller: RunsModels, service: ServiceDep) -> dict[str, Any]:
    """Remaining useful life for an asset from its cycle history, with 80% and 90% intervals
    and the input check (refused with 422 `input_flagged` under the `refuse` input policy)."""
    import numpy as np

    runner = _runner(service)
    digest = runner.digest_for("rul", body.model)
    window = np.asarray(body.cycles, dtype=np.float32)
    predictor = runner.predictor(digest)  # a model that fails to load is the server's fault
    try:
        payload = predictor.predict_window(window, asset=body.asset)
    except MLError as exc:
        raise ApiError(422, "invalid_input", str(exc)) from None
    apply_input_policy(service.settings.input_policy, payload)
    return sign_prediction(service, "prediction", payload, caller.participant)


@router.post("/inspection", status_code=201, response_model=PredictionPublic)
def predict_inspection(
    caller: RunsModels,
    service: ServiceDep,
    image: Annotated[UploadFile, File(description="200x200 grey steel surface image")],
    item: Annotated[str | None, Form(description="EPC of the inspected item or lot")] = None,
    asset: Annotated[
        str | None,
        Form(
            max_length=128,
            description="the machine or engine the inspected part belongs to: its maintenance "
            "partner then reads the verdict and its Grad-CAM overlay",
        ),
    ] = None,
    model: Annotated[str | None, Form(description="manifest digest")] = None,
) -> dict[str, Any]:
    """A quality verdict on an inspection image: class, calibrated confidence, needs_review;
    the Grad-CAM overlay whose digest the record signs is kept beside it."""
    runner = _runner(service)
    digest = runner.digest_for("defect", model)
    data = image.file.read()
    predictor = runner.predictor(digest)
    try:
        payload, png = predictor.predict_image_with_overlay(data, name=image.filename or "upload")
    except MLError as exc:
        raise ApiError(422, "invalid_image", str(exc)) from None
    apply_input_policy(service.settings.input_policy, payload)
    if item:
        payload["item"] = item
    if asset:
        payload["asset"] = asset
    out = sign_prediction(service, "inspection", payload, caller.participant)
    # Kept after the record is logged: a crash in between leaves a verdict without its overlay
    # (the pages say none is kept), never an overlay that no signed record vouches for.
    save_explanation(service, out["index"], png)
    if item:
        out["epcis_event_id"] = export_inspection(service, out, item)
    return out


# --- demand forecasts -------------------------------------------------------------------------

WEEK = r"^\d{4}-W\d{2}$"
MAX_HISTORY = 520  # ten years of weeks
MAX_PRODUCTS = 200  # per batch request
Units = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Product = Annotated[str, StringConstraints(min_length=1, max_length=128)]
History = Annotated[
    list[Units],
    Field(
        min_length=1,
        max_length=MAX_HISTORY,
        description="units ordered per week, oldest first, the last one in `last_week`",
    ),
]


class DemandRequest(BaseModel):
    product: Product = Field(description="product code; its suppliers read the forecast")
    history: History
    last_week: str = Field(pattern=WEEK, description="ISO week of the history's last value")
    horizon: Literal[4, 8] = Field(8, description="weeks forecast, from the week after")
    model: str | None = Field(
        None, description="manifest digest; default: this server's demand model"
    )


class DemandBatchRequest(BaseModel):
    histories: dict[Product, History] = Field(
        min_length=1, max_length=MAX_PRODUCTS, description="product code -> its weekly history"
    )
    last_week: str = Field(pattern=WEEK, description="ISO week of every history's last value")
    horizon: Literal[4, 8] = 8
    model: str | None = Field(
        None, description="manifest digest; default: this server's demand model"
    )


class ForecastsPublic(BaseModel):
    forecasts: list[PredictionPublic]


def _forecast(
    service: Any,
    caller: Any,
    model: str | None,
    histories: dict[str, list[float]],
    last_week: str,
    horizon: int,
) -> list[dict[str, Any]]:
    """Run the demand model over `histories` and sign one forecast per product, in order.
    Every payload is checked before the first is signed: a refusal signs none."""
    runner = _runner(service)
    digest = runner.digest_for(DEMAND_TASK, model)
    parse_week(last_week, "last_week")
    predictor = runner.predictor(digest)  # a model that fails to load is the server's fault
    try:
        payloads = predictor.forecast(histories, last_week=last_week, horizon=horizon)
    except MLError as exc:
        raise ApiError(422, "invalid_input", str(exc)) from None
    by_product = {p.get("product"): p for p in payloads}
    if set(by_product) != set(histories) or len(payloads) != len(histories):
        raise RuntimeError("the demand model did not forecast each product once")
    ordered = [by_product[product] for product in histories]
    for payload in ordered:
        if payload.get("model_manifest_digest") != digest:
            raise RuntimeError("the demand model's forecast cites another manifest")
        apply_input_policy(service.settings.input_policy, payload)
        try:
            check_forecast(payload)
        except InputError as exc:  # the caller's input was fine: the model is at fault
            raise RuntimeError(f"the demand model made a malformed forecast: {exc}") from exc
        service.check_citation(FORECAST_KIND, payload)  # as `submit` will
    return [sign_prediction(service, FORECAST_KIND, p, caller.participant) for p in ordered]


@router.post("/demand", status_code=201, response_model=PredictionPublic)
def predict_demand(body: DemandRequest, caller: RunsModels, service: ServiceDep) -> dict[str, Any]:
    """Weekly demand of one product for the next 4 or 8 ISO weeks, with 80% and 90% intervals,
    signed as a `forecast` record; the product's suppliers read it (and get it by webhook)."""
    [out] = _forecast(
        service, caller, body.model, {body.product: body.history}, body.last_week, body.horizon
    )
    return out


@router.post("/demand/batch", status_code=201, response_model=ForecastsPublic)
def predict_demand_batch(
    body: DemandBatchRequest, caller: RunsModels, service: ServiceDep
) -> dict[str, Any]:
    """`/demand` for several products at once (their histories end in the same week): one
    signed forecast per product, in the order given."""
    return {
        "forecasts": _forecast(
            service, caller, body.model, dict(body.histories), body.last_week, body.horizon
        )
    }
