"""Predictions: the service runs a registered model and signs what it says."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel, Field

from api.deps import RunsModels, ServiceDep
from api.errors import ApiError
from api.predictions import export_inspection, save_explanation, sign_prediction
from api.runner import apply_input_policy
from ledger.errors import NotFound
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
