"""Scorecards: how good a model's signed promises turned out, computed from the log alone.

A prediction is scored once an `outcome` record settles it (`api.outcomes`); when several
outcomes settle the same prediction, the latest in the log counts (a correction is a new
outcome, the log keeps both). The pairs are taken in the order of the predictions' leaf
indexes and every sum is `math.fsum`, so the same records give the same numbers bit for bit:
docs/examples/recompute_scorecard.py recomputes a bundle's scorecard offline and must agree.

Metrics by the model's task (docs/scorecards.md has the formulas):
- `rul`: RMSE, the PHM08 score (sum and mean), realised coverage of each signed interval level
  with a Wilson 95 % interval and the one-sided binomial p-value P(X <= covered | n, nominal);
- `failure`: precision, recall, F1 at the signed decision, PR-AUC (average precision);
- `defect`: accuracy, expected calibration error over 10 equal-width confidence bins and the
  bins themselves (a reliability diagram);
- `demand`: per (forecast, week) settled: MASE (against the forecast's signed `scale`, the
  history's naive-1 MAE; forecasts with scale 0 are counted and left out of it), sMAPE, MAE,
  and the coverage of each interval level as for `rul`.
Each also per period (the calendar month of the prediction, UTC) and per asset; a demand
scorecard also per product and per supplier (the suppliers whose signed assignment to the
product was logged before the forecast, `api.products`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from api.forecasts import DEMAND_TASK, FORECAST_KIND
from api.products import suppliers_at
from api.tables import ModelRow, RecordTag
from ledger.errors import NotFound
from ledger.log import stored_from_row
from ledger.records import hex0x
from ledger.store.models import RecordRow

if TYPE_CHECKING:
    from api.service import Service

FORMAT = "forgeproof-scorecard/1"
Z95 = 1.959963984540054  # two-sided 95 % normal quantile, for the Wilson interval
ECE_BINS = 10
DIGITS = 6  # every float in a scorecard is rounded to this many decimals (p-values: digits)


@dataclass(frozen=True, slots=True)
class Pair:
    """A prediction and the outcome that settles it."""

    index: int  # the prediction's leaf index
    outcome_index: int
    asset: str | None
    period: str  # YYYY-MM of the prediction
    predicted: dict[str, Any]  # the prediction's payload
    observed: dict[str, Any]  # the outcome's observed facts
    # A demand forecast is scored per week: the week's position in its `weeks`, its product,
    # and the suppliers assigned to the product before the forecast was logged, with the leaf
    # indexes of those assignment records.
    position: int = 0
    product: str | None = None
    suppliers: tuple[str, ...] = ()
    assignments: tuple[int, ...] = ()


# --- statistics ---------------------------------------------------------------------------------


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, DIGITS)


def _sig(x: float) -> float:
    """Six significant digits: a p-value of 1e-24 must not read as 0."""
    return float(f"{x:.6g}")


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (n > 0)."""
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), 0 < p < 1, summed in log space (no overflow)."""
    lp, lq = math.log(p), math.log1p(-p)
    terms = [
        math.exp(
            math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
        )
        for i in range(k + 1)
    ]
    return min(1.0, math.fsum(terms))


def phm08(d: float) -> float:
    """PHM08 penalty of an error d = predicted - true RUL: late predictions cost more."""
    return math.exp(-d / 13) - 1 if d < 0 else math.exp(d / 10) - 1


def rul_metrics(pairs: Sequence[Pair]) -> dict[str, Any]:
    truth = [p.observed["failure_cycle"] - p.predicted["last_cycle"] for p in pairs]
    errors = [float(p.predicted["rul"]) - t for p, t in zip(pairs, truth, strict=True)]
    n = len(errors)
    out: dict[str, Any] = {"n": n}
    if not n:
        return out
    score = math.fsum(phm08(d) for d in errors)
    out["rmse"] = _r(math.sqrt(math.fsum(d * d for d in errors) / n))
    out["mae"] = _r(math.fsum(abs(d) for d in errors) / n)
    out["phm08_score"] = _r(score)
    out["phm08_mean"] = _r(score / n)
    out["coverage"] = coverage([p.predicted.get("intervals") or {} for p in pairs], truth)
    return out


def average_precision(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the precision-recall curve as average precision: the sum over distinct
    thresholds, highest first, of (recall gained) x (precision there); tied scores form one
    step (as scikit-learn's `average_precision_score`)."""
    positives = sum(labels)
    if not positives:
        return None
    order = sorted(zip(scores, labels, strict=True), key=lambda x: -x[0])
    tp = fp = 0
    terms: list[float] = []
    last_recall = 0.0
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and order[j][0] == order[i][0]:
            tp += order[j][1]
            fp += not order[j][1]
            j += 1
        recall = tp / positives
        terms.append((recall - last_recall) * tp / (tp + fp))
        last_recall, i = recall, j
    return math.fsum(terms)


