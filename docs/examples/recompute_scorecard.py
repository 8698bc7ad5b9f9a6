"""Recompute a forgeproof model scorecard offline, from its bundle alone.

A `forgeproof-scorecard/1` bundle (GET /v1/models/{digest}/scorecard/bundle, or `forgeproof ml
scorecard MODEL --bundle FILE`) holds a scorecard and the receipt of every prediction and
outcome it used (for a demand model: every forecast, every outcome, and every
`product_assignment` record that made a forecast count for a supplier). This script uses
nothing of forgeproof (the standard library, and `verify_receipt.py` beside it for each
receipt: `rfc8785` and `eth-account`):

1. every receipt checks (canonical leaf hash, producer's signature, inclusion proof), all
   against the bundle's one checkpoint;
2. the predictions cite the bundle's model, every one is settled by an outcome in the bundle
   (a demand forecast: some of its weeks);
3. the scorecard, recomputed from the records by the formulas of docs/scorecards.md, equals
   the bundle's, number for number.

    python recompute_scorecard.py bundle.json      exit 0: all three hold

Anchoring the checkpoint on chain is checked as for any receipt (`forgeproof verify`).
"""

import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from verify_receipt import verify

Z95 = 1.959963984540054
ECE_BINS = 10
DIGITS = 6
ASSET_FIELDS = ("asset", "asset_id", "engine_id", "machine_id")


def r6(x):
    return None if x is None else round(x, DIGITS)


def sig6(x):
    return float(f"{x:.6g}")


def wilson(k, n, z=Z95):
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def binom_cdf(k, n, p):
    lp, lq = math.log(p), math.log1p(-p)
    terms = [
        math.exp(
            math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
        )
        for i in range(k + 1)
    ]
    return min(1.0, math.fsum(terms))


def phm08(d):
    return math.exp(-d / 13) - 1 if d < 0 else math.exp(d / 10) - 1


def coverage(intervals, truth):
    """Coverage of each signed level: intervals[i] maps "80" to the i-th pair's [lo, hi]."""
    out = {}
    for lv in sorted({lv for iv in intervals for lv in iv}, key=int):
        hits = []
        for iv, t in zip(intervals, truth, strict=True):
            lo, hi = iv.get(lv, (None, None))
            if lo is not None and hi is not None:
                hits.append(lo <= t <= hi)
        if not hits:
            continue
        k, m = sum(hits), len(hits)
        lo95, hi95 = wilson(k, m)
        out[lv] = {
            "nominal": int(lv) / 100,
            "n": m,
            "covered": k,
            "rate": r6(k / m),
            "wilson95": [r6(lo95), r6(hi95)],
            "p_value": sig6(binom_cdf(k, m, int(lv) / 100)),
        }
    return out


def rul(pairs):
    truth = [o["failure_cycle"] - p["last_cycle"] for p, o in pairs]
    errors = [float(p["rul"]) - t for (p, _), t in zip(pairs, truth, strict=True)]
    n = len(errors)
    out = {"n": n}
    if not n:
        return out
    score = math.fsum(phm08(d) for d in errors)
    out["rmse"] = r6(math.sqrt(math.fsum(d * d for d in errors) / n))
    out["mae"] = r6(math.fsum(abs(d) for d in errors) / n)
    out["phm08_score"] = r6(score)
    out["phm08_mean"] = r6(score / n)
    out["coverage"] = coverage([p.get("intervals") or {} for p, _ in pairs], truth)
    return out


