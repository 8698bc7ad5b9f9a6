"""Check a federated model's training chain, offline, from its directory (docs/federated.md).

What is checked, each failure named:
  * every round the manifest cites has a receipt that verifies (canonical form, the operator's
    signature, inclusion, and with a chain: the key and role at the time, and the anchor), is
    an `fl_round` of this federation, numbered in order, citing the round before it (a missing
    or reordered round breaks the links) and starting from the weights it produced;
  * every update a round aggregated has a receipt that verifies (with a chain: signed by a key
    registered to that plant, a manufacturer, at the time: a foreign key fails), started from
    the round's weights, and its bytes (training/updates/) are the ones its plant signed (a
    changed update fails);
  * each round's aggregate follows from its updates (normalisation statistics merged, weights
    aggregated by the round's method, residuals calibrated), recomputed here;
  * the selection round names the training round whose aggregate has the best validation RMSE
    pooled over the plants' signed reports, and the published weights are that aggregate; the
    manifest's preprocessing and intervals are round 0's and the calibration round's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from api.federation.records import (
    ROUND_KIND,
    STATS_ROUND,
    UPDATE_KIND,
    sha256_0x,
)
from api.federation.server import TRAINING_DIR, receipt_file, update_file
from ledger.errors import LedgerError

Status = str  # "ok" | "failed" | "unmade"


@dataclass
class Finding:
    name: str
    status: Status
    detail: str


@dataclass
class TrainingVerdict:
    findings: list[Finding] = field(default_factory=list)

    def add(self, name: str, status: Status, detail: str) -> None:
        self.findings.append(Finding(name, status, detail))

    def fail(self, name: str, detail: str) -> None:
        self.add(name, "failed", detail)

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "failed"]

    @property
    def ok(self) -> bool:
        return bool(self.findings) and not self.failed

    @property
    def exit_code(self) -> int:
        if self.failed or not self.findings:
            return 1
        return 3 if any(f.status == "unmade" for f in self.findings) else 0

    def lines(self) -> list[str]:
        return [f"{f.status:>7}  {f.name:<22} {f.detail}" for f in self.findings]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "failed": [f"{f.name}: {f.detail}" for f in self.failed],
            "findings": [vars(f) for f in self.findings],
        }


class _Chain:
    """Key and anchor sources from a deployment's chain or a node; none: those checks unmade."""

    def __init__(self, home: Path | None, rpc: str | None, contract: str | None) -> None:
        from ledger.receipts import chain_anchor_source, chain_key_source, log_checkpoint_source

        self.client: Any = None
        self.dep: Any = None
        if home is not None:
            from ledger.deployment import Deployment

            self.dep = Deployment.open(home)
            self.client = self.dep.open_chain()
        elif rpc is not None and contract:
            from web3 import Web3

            from ledger.chain import ChainClient
            from ledger.signing import Signer

            self.client = ChainClient(
                Web3(Web3.HTTPProvider(rpc)),
                private_key=Signer.generate().private_key,
                address=contract,
            )
        self.checkpoints = log_checkpoint_source(self.dep.log) if self.dep else None
        self.keys = chain_key_source(self.client) if self.client else None
        self.anchors = chain_anchor_source(self.client) if self.client else None

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.dep is not None:
            self.dep.close()


def verify_training(
    model_dir: Path, *, home: Path | None = None, rpc: str | None = None
) -> TrainingVerdict:
    from ml.errors import ManifestError
    from ml.manifest import load_manifest

    v = TrainingVerdict()
    model_dir = Path(model_dir)
    try:
        manifest = load_manifest(model_dir)
    except (ManifestError, FileNotFoundError) as exc:
        v.fail("manifest", str(exc))
        return v
    fed = manifest.config.get("federation")
    if not isinstance(fed, dict) or not fed.get("rounds"):
        v.fail("manifest", "not a federated model: its manifest cites no training rounds")
        return v
    folder = model_dir / TRAINING_DIR

    def receipts(leaf: str) -> Any:
        return _load_json(folder / receipt_file(leaf))

    def blobs(leaf: str) -> bytes | None:
        try:
            return (folder / update_file(leaf)).read_bytes()
        except OSError:
            return None

    first = receipts(fed["rounds"][0])
    contract = (first or {}).get("domain", {}).get("verifyingContract")
    try:
        chain = _Chain(home, rpc, contract)
    except LedgerError as exc:
        v.fail("chain", f"cannot read the chain: {exc}")
        return v
    try:
        published = _published_digest(model_dir)
        walk(v, manifest, receipts, blobs, published, chain.keys, chain.anchors, chain.checkpoints)
    finally:
        chain.close()
    return v


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


