"""Outcome records: who may sign them, what they may settle, and refusals that change nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Plant


def rul_prediction(plant: Plant, asset: str, *, rul: float = 50.0, last: int = 100) -> str:
    r = plant.predict(
        asset,
        rul=rul,
        last_cycle=last,
        intervals={"80": [rul - 10, rul + 10], "90": [rul - 15, rul + 15]},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def outcome(plant: Plant, who: str = "line-3", **payload: Any) -> Any:
    return plant.submit(who, kind="outcome", **payload)


def test_an_outcome_settles_a_prediction(plant: Plant) -> None:
    leaf = rul_prediction(plant, "engine-1")
    r = outcome(plant, settles=[leaf], asset="engine-1", observed={"failure_cycle": 160})
    assert r.status_code == 201, r.text
    got = plant.client.get(f"/v1/records/{r.json()['id']}", headers=plant.as_("tuv")).json()
    assert got["kind"] == "outcome"


@pytest.mark.parametrize("who", ["modelworks", "acme"])
def test_only_those_who_run_the_models_sign_outcomes(plant: Plant, who: str) -> None:
    """A publisher would grade its own promises; a supplier observes no engine's failure."""
    leaf = rul_prediction(plant, "engine-1")
    signed = plant.signed(who, kind="outcome", settles=[leaf], asset="engine-1",
                          observed={"failure_cycle": 160})  # fmt: skip
    r = plant.client.post("/v1/records", json=signed, headers=plant.as_("operator"))
    assert r.status_code in (403, 422), r.text  # not the caller's record, or refused
    # Submitted by the signer itself (publishers may not write records at all).
    r = plant.client.post("/v1/records", json=signed, headers=plant.as_(who))
    assert r.status_code == 403, r.text


def _size(plant: Plant) -> int:
    return plant.service.dep.log.committed_size()


@pytest.mark.parametrize(
    ("case", "payload", "needle"),
    [
        ("empty", {"settles": [], "observed": {"failure_cycle": 5}}, "non-empty"),
        ("not-a-hash", {"settles": ["engine-1"], "observed": {"failure_cycle": 5}}, "leaf hash"),
        (
            "missing",
            {"settles": ["0x" + "ab" * 32], "observed": {"failure_cycle": 5}},
            "not in the log",
        ),
        ("supplier-record", None, "supplier_record"),
        ("bad-cycle", {"observed": {"failure_cycle": "soon"}}, "failure_cycle"),
        ("before-prediction", {"observed": {"failure_cycle": 50}}, "comes before"),
        ("wrong-field", {"observed": {"failed": True}}, "failure_cycle"),
        ("other-asset", {"asset": "engine-2", "observed": {"failure_cycle": 150}}, "engine-2"),
        ("twice", "twice", "twice"),
    ],
)
def test_refused_outcomes_change_nothing(
    plant: Plant, case: str, payload: Any, needle: str
) -> None:
    leaf = rul_prediction(plant, "engine-1")
    body: dict[str, Any] = {"settles": [leaf], "asset": "engine-1"}
    if case == "supplier-record":
        other = plant.submit("acme", lot="L9").json()["id"]
        body |= {"settles": [other], "observed": {"failure_cycle": 150}}
    elif case == "twice":
        body |= {"settles": [leaf, leaf], "observed": {"failure_cycle": 150}}
    else:
        body |= payload
    before = _size(plant)
    r = outcome(plant, **body)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_input"
    assert needle in r.json()["detail"]
    assert _size(plant) == before


def test_inspection_and_failure_outcomes_fit_their_task(plant: Plant) -> None:
    # The plant's manifests are all task "rul"; register one of each other task by hand.
    for name, task in (("defect-1", "defect"), ("failure-1", "failure")):
        m = plant.manifest(name=name)
        m2 = plant.signed(
            "modelworks", kind="model_manifest", **{**m["record"]["payload"], "task": task}
        )
        r = plant.client.post("/v1/models", json=m2, headers=plant.as_("modelworks"))
        assert r.status_code == 201, r.text
        plant.models[name] = r.json()["digest"]
    insp = plant.submit("line-3", kind="inspection", asset="mill", verdict="scratches",
                        confidence=0.9, probabilities={"scratches": 0.9, "patches": 0.1},
                        model_manifest_digest=plant.models["defect-1"]).json()["id"]  # fmt: skip
    fail = plant.submit("line-3", kind="prediction", asset="m-1", failure_probability=0.7,
                        failure_predicted=True,
                        model_manifest_digest=plant.models["failure-1"]).json()["id"]  # fmt: skip
    assert (
        outcome(plant, settles=[insp], asset="mill", observed={"label": "rust"}).status_code == 422
    )
    assert (
        outcome(plant, settles=[insp], asset="mill", observed={"label": "patches"}).status_code
        == 201
    )
    assert (
        outcome(plant, settles=[fail], asset="m-1", observed={"failed": "yes"}).status_code == 422
    )
    assert (
        outcome(plant, settles=[fail], asset="m-1", observed={"failed": False}).status_code == 201
    )
