"""Input checks through the service: every prediction signs its check; the deployment's
input policy (Settings.input_policy, FORGEPROOF_INPUT_POLICY) flags or refuses."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.auth import create_api_key
from api.config import Settings
from api.server import Running, build
from ml.data.cmapss import read_trajectories
from ml.shipped import SAMPLES

S7 = 3 + 7 - 1  # column of sensor s7 in a service row (3 settings, then s1..s21)


@pytest.fixture(params=["flag", "refuse"])
def running(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Running, str]]:
    policy = request.param
    up = build(Settings(home=tmp_path / "home", checkpoint_every=10_000, input_policy=policy))
    try:
        yield up, policy
    finally:
        up.close()


def _client(up: Running) -> tuple[TestClient, dict[str, str]]:
    key = create_api_key(up.service.dep.store, "operator", "operator")
    return TestClient(up.app), {"Authorization": f"Bearer {key}"}


def _engine() -> list[list[float]]:
    """The settings and sensors of the first engine of the shipped C-MAPSS sample, 31 cycles."""
    rows = read_trajectories(SAMPLES / "cmapss" / "test_FD001.txt").rows
    return rows[rows[:, 0] == rows[0, 0]][:, 2:].tolist()


def test_clean_input_is_signed_with_a_passing_check(running: tuple[Running, str]) -> None:
    up, _ = running
    client, auth = _client(up)
    r = client.post(
        "/v1/predictions/rul", json={"asset": "engine-7", "cycles": _engine()}, headers=auth
    )
    assert r.status_code == 201, r.text
    check = r.json()["record"]["payload"]["input_check"]
    assert check["status"] == "pass" and check["reasons"] == []
    assert check["ood_score"] <= check["threshold"]


@pytest.mark.parametrize("fault", ["stuck s7", "T30 in Celsius", "other operating condition"])
def test_flagged_rul_input_follows_the_policy(running: tuple[Running, str], fault: str) -> None:
    up, policy = running
    client, auth = _client(up)
    cycles = np.array(_engine())
    if fault == "stuck s7":
        cycles[:, S7] = cycles[0, S7]
        said = "s7 stuck"
    elif fault == "T30 in Celsius":
        cycles[:, 3 + 3 - 1] -= 273.15
        said = "s3 = "
    else:
        cycles[:, 0] = 20.0  # altitude 20 kft: an FD002 condition, not FD001's sea level
        said = "setting_1 = "
    before = up.service.dep.log.size
    r = client.post(
        "/v1/predictions/rul", json={"asset": "engine-7", "cycles": cycles.tolist()}, headers=auth
    )
    if policy == "flag":
        assert r.status_code == 201, r.text
        check = r.json()["record"]["payload"]["input_check"]
        assert check["status"] == "flag" and any(said in x for x in check["reasons"]), check
        assert up.service.dep.log.size == before + 1
    else:
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["code"] == "input_flagged" and said in body["detail"], body
        assert body["input_check"]["status"] == "flag"
        assert up.service.dep.log.size == before  # nothing appended


def test_missing_values_are_refused_under_any_policy(running: tuple[Running, str]) -> None:
    up, _ = running
    client, auth = _client(up)
    cycles = _engine()
    cycles[-1][S7] = math.nan
    r = client.post(
        "/v1/predictions/rul",
        content=_json_with_nan(cycles),
        headers={**auth, "Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_input", r.text
    assert "input check: s7 missing in 1 of 31 rows" in r.json()["detail"], r.text


def _json_with_nan(cycles: list[list[float]]) -> bytes:
    import json

    return json.dumps({"asset": "engine-7", "cycles": cycles}).encode()  # NaN as a bare token


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def test_inspection_images_follow_the_policy(running: tuple[Running, str]) -> None:
    up, policy = running
    client, auth = _client(up)
    steel = next((SAMPLES / "neu").glob("*.jpg"))
    r = client.post(
        "/v1/predictions/inspection",
        files={"image": (steel.name, steel.read_bytes())},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    assert r.json()["record"]["payload"]["input_check"]["status"] == "pass"
    yy, xx = np.mgrid[:200, :200]
    board = (((yy // 25) + (xx // 25)) % 2 * 255).astype(np.uint8)
    before = up.service.dep.log.size
    r = client.post(
        "/v1/predictions/inspection",
        files={"image": ("board.png", _png(board))},
        headers=auth,
    )
    if policy == "flag":
        assert r.status_code == 201, r.text
        check = r.json()["record"]["payload"]["input_check"]
        assert check["status"] == "flag" and check["ood_score"] > check["threshold"]
    else:
        assert r.status_code == 422 and r.json()["code"] == "input_flagged", r.text
        assert "out-of-distribution score" in r.json()["detail"]
        assert up.service.dep.log.size == before