def failure_metrics(pairs: Sequence[Pair]) -> dict[str, Any]:
    labels = [bool(p.observed["failed"]) for p in pairs]
    decided = [bool(p.predicted.get("failure_predicted")) for p in pairs]
    tp = sum(y and d for y, d in zip(labels, decided, strict=True))
    fp = sum(d and not y for y, d in zip(labels, decided, strict=True))
    fn = sum(y and not d for y, d in zip(labels, decided, strict=True))
    out: dict[str, Any] = {"n": len(pairs), "failures": sum(labels), "tp": tp, "fp": fp, "fn": fn}
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    scored = [p for p in pairs if isinstance(p.predicted.get("failure_probability"), int | float)]
    ap = average_precision(
        [float(p.predicted["failure_probability"]) for p in scored],
        [bool(p.observed["failed"]) for p in scored],
    )
    out |= {"precision": _r(precision), "recall": _r(recall), "f1": _r(f1), "pr_auc": _r(ap)}
    return out


def defect_metrics(pairs: Sequence[Pair]) -> dict[str, Any]:
    n = len(pairs)
    out: dict[str, Any] = {"n": n}
    if not n:
        return out
    correct = [p.predicted.get("verdict") == p.observed["label"] for p in pairs]
    conf = [float(p.predicted.get("confidence", 0.0)) for p in pairs]
    bins: list[dict[str, Any]] = []
    gaps: list[float] = []
    for b in range(ECE_BINS):
        members = [i for i, c in enumerate(conf) if min(int(c * ECE_BINS), ECE_BINS - 1) == b]
        if not members:
            continue
        acc = sum(correct[i] for i in members) / len(members)
        mean_conf = math.fsum(conf[i] for i in members) / len(members)
        gaps.append(len(members) / n * abs(acc - mean_conf))
        bins.append(
            {
                "lower": b / ECE_BINS,
                "upper": (b + 1) / ECE_BINS,
                "n": len(members),
                "accuracy": _r(acc),
                "confidence": _r(mean_conf),
            }
        )
    out |= {"accuracy": _r(sum(correct) / n), "ece": _r(math.fsum(gaps)), "reliability": bins}
    return out


def coverage(
    intervals: Sequence[dict[str, Any]], truth: Sequence[float]
) -> dict[str, dict[str, Any]]:
    """Realised coverage of each signed interval level (closed intervals): `intervals[i]` maps
    a level ("80") to the [lo, hi] the i-th pair signed, `truth[i]` is what was observed."""
    levels = sorted({lv for iv in intervals for lv in iv}, key=int)
    out: dict[str, Any] = {}
    for lv in levels:
        hits = [
            lo <= t <= hi
            for iv, t in zip(intervals, truth, strict=True)
            for lo, hi in [iv.get(lv, (None, None))]
            if lo is not None and hi is not None
        ]
        if not hits:
            continue
        k, m, nominal = sum(hits), len(hits), int(lv) / 100
        lo95, hi95 = wilson(k, m)
        out[lv] = {
            "nominal": nominal,
            "n": m,
            "covered": k,
            "rate": _r(k / m),
            "wilson95": [_r(lo95), _r(hi95)],
            "p_value": _sig(binom_cdf(k, m, nominal)),
        }
    return out