Receipts = Callable[[str], Any]  # leaf hash -> receipt (None: not there)
Blobs = Callable[[str], "bytes | None"]  # leaf hash of an update -> the bytes it signed


class _Checker:
    def __init__(
        self, v: TrainingVerdict, receipts: Receipts, keys: Any, anchors: Any, checkpoints: Any
    ) -> None:
        self.v = v
        self.checkpoints = checkpoints
        self.receipts = receipts
        self.keys = keys
        self.anchors = anchors
        self.unmade: set[str] = set()
        self.checked = 0

    def record(self, leaf: str, what: str) -> dict[str, Any] | None:
        return _receipt(self, leaf, what)


def _receipt(c: _Checker, leaf: str, what: str) -> dict[str, Any] | None:
    """The record a leaf names, if its receipt is there and verifies; else a named failure."""
    from ledger.receipts import verify_receipt

    v = c.v
    data = c.receipts(leaf)
    if data is None:
        v.fail(what, f"no receipt for record {leaf}")
        return None
    verdict = verify_receipt(
        data, key_source=c.keys, anchor_source=c.anchors, checkpoint_source=c.checkpoints
    )
    bad = verdict.failed
    if bad:
        v.fail(what, "; ".join(f"{c.name}: {c.detail}" for c in bad))
        return None
    if data.get("leaf_hash") != leaf:
        v.fail(what, f"the receipt is for record {data.get('leaf_hash')}, not {leaf}")
        return None
    c.checked += 1
    c.unmade.update(k.name for k in verdict.checks if k.status != "ok")
    record: dict[str, Any] = data["record"]
    return record


def walk(
    v: TrainingVerdict,
    manifest: Any,
    receipts: Receipts,
    blobs: Blobs | None,
    published: str | None,
    keys: Any = None,
    anchors: Any = None,
    checkpoints: Any = None,
) -> None:
    """The checks, on receipts and update bytes from wherever they are kept (a bundle folder,
    the service's log). Without `blobs` the aggregates are not recomputed, without `published`
    the final weights are not compared, without `keys`/`anchors` those checks are not made:
    each is reported as unmade."""
    c = _Checker(v, receipts, keys, anchors, checkpoints)
    _walk(c, manifest, blobs, published)
    if c.unmade:
        v.add(
            "chain",
            "unmade",
            f"{', '.join(sorted(c.unmade))} not checked for the {c.checked} receipts "
            "(checked with --home, keys and anchors also with --rpc)",
        )
    elif c.checked and not v.failed:
        v.add("chain", "ok", f"{c.checked} receipts: keys and roles at the time, anchors")