def demand(pairs):
    """Each pair: one week of a forecast, (the forecast sliced to that week, observed)."""
    n = len(pairs)
    if not n:
        return {"n": 0}
    y = [float(o["units"]) for _, o in pairs]
    yhat = [float(w["point"]) for w, _ in pairs]
    err = [a - b for a, b in zip(y, yhat, strict=True)]
    scaled = [abs(e) / w["scale"] for e, (w, _) in zip(err, pairs, strict=True) if w["scale"] > 0]
    smape = [0.0 if a == 0 and b == 0 else 2 * abs(a - b) / (abs(a) + abs(b))
             for a, b in zip(y, yhat, strict=True)]  # fmt: skip
    return {
        "n": n,
        "mae": r6(math.fsum(abs(e) for e in err) / n),
        "mase": r6(math.fsum(scaled) / len(scaled)) if scaled else None,
        "mase_n": len(scaled),
        "scale_zero": n - len(scaled),
        "smape": r6(math.fsum(smape) / n),
        "coverage": coverage([w["intervals"] for w, _ in pairs], y),
    }


def average_precision(scores, labels):
    positives = sum(labels)
    if not positives:
        return None
    order = sorted(zip(scores, labels, strict=True), key=lambda x: -x[0])
    tp = fp = 0
    terms, last, i = [], 0.0, 0
    while i < len(order):
        j = i
        while j < len(order) and order[j][0] == order[i][0]:
            tp += order[j][1]
            fp += not order[j][1]
            j += 1
        recall = tp / positives
        terms.append((recall - last) * tp / (tp + fp))
        last, i = recall, j
    return math.fsum(terms)


def failure(pairs):
    y = [bool(o["failed"]) for _, o in pairs]
    d = [bool(p.get("failure_predicted")) for p, _ in pairs]
    tp = sum(a and b for a, b in zip(y, d, strict=True))
    fp = sum(b and not a for a, b in zip(y, d, strict=True))
    fn = sum(a and not b for a, b in zip(y, d, strict=True))
    scored = [(p, o) for p, o in pairs if isinstance(p.get("failure_probability"), (int, float))]
    ap = average_precision(
        [float(p["failure_probability"]) for p, _ in scored], [bool(o["failed"]) for _, o in scored]
    )
    return {
        "n": len(pairs), "failures": sum(y), "tp": tp, "fp": fp, "fn": fn,
        "precision": r6(tp / (tp + fp) if tp + fp else None),
        "recall": r6(tp / (tp + fn) if tp + fn else None),
        "f1": r6(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None),
        "pr_auc": r6(ap),
    }  # fmt: skip


def defect(pairs):
    n = len(pairs)
    if not n:
        return {"n": 0}
    correct = [p.get("verdict") == o["label"] for p, o in pairs]
    conf = [float(p.get("confidence", 0.0)) for p, _ in pairs]
    bins, gaps = [], []
    for b in range(ECE_BINS):
        members = [i for i, c in enumerate(conf) if min(int(c * ECE_BINS), ECE_BINS - 1) == b]
        if not members:
            continue
        acc = sum(correct[i] for i in members) / len(members)
        mean_conf = math.fsum(conf[i] for i in members) / len(members)
        gaps.append(len(members) / n * abs(acc - mean_conf))
        bins.append({"lower": b / ECE_BINS, "upper": (b + 1) / ECE_BINS, "n": len(members),
                     "accuracy": r6(acc), "confidence": r6(mean_conf)})  # fmt: skip
    return {
        "n": n,
        "accuracy": r6(sum(correct) / n),
        "ece": r6(math.fsum(gaps)),
        "reliability": bins,
    }


METRICS = {"rul": rul, "failure": failure, "defect": defect, "demand": demand}