def demand_metrics(pairs: Sequence[Pair]) -> dict[str, Any]:
    """Each pair is one week of a forecast: y the units observed, yhat the signed point."""
    n = len(pairs)
    out: dict[str, Any] = {"n": n}
    if not n:
        return out
    y = [float(p.observed["units"]) for p in pairs]
    yhat = [float(p.predicted["point"][p.position]) for p in pairs]
    err = [a - b for a, b in zip(y, yhat, strict=True)]
    scales = [float(p.predicted.get("scale") or 0.0) for p in pairs]
    scaled = [abs(e) / s for e, s in zip(err, scales, strict=True) if s > 0]
    smape = [
        0.0 if a == 0 and b == 0 else 2 * abs(a - b) / (abs(a) + abs(b))
        for a, b in zip(y, yhat, strict=True)
    ]
    out["mae"] = _r(math.fsum(abs(e) for e in err) / n)
    out["mase"] = _r(math.fsum(scaled) / len(scaled)) if scaled else None
    out["mase_n"] = len(scaled)
    out["scale_zero"] = n - len(scaled)  # left out of MASE: a flat history scales nothing
    out["smape"] = _r(math.fsum(smape) / n)
    intervals = [
        {lv: pairs_[p.position] for lv, pairs_ in (p.predicted.get("intervals") or {}).items()}
        for p in pairs
    ]
    out["coverage"] = coverage(intervals, y)
    return out


METRICS: dict[str, Callable[[Sequence[Pair]], dict[str, Any]]] = {
    "rul": rul_metrics,
    "failure": failure_metrics,
    "defect": defect_metrics,
    DEMAND_TASK: demand_metrics,
}


def compute(task: str, pairs: Sequence[Pair]) -> dict[str, Any]:
    """The scorecard body of `pairs` for a model of `task`: overall, per period, per asset;
    for a demand model also per product and per supplier (a pair counts for each supplier of
    its product)."""
    metrics = METRICS.get(task)
    if metrics is None:
        return {"task": task, "overall": {"n": len(pairs)}, "by_period": {}, "by_asset": {}}
    pairs = sorted(pairs, key=lambda p: (p.index, p.position))

    def groups(keys: Callable[[Pair], Iterable[str | None]]) -> dict[str, Any]:
        found: dict[str, list[Pair]] = {}
        for p in pairs:
            for k in keys(p):
                if k is not None:
                    found.setdefault(k, []).append(p)
        return {k: metrics(v) for k, v in sorted(found.items())}

    card = {
        "task": task,
        "overall": metrics(pairs),
        "by_period": groups(lambda p: [p.period]),
        "by_asset": groups(lambda p: [p.asset]),
    }
    if task == DEMAND_TASK:
        card["by_product"] = groups(lambda p: [p.product])
        card["by_supplier"] = groups(lambda p: p.suppliers)
    return card


# --- from the log -------------------------------------------------------------------------------


def pairs_from_records(
    predictions: Iterable[tuple[int, str, dict[str, Any], str]],
    outcomes: Iterable[tuple[int, dict[str, Any]]],
    *,
    task: str | None = None,
    assignments: dict[str, list[tuple[int, str]]] | None = None,
) -> list[Pair]:
    """Match predictions `(index, leaf hash, payload, created_at)` with the outcomes
    `(index, payload)` that settle them; the latest outcome of a prediction counts. For a
    demand model, each (forecast, week) with the latest outcome for that week; `assignments`
    (product -> [(assignment leaf index, supplier)]) names each forecast's suppliers."""
    if task == DEMAND_TASK:
        return _demand_pairs(predictions, outcomes, assignments or {})
    settled: dict[str, tuple[int, dict[str, Any]]] = {}
    for index, payload in sorted(outcomes, key=lambda o: o[0]):
        for leaf in payload.get("settles", []):
            settled[str(leaf)] = (index, payload.get("observed") or {})
    pairs = []
    for index, leaf, payload, created_at in predictions:
        if leaf not in settled:
            continue
        outcome_index, observed = settled[leaf]
        asset = next(
            (str(payload[f]) for f in ("asset", "asset_id", "engine_id", "machine_id")
             if payload.get(f) is not None),
            None,
        )  # fmt: skip
        pairs.append(Pair(index, outcome_index, asset, created_at[:7], payload, observed))
    return pairs