def _walk(c: _Checker, manifest: Any, blobs: Blobs | None, published: str | None) -> None:
    from ml.data.cmapss import Preprocessing
    from ml.federated import (
        initial_state,
        model_config,
        update_bytes,
    )

    v = c.v
    fed = manifest.config["federation"]
    training = manifest.config.get("training", {})
    rounds: list[str] = fed["rounds"]
    planned = int(training.get("rounds", len(rounds) - 3))
    select = planned + 1
    calibration = planned + 2
    if len(rounds) != planned + 3:
        v.fail(
            "rounds",
            f"the manifest cites {len(rounds)} rounds, the plan had {planned + 3} (normalisation, "
            f"{planned} training, selection, calibration): a round is missing or added",
        )
        return
    aggregates: dict[int, str] = {}  # training round -> its aggregate's digest
    validation: dict[int, list[tuple[float, int]]] = {}  # ... -> the plants' signed reports
    previous: str | None = None
    weights: str | None = None  # digest of the weights the next round must start from
    prep: Any = None
    last_aggregate: str | None = None
    for k, leaf in enumerate(rounds):
        what = f"round {k}"
        record = c.record(leaf, what)
        if record is None:
            return
        p = record["payload"]
        if record["kind"] != ROUND_KIND or p.get("federation") != fed["federation"]:
            v.fail(what, f"record {leaf} is not a round of federation {fed['federation']}")
            return
        if p.get("round") != k or p.get("previous") != previous:
            v.fail(
                what,
                f"the chain is broken: the manifest's round {k} is the log's round "
                f"{p.get('round')}, citing {p.get('previous')} where round {k - 1} is {previous}"
                " (a round is missing or out of order)",
            )
            return
        # (Without the updates' bytes the initial weights are not recomputed: round 1's start
        # is then taken as stated.)
        if k == STATS_ROUND and (p.get("plan") or {}).get("rounds") != planned:
            v.fail(what, f"the signed plan has {(p.get('plan') or {}).get('rounds')} training "
                         f"rounds, the manifest {planned}")  # fmt: skip
            return
        if k > STATS_ROUND and weights is not None and p.get("base_sha256") != weights:
            v.fail(what, f"starts from weights {p.get('base_sha256')}, not {weights}")
            return
        contributions: list[tuple[bytes, int]] = []
        for u_leaf in p["updates"]:
            u = c.record(u_leaf, f"round {k} update")
            if u is None:
                return
            up = u["payload"]
            plant = u["producer"]["participant"]
            if u["kind"] != UPDATE_KIND or up.get("round") != k or up.get("plant") != plant:
                v.fail(f"round {k} update", f"record {u_leaf} is not round {k}'s update")
                return
            if up.get("base_sha256") != p.get("base_sha256"):
                v.fail(f"round {k} update", f"{plant} trained from other weights")
                return
            if 1 < k <= select and "base_validation_rmse" in up:
                report = (float(up["base_validation_rmse"]), int(up.get("n_validation", 0)))
                validation.setdefault(k - 1, []).append(report)
            if blobs is None or k == select:
                contributions.append((b"", int(up.get("n_windows", 0))))
                continue
            data = blobs(u_leaf)
            if data is None:
                v.fail(f"round {k} update", f"{plant}: the update's bytes are not in the bundle")
                return
            if sha256_0x(data) != up.get("update_sha256"):
                v.fail(
                    f"round {k} update",
                    f"{plant}: the bytes kept are not the update it signed (a changed update: "
                    f"{sha256_0x(data)} against {up.get('update_sha256')})",
                )
                return
            contributions.append((data, int(up.get("n_windows", 0))))
        label = {STATS_ROUND: "normalisation", select: "selection", calibration: "calibration"}.get(
            k, "training"
        )
        if k == select:
            from api.federation.server import select_best

            try:
                best = select_best(validation)
            except RuntimeError as exc:
                v.fail(what, str(exc))
                return
            if p.get("selected_round") != best or p.get("aggregate_sha256") != aggregates[best]:
                v.fail(
                    what,
                    f"selects round {p.get('selected_round')}, but the plants' signed validation "
                    f"figures make round {best} the best",
                )
                return
            v.add(what, "ok", f"selection: round {best}, by the plants' signed validation RMSEs")
            weights = aggregates[best]
            last_aggregate = weights
            previous = leaf
            continue
        if blobs is None:
            v.add(what, "unmade", f"{label}: {len(contributions)} updates; aggregate not "
                                  "recomputed (the updates' bytes are not here)")  # fmt: skip
            previous = leaf
            if k not in (STATS_ROUND, calibration):
                weights = p.get("aggregate_sha256")
                aggregates[k] = str(weights)
            continue
        try:
            got, prep, conformal = _recompute(
                k, calibration, contributions, p, prep, training, weights
            )
        except (ValueError, KeyError, TypeError) as exc:  # bytes of the wrong kind for the round
            v.fail(what, f"its updates cannot be read as a {label} round's: {exc}")
            return
        if got != p.get("aggregate_sha256"):
            v.fail(what, f"the aggregate ({p.get('aggregate_sha256')}) does not follow from its "
                         f"{len(contributions)} updates (recomputed: {got})")  # fmt: skip
            return
        n_refused = len(p.get("refused", []))
        v.add(
            what,
            "ok",
            f"{label}: {len(contributions)} updates, {n_refused} refused, aggregate {got[:18]}…",
        )
        if k == STATS_ROUND:
            weights = sha256_0x(
                update_bytes(initial_state(model_config(prep), int(training.get("seed", 0))))
            )
            if Preprocessing.from_dict(manifest.preprocessing).to_dict() != prep.to_dict():
                v.fail("preprocessing", "the manifest's is not round 0's merged statistics")
                return
        elif k == calibration:
            if manifest.config.get("conformal") != conformal.to_dict():
                v.fail("intervals", "the manifest's are not the calibration round's")
                return
        else:
            weights = got
            aggregates[k] = got
        previous = leaf
    if published is None:
        why = "the weights are not here to compare with the selected aggregate"
        v.add("final weights", "unmade", f"{why} (forgeproof verify-training MODEL_DIR)")
        return
    if published != last_aggregate or published != fed.get("final_aggregate_sha256"):
        v.fail(
            "final weights",
            f"the published weights ({published}) are not the selected round's aggregate "
            f"({last_aggregate})",
        )
        return
    v.add("final weights", "ok", f"the selected round's aggregate, {published[:18]}…")


