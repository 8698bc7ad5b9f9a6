"""The demo's demand forecasts: suppliers plan production from the plant's expected orders.

A few products of the shipped weekly sample (`ml/shipped/samples/demand/`, the UCI Sales
Transactions dataset's columns: Product_Code, W0..W51, then columns ignored) are assigned to the
demo's suppliers, the shipped demand model forecasts each from its first 44 weeks, and the
realised demand of the first two forecast weeks (W44, W45 of the sample) is logged as
operator-signed outcomes; then each supplier's scorecard line is printed.

The sample's weeks carry no dates: W0 is taken as ISO week `FIRST_WEEK`.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

from api.forecasts import DEMAND_TASK, FORECAST_KIND, parse_week, week_label
from api.predictions import sign_prediction
from api.products import assign_product
from ledger.errors import Conflict, NotFound
from ledger.records import Record

FIRST_WEEK = "2026-W01"  # the ISO week the sample's W0 stands for
HISTORY = 44  # weeks the forecasts are made from (W0..W43)
SETTLED = 2  # forecast weeks whose realised demand is logged (W44, W45)
HORIZON = 8
# Which supplier supplies which of the sample's first products.
SUPPLY = (("acme-steel", 3), ("nordic-bearings", 1))


def _week(offset: int) -> str:
    return week_label(parse_week(FIRST_WEEK) + timedelta(weeks=offset))


def forecast_demand(service: Any, runner: Any) -> list[str]:
    """Assign, forecast, settle, score; returns the lines to print (none without a demand
    model or the sample)."""
    try:
        digest = runner.digest_for(DEMAND_TASK)
    except NotFound:
        return []
    from ml.data.demand import load_weekly
    from ml.tasks.demand import default_csv

    path = default_csv()
    sales = load_weekly(path)
    sample = {p: sales.units[i].tolist() for i, p in enumerate(sales.products)}
    codes = sales.products
    supplier_of: dict[str, str] = {}
    at = 0
    for supplier, count in SUPPLY:
        for code in codes[at : at + count]:
            supplier_of[code] = supplier
            with contextlib.suppress(Conflict):  # assigned by an earlier, unfinished seed
                assign_product(service, code, supplier)
        at += count
    histories = {code: sample[code][:HISTORY] for code in supplier_of}
    payloads = runner.predictor(digest).forecast(
        histories, last_week=_week(HISTORY - 1), horizon=HORIZON
    )
    dep = service.dep
    signer = dep.signer(dep.operator)
    for payload in payloads:
        signed = sign_prediction(service, FORECAST_KIND, payload, "operator")
        code = payload["product"]
        for k, week in enumerate(payload["weeks"][:SETTLED]):
            outcome = {
                "settles": [signed["id"]],
                "product": code,
                "observed": {"week": week, "units": sample[code][HISTORY + k]},
                "source": f"{path.name}: W{HISTORY + k}",
            }
            record = Record.new(
                "outcome", outcome, participant=dep.operator, address=signer.address
            )
            service.submit(record, signer.sign(dep.domain, record))
    return scorecard_lines(service, digest, supplier_of)


def scorecard_lines(service: Any, digest: str, supplier_of: dict[str, str]) -> list[str]:
    """One line per supplier: the settled weeks of its products' forecasts, scored (the
    model's scorecard, `by_supplier`)."""
    from api.scorecards import scorecard

    card = scorecard(service, digest)
    lines = []
    for supplier, m in card.get("by_supplier", {}).items():
        products = sorted(p for p, s in supplier_of.items() if s == supplier)
        cov = m.get("coverage", {})
        levels = [lv for lv in ("80", "90") if lv in cov]
        rates = "/".join(f"{cov[lv]['rate']:.2f}" for lv in levels)
        mase = "n/a" if m.get("mase") is None else f"{m['mase']:.2f}"
        count = f"{len(products)} product{'s' if len(products) != 1 else ''}"
        lines.append(
            f"demand: scorecard of {supplier} on {count} "
            f"({', '.join(products)}), {m['n']} settled forecast weeks: MASE {mase}, "
            f"sMAPE {m['smape']:.2f}, MAE {m['mae']:.1f} units, "
            f"{'/'.join(lv + '%' for lv in levels)} interval coverage {rates}"
        )
    return lines