def _demand_pairs(
    forecasts: Iterable[tuple[int, str, dict[str, Any], str]],
    outcomes: Iterable[tuple[int, dict[str, Any]]],
    assignments: dict[str, list[tuple[int, str]]],
) -> list[Pair]:
    settled: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
    for index, payload in sorted(outcomes, key=lambda o: o[0]):
        observed = payload.get("observed") or {}
        for leaf in payload.get("settles", []):
            settled[(str(leaf), str(observed.get("week")))] = (index, observed)
    pairs = []
    for index, leaf, payload, created_at in forecasts:
        product = payload.get("product")
        before = [(i, s) for i, s in assignments.get(str(product), []) if i < index]
        suppliers = tuple(sorted({s for _, s in before}))
        for position, week in enumerate(payload.get("weeks") or []):
            if (leaf, week) not in settled:
                continue
            outcome_index, observed = settled[(leaf, week)]
            pairs.append(
                Pair(index, outcome_index, None, created_at[:7], payload, observed,
                     position=position, product=product, suppliers=suppliers,
                     assignments=tuple(i for i, _ in before))
            )  # fmt: skip
    return pairs


@dataclass(frozen=True, slots=True)
class Gathered:
    task: str
    name: str
    metrics: dict[str, Any]  # the manifest's own claims (validation figures)
    pairs: list[Pair]


def gather(service: Service, digest: str, *, below: int | None = None) -> Gathered:
    """The model's predictions settled by outcomes, read from the log (leaves < `below` only,
    when given: what one checkpoint covers).

    Raises:
        NotFound: no model registered with this digest.
    """
    with service.dep.store.reading() as conn:
        model = conn.execute(select(ModelRow).where(ModelRow.digest == digest)).first()
        if model is None:
            raise NotFound(f"no model with manifest digest {digest}")
        q_pred = select(RecordRow).where(
            RecordRow.kind.in_(("prediction", "inspection", FORECAST_KIND)),
            RecordRow.leaf_index.in_(select(RecordTag.leaf_index).where(RecordTag.model == digest)),
        )
        q_out = select(RecordRow).where(RecordRow.kind == "outcome")
        if below is not None:
            q_pred = q_pred.where(RecordRow.leaf_index < below)
            q_out = q_out.where(RecordRow.leaf_index < below)
        preds = [stored_from_row(r) for r in conn.execute(q_pred).all()]
        outs = [stored_from_row(r) for r in conn.execute(q_out).all()]
        manifest = service.dep.log.get(model.leaf_index).record().payload
        predictions = []
        for s in preds:
            if s.canonical is None:
                continue  # erased: nothing left to score
            rec = s.record()
            predictions.append((s.index, hex0x(s.leaf_hash), rec.payload, rec.created_at))
        assignments = None
        if model.task == DEMAND_TASK:
            products = {str(p[2].get("product")) for p in predictions}
            assignments = suppliers_at(conn, products)
    outcomes = [(s.index, s.record().payload) for s in outs if s.canonical is not None]
    stated = manifest.get("metrics")
    claims: dict[str, Any] = stated if isinstance(stated, dict) else {}
    pairs = pairs_from_records(predictions, outcomes, task=model.task, assignments=assignments)
    return Gathered(model.task, model.name, claims, pairs)


def scorecard(service: Service, digest: str, *, below: int | None = None) -> dict[str, Any]:
    """The scorecard of model `digest` from the log.

    Raises:
        NotFound: no model registered with this digest.
    """
    g = gather(service, digest, below=below)
    return {"model": digest, "name": g.name, **compute(g.task, g.pairs)}


def bundle(service: Service, digest: str) -> dict[str, Any]:
    """`forgeproof-scorecard/1`: the scorecard over what the latest checkpoint covers, with the
    receipt of every prediction and outcome it used (and, for a demand model, of every product
    assignment that made a forecast count for a supplier), so an auditor recomputes it offline.

    Raises:
        NotFound: no model with this digest, or no checkpoint yet.
    """
    from ledger.receipts import build_receipt

    log = service.dep.log
    cp = log.latest_checkpoint()
    if cp is None:
        raise NotFound("no checkpoint yet: a scorecard bundle needs receipts")
    g = gather(service, digest, below=cp.size)
    card = {"model": digest, "name": g.name, **compute(g.task, g.pairs)}
    used = sorted({i for p in g.pairs for i in (p.index, p.outcome_index, *p.assignments)})
    receipts = [build_receipt(log, i, service.dep.domain, cp) for i in used]
    return {
        "format": FORMAT,
        "model": digest,
        "task": g.task,
        "checkpoint": {"size": cp.size, "root": hex0x(cp.root)},
        "scorecard": card,
        "receipts": receipts,
    }
