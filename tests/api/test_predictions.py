"""api/routes/predictions.py: what the model refuses is the caller's 422; a broken model is ours."""

from __future__ import annotations

import shutil
from pathlib import Path

from fastapi.testclient import TestClient

from api.runner import SHIPPED, ModelRunner
from tests.api.conftest import Plant


def test_rul_input_the_model_refuses_is_invalid_input(plant: Plant) -> None:
    plant.service.runner = ModelRunner.shipped()
    for cycles, said in (
        ([[0.0] * 24], "expected at least"),  # one cycle: too short a history
        ([[0.0] * 5], "expected rows of 26 columns"),
    ):
        r = plant.client.post(
            "/v1/predictions/rul",
            json={"asset": "engine-7", "cycles": cycles},
            headers=plant.as_("line-3"),
        )
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "invalid_input" and said in r.json()["detail"], r.text


def test_an_image_the_model_refuses_is_invalid_image(plant: Plant) -> None:
    plant.service.runner = ModelRunner.shipped()
    r = plant.client.post(
        "/v1/predictions/inspection",
        files={"image": ("x.jpg", b"not an image")},
        headers=plant.as_("line-3"),
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid_image", r.text
    assert "x.jpg" in r.json()["detail"]


def test_a_model_that_no_longer_loads_is_a_server_error(plant: Plant, tmp_path: Path) -> None:
    model = tmp_path / "rul"
    shutil.copytree(SHIPPED / "rul-fd001", model)
    plant.service.runner = ModelRunner([model])
    weights = model / "weights.safetensors"  # changed on disk after the server started
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    client = TestClient(plant.client.app, raise_server_exceptions=False)
    r = client.post(
        "/v1/predictions/rul",
        json={"asset": "engine-7", "cycles": [[0.0] * 24] * 40},
        headers=plant.as_("line-3"),
    )
    assert r.status_code == 500 and r.json()["code"] == "internal_error", r.text