def recompute(bundle):
    assert bundle["format"] == "forgeproof-scorecard/1", bundle.get("format")
    model, task, cp = bundle["model"], bundle["task"], bundle["checkpoint"]
    predictions, outcomes, assignments = [], [], []
    for receipt in bundle["receipts"]:
        verify(receipt)  # raises on a bad leaf hash, signature or inclusion proof
        assert receipt["checkpoint"] == cp, "receipts against different checkpoints"
        record = receipt["record"]
        if record["kind"] == "outcome":
            outcomes.append((receipt["leaf_index"], record["payload"]))
        elif record["kind"] == "product_assignment":
            # Signed by the operator (that its key held the role is checked on chain, as for
            # any receipt): the product's supplier from this leaf on.
            p = record["payload"]
            assignments.append((receipt["leaf_index"], p["product"], p["supplier"]))
        else:
            assert record["kind"] in ("prediction", "inspection", "forecast"), record["kind"]
            assert record["payload"].get("model_manifest_digest") == model, "another model's"
            predictions.append((receipt["leaf_index"], receipt["leaf_hash"], record))
    if task == "demand":
        pairs = demand_pairs(predictions, outcomes, assignments)
    else:
        pairs = plain_pairs(predictions, outcomes)
    metrics = METRICS[task]

    def groups(key):
        found = {}
        for p in pairs:
            for k in p[key]:
                found.setdefault(k, []).append((p["predicted"], p["observed"]))
        return {k: metrics(v) for k, v in sorted(found.items())}

    card = {
        "model": model,
        "name": bundle["scorecard"]["name"],
        "task": task,
        "overall": metrics([(p["predicted"], p["observed"]) for p in pairs]),
        "by_period": groups("period"),
        "by_asset": groups("asset"),
    }
    if task == "demand":
        card["by_product"] = groups("product")
        card["by_supplier"] = groups("suppliers")
    return card


def plain_pairs(predictions, outcomes):
    """A prediction and the latest outcome that settles it, in leaf order."""
    settled = {}
    for _, payload in sorted(outcomes, key=lambda o: o[0]):  # the latest outcome counts
        for leaf in payload["settles"]:
            settled[leaf] = payload["observed"]
    pairs = []
    for _, leaf, record in sorted(predictions, key=lambda p: p[0]):
        assert leaf in settled, f"prediction {leaf} in the bundle but settled by no outcome"
        payload = record["payload"]
        asset = next((str(payload[f]) for f in ASSET_FIELDS if payload.get(f) is not None), None)
        pairs.append({
            "asset": [asset] if asset is not None else [],
            "period": [record["created_at"][:7]],
            "predicted": payload,
            "observed": settled[leaf],
        })  # fmt: skip
    return pairs


def demand_pairs(forecasts, outcomes, assignments):
    """Each (forecast, week) with the latest outcome for that week, in leaf and week order;
    a forecast counts for the suppliers whose assignment to its product precedes it."""
    settled = {}
    for _, payload in sorted(outcomes, key=lambda o: o[0]):
        observed = payload["observed"]
        for leaf in payload["settles"]:
            settled[(leaf, observed["week"])] = observed
    pairs = []
    for index, leaf, record in sorted(forecasts, key=lambda p: p[0]):
        payload = record["payload"]
        product = payload["product"]
        suppliers = sorted({s for i, prod, s in assignments if prod == product and i < index})
        weeks = [w for w in payload["weeks"] if (leaf, w) in settled]
        assert weeks, f"forecast {leaf} in the bundle but no week of it settled"
        for position, week in enumerate(payload["weeks"]):
            if (leaf, week) not in settled:
                continue
            sliced = {
                "point": payload["point"][position],
                "intervals": {lv: v[position] for lv, v in payload["intervals"].items()},
                "scale": float(payload.get("scale") or 0.0),
            }
            pairs.append({
                "asset": [],
                "period": [record["created_at"][:7]],
                "product": [product],
                "suppliers": suppliers,
                "predicted": sliced,
                "observed": settled[(leaf, week)],
            })  # fmt: skip
    return pairs


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        bundle = json.load(f)
    mine = recompute(bundle)
    if mine != bundle["scorecard"]:
        print("scorecard differs from the recomputation:")
        print(json.dumps(mine["overall"], indent=2))
        sys.exit(1)
    n = len(bundle["receipts"])
    print(
        f"ok: {n} receipts verified, scorecard recomputed exactly ({mine['overall']['n']} settled)"
    )