def _recompute(
    k: int,
    calibration: int,
    contributions: list[tuple[bytes, int]],
    p: dict[str, Any],
    prep: Any,
    training: dict[str, Any],
    weights: str | None,
) -> tuple[str, Any, Any]:
    """(the round's aggregate digest recomputed from its updates, the preprocessing, the
    intervals) for round `k`, by the server's own definitions."""
    from api.federation.server import (
        aggregated_weights,
        calibrated_intervals,
        merged_preprocessing,
    )

    conformal = None
    if k == STATS_ROUND:
        prep, data = merged_preprocessing([d for d, _ in contributions])
    elif k == calibration:
        conformal, data = calibrated_intervals([d for d, _ in contributions], prep)
    elif contributions:
        method = str(p.get("aggregation"))
        data = aggregated_weights(contributions, method, float(training.get("trim", 0.2)))
    else:
        return weights or "", prep, conformal
    return sha256_0x(data), prep, conformal


def _published_digest(model_dir: Path) -> str:
    from safetensors.numpy import load_file

    from ml.federated import update_bytes
    from ml.manifest import WEIGHTS_FILE

    state = load_file(str(model_dir / WEIGHTS_FILE))
    return sha256_0x(update_bytes({k: np.asarray(a, np.float32) for k, a in state.items()}))


def training_report(service: Any, digest: str) -> dict[str, Any]:
    """What GET /v1/models/{digest}/training answers: the walk over the service's own log (the
    receipts of every round and update, keys and anchors checked on the chain), with those
    receipts, so an auditor can keep them. The updates' bytes and the weights are not held by
    the service: recomputing the aggregates and comparing the weights is `forgeproof
    verify-training MODEL_DIR`, reported here as unmade.

    Raises:
        NotFound: no such model, or it is not a federated one.
    """
    from sqlalchemy import select

    from api.tables import ModelRow
    from ledger.errors import NotFound
    from ledger.receipts import build_receipt, log_checkpoint_source
    from ml.manifest import ModelManifest

    log = service.dep.log
    with service.dep.store.reading() as conn:
        row = conn.execute(select(ModelRow).where(ModelRow.digest == digest)).first()
    if row is None:
        raise NotFound(f"no model with manifest digest {digest}")
    manifest = ModelManifest.model_validate(log.get(row.leaf_index).record().payload)
    fed = manifest.config.get("federation")
    if not isinstance(fed, dict) or not fed.get("rounds"):
        raise NotFound(f"model {digest} was not trained by a federation")
    kept: dict[str, Any] = {}

    def receipts(leaf: str) -> Any:
        try:
            stored = log.find(bytes.fromhex(leaf.removeprefix("0x")))
            kept[leaf] = build_receipt(log, stored.index, service.dep.domain)
        except (NotFound, ValueError):
            return None
        return kept[leaf]

    v = TrainingVerdict()
    walk(
        v,
        manifest,
        receipts,
        None,
        None,
        service.key_source,
        service.anchor_source,
        log_checkpoint_source(log),
    )
    return {
        "model": digest,
        "federation": fed["federation"],
        **v.to_json(),
        "receipts": kept,
    }
