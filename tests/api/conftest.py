"""A real app over a real database: a small plant with one API key per participant."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.auth import create_api_key
from api.config import Settings
from api.main import create_app
from api.service import Service
from ledger.deployment import Deployment, save_key
from ledger.records import Record
from ledger.signing import Signer
from tests.conftest import postgres_schema

PLANT = [
    ("operator", "operator"),
    ("acme", "supplier"),
    ("nordic", "supplier"),
    ("line-3", "manufacturer"),
    ("tuv", "auditor"),
    ("fixit", "maintainer"),
    ("other-maint", "maintainer"),
    ("modelworks", "model_publisher"),
]


@dataclass(frozen=True)
class Call:
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.monotonic() when answered


class Hook:
    """A partner's webhook endpoint on loopback: answers 503 to the first `fail` calls, then
    `status`, each after `delay` seconds."""

    def __init__(self, status: int = 200, *, fail: int = 0, delay: float = 0.0) -> None:
        self.calls: list[Call] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                time.sleep(delay)
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.calls.append(Call(headers, body, time.monotonic()))
                self.send_response(status if len(outer.calls) > fail else 503)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Plant:
    client: TestClient
    service: Service
    keys: dict[str, str]
    signers: dict[str, Signer] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def signed(self, who: str, kind: str = "supplier_record", **payload: Any) -> dict[str, Any]:
        s = self.signers[who]
        rec = Record.new(kind, payload or {"lot": "L1"}, participant=who, address=s.address)
        return {
            "record": rec.to_json(),
            "signature": "0x" + s.sign(self.service.dep.domain, rec).hex(),
        }

    def submit(self, who: str, **kw: Any) -> httpx.Response:
        return self.client.post("/v1/records", json=self.signed(who, **kw), headers=self.as_(who))

    def manifest(self, who: str = "modelworks", name: str = "rul-test") -> dict[str, Any]:
        """A model_manifest record signed by `who`."""
        return self.signed(
            who,
            kind="model_manifest",
            name=name,
            task="rul",
            architecture="cnn",
            config={},
            weights_sha256="0x" + "00" * 32,
            training_data={},
            created_at="2026-11-01T00:00:00Z",
        )

    def model(self, name: str = "rul-test") -> str:
        """The digest of a registered model manifest (registered by modelworks on first use)."""
        if name not in self.models:
            r = self.client.post(
                "/v1/models", json=self.manifest(name=name), headers=self.as_("modelworks")
            )
            assert r.status_code in (200, 201), r.text
            self.models[name] = r.json()["digest"]
        return self.models[name]

    def predict(self, asset: str, who: str = "line-3", **payload: Any) -> httpx.Response:
        """Submit a prediction about `asset` that cites a registered model."""
        return self.submit(
            who,
            kind="prediction",
            asset=asset,
            model_manifest_digest=self.model(),
            **(payload or {"rul": 42.5}),
        )

    def demand_model(self, name: str = "demand-test") -> str:
        """The digest of a registered demand model manifest (registered on first use)."""
        if name not in self.models:
            m = self.manifest(name=name)["record"]["payload"]
            signed = self.signed("modelworks", kind="model_manifest", **{**m, "task": "demand"})
            r = self.client.post("/v1/models", json=signed, headers=self.as_("modelworks"))
            assert r.status_code in (200, 201), r.text
            self.models[name] = r.json()["digest"]
        return self.models[name]

    def forecast_payload(
        self,
        product: str = "P17",
        *,
        origin: str = "2026-W40",
        point: tuple[float, ...] = (10.0, 12.0),
        half80: float = 2.0,
        half90: float = 4.0,
        scale: float = 2.0,
        **over: Any,
    ) -> dict[str, Any]:
        """A demand forecast payload as the demand model yields it: weeks from `origin`, one
        point each, intervals of +-`half80` and +-`half90` around it."""
        from datetime import date, timedelta

        year, week = map(int, origin.split("-W"))
        monday = date.fromisocalendar(year, week, 1)
        weeks = []
        for i in range(len(point)):
            y, w, _ = (monday + timedelta(weeks=i)).isocalendar()
            weeks.append(f"{y}-W{w:02d}")
        payload = {
            "kind": "demand_forecast",
            "model": "demand-test",
            "model_manifest_digest": self.demand_model(),
            "product": product,
            "origin": origin,
            "weeks": weeks,
            "point": list(point),
            "intervals": {
                "80": [[x - half80, x + half80] for x in point],
                "90": [[x - half90, x + half90] for x in point],
            },
            "input_digest": "0x" + "ab" * 32,
            "input_shape": [44],
            "scale": scale,
            "requested_by": "line-3",
        }
        return payload | over

    def forecast(self, product: str = "P17", who: str = "line-3", **kw: Any) -> httpx.Response:
        """Submit a demand forecast for `product` signed by `who`."""
        return self.submit_payload(who, "forecast", self.forecast_payload(product, **kw))

    def signed_payload(self, who: str, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """`signed` for a payload whose keys clash with its arguments (a forecast's `kind`)."""
        s = self.signers[who]
        rec = Record.new(kind, payload, participant=who, address=s.address)
        return {
            "record": rec.to_json(),
            "signature": "0x" + s.sign(self.service.dep.domain, rec).hex(),
        }

    def submit_payload(self, who: str, kind: str, payload: dict[str, Any]) -> httpx.Response:
        return self.client.post(
            "/v1/records", json=self.signed_payload(who, kind, payload), headers=self.as_(who)
        )

    def assign_product(self, product: str, supplier: str) -> httpx.Response:
        return self.client.post(
            "/v1/participants/product-assignments",
            json={"product": product, "supplier": supplier},
            headers=self.as_("operator"),
        )


def make_plant(home: Path, database_url: str | None = None) -> Plant:
    """A deployment on its own embedded chain, every participant registered there (with its
    key held here) and given an API key; the service runs without background threads."""
    dep = Deployment.init(home, database_url=database_url)
    chain = dep.open_chain()
    # Webhook receivers in tests listen on loopback.
    settings = Settings(home=home, sequencer=False, allow_private_webhooks=True)
    service = Service(dep, settings, chain)
    keys: dict[str, str] = {}
    signers: dict[str, Signer] = {"operator": dep.signer("operator")}
    writer = service.writer()
    for pid, role in PLANT:
        if pid != "operator":
            signers[pid] = Signer.generate()
            save_key(home, pid, signers[pid])
            writer.enrol(pid, pid.title(), [role], signers[pid])
        keys[pid] = create_api_key(dep.store, pid, role, registry=dep.registry)
    service.registry_changed()
    client = TestClient(create_app(service))
    return Plant(client, service, keys, signers)


def close_plant(p: Plant) -> None:
    if p.service.chain is not None:
        p.service.chain.close()
    p.service.dep.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def plant(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Plant]:
    if request.param == "sqlite":
        p = make_plant(tmp_path / "home")
        yield p
        close_plant(p)
        return
    with postgres_schema(request.getfixturevalue("postgres_url")) as url:
        p = make_plant(tmp_path / "home", database_url=url)
        yield p
        close_plant(p)


def readable_by_policy(plant: Plant, caller: Any) -> set[int]:
    """The leaves `caller` may read, by the access policy in SQL (`visible`) and in Python
    (`may_read`), checked to agree."""
    from sqlalchemy import select

    from api.access import RecordFacts, assigned_to, may_read, visible
    from api.tables import RecordAsset, RecordTag
    from ledger.log import stored_from_row
    from ledger.store.models import RecordRow

    with plant.service.dep.store.reading() as conn:
        rows = conn.execute(select(RecordRow)).all()
        tags = dict(conn.execute(select(RecordTag.leaf_index, RecordTag.asset)).all())
        products = dict(conn.execute(select(RecordTag.leaf_index, RecordTag.product)).all())
        named: dict[int, set[str]] = {}
        for leaf, asset in conn.execute(select(RecordAsset.leaf_index, RecordAsset.asset)).all():
            named.setdefault(leaf, set()).add(asset)
        mine = assigned_to(conn, caller)
        sql = {r.leaf_index for r in conn.execute(visible(select(RecordRow), caller)).all()}
    python = {
        r.leaf_index
        for r in rows
        if may_read(
            caller,
            RecordFacts(
                r.kind,
                stored_from_row(r).participant,
                tags.get(r.leaf_index),
                frozenset(named.get(r.leaf_index, ())),
                products.get(r.leaf_index),
            ),
            mine,
        )
    }
    assert sql == python
    return python
