"""Benchmark federated training with every round in the log: round time and the ledger's share.

    python bench/fl.py            # 3 plants (1 FD001 + 2 FD002) and 8 plants (2 + 6), 5 rounds
    python bench/fl.py --quick    # 3 plants, 2 rounds (a few minutes)
    python bench/fl.py --json     # ... and the figures as one JSON object on the last line

Each configuration is `forgeproof fl simulate --json` (the plants enrolled in a fresh temporary
home, a server and one client per plant as real processes, Flower over loopback; the clients
start once the server listens), then `forgeproof verify-training` on the model it wrote,
against that home's chain. From the server's summary:

  * round seconds: wall time of a round at the server, from sending the weights to the
    aggregate (the plants' local training and validation included);
  * ledger seconds: the server's part (checking each plant's record, appending it, signing and
    appending the round record) plus the plants' hashing and signing, summed over plants (so a
    CPU-time share: the plants sign in parallel);
  * medians over the training rounds 1..R; round 0 (normalisation statistics), the selection
    round R+1 (the plants only report the last aggregate's validation RMSE) and the calibration
    round R+2 are reported on their own, with the round the selection published;
  * anchoring: the final `sequencer.step` that anchors the log after the model is registered.

verify-training is timed as the command (process start and imports included) and as the time
the command reports for the check itself ("checked in ... s").
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._common import parser, report  # noqa: E402

FORGEPROOF = [sys.executable, "-m", "api.cli"]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "cmapss"
COLUMNS = ["plants", "R", "s/round", "ledger ms", "share", "r0 s", "select s", "selected"]
COLUMNS += ["calib s", "anchor ms", "verify s"]
CHECKED = re.compile(r"checked in ([0-9.]+) s")


TIMEOUT_S = 1500  # the whole federation, at most (generous: a shared machine can be slow)


def _tail(path: Path) -> str:
    lines = [x for x in path.read_text(errors="replace").splitlines() if "DEPRECATED" not in x]
    return "\n".join(lines[-40:])


def _ledger(r: dict[str, Any]) -> float:
    return float(r["ledger_seconds"]) + float(r["plant_ledger_seconds"])


def _round_figures(r: dict[str, Any]) -> dict[str, Any]:
    seconds = float(r["seconds"])
    ledger = _ledger(r)
    return {
        "seconds": round(seconds, 3),
        "ledger_seconds": round(ledger, 4),
        "server_ledger_seconds": round(float(r["ledger_seconds"]), 4),
        "plant_ledger_seconds": round(float(r["plant_ledger_seconds"]), 4),
        "ledger_share_pct": round(100 * ledger / seconds, 2) if seconds else None,
        "updates": len(r["updates"]),
        "refused": len(r["refused"]),
    }


def simulate(
    data_dir: Path, home: Path, model: Path, fd001: int, fd002: int, rounds: int, log: Path
) -> str:
    """`forgeproof fl simulate --json` (the plants enrolled in HOME, a server and one client per
    plant, each its own process, Flower on loopback; the clients start once the server listens
    and keep trying to reach it). Returns the server's JSON summary line."""
    cmd = [*FORGEPROOF, "fl", "simulate", "--data-dir", str(data_dir), "--home", str(home),
           "--out", str(model), "--fd001-plants", str(fd001), "--fd002-plants", str(fd002),
           "--rounds", str(rounds), "--timeout", str(TIMEOUT_S), "--json"]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("w") as err:  # the server's and the plants' stderr
        try:
            done = subprocess.run(
                cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=REPO,
                timeout=TIMEOUT_S + 120,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise SystemExit(f"no result in {TIMEOUT_S + 120} s:\n{_tail(log)}") from None
    if done.returncode != 0 or not done.stdout.strip():
        raise SystemExit(f"fl simulate stopped ({done.returncode}):\n{_tail(log)}")
    return str(done.stdout).strip().splitlines()[-1]


def federation(data_dir: Path, fd001: int, fd002: int, rounds: int) -> dict[str, Any]:
    """One federation on a fresh home, then verify-training on its model."""
    with tempfile.TemporaryDirectory(prefix="bench-fl-") as tmp:
        home, model = Path(tmp) / "home", Path(tmp) / "model"
        t = time.perf_counter()
        stdout = simulate(data_dir, home, model, fd001, fd002, rounds, Path(tmp) / "fl.log")
        total = time.perf_counter() - t
        summary = json.loads(stdout)
        t = time.perf_counter()
        check = subprocess.run(
            [*FORGEPROOF, "verify-training", str(model), "--home", str(home)],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        verify_s = time.perf_counter() - t
        if check.returncode != 0:
            raise SystemExit(f"verify-training failed ({check.returncode}):\n{check.stdout}")
        m = CHECKED.search(check.stderr)
        manifest = json.loads((model / "manifest.json").read_text())
        selected = manifest["config"]["federation"]["selected_round"]
    by_round = {r["round"]: r for r in summary["rounds"]}
    training = [by_round[k] for k in range(1, rounds + 1)]
    shares = [100 * _ledger(r) / float(r["seconds"]) for r in training]
    n_plants = fd001 + fd002
    return {
        "plants": n_plants,
        "fd001_plants": fd001,
        "fd002_plants": fd002,
        "rounds": rounds,
        "training_round": {
            "median_seconds": round(statistics.median(float(r["seconds"]) for r in training), 3),
            "median_ledger_seconds": round(statistics.median(_ledger(r) for r in training), 4),
            "median_server_ledger_seconds": round(
                statistics.median(float(r["ledger_seconds"]) for r in training), 4
            ),
            "median_plant_ledger_seconds": round(
                statistics.median(float(r["plant_ledger_seconds"]) for r in training), 4
            ),
            "median_ledger_share_pct": round(statistics.median(shares), 2),
        },
        "normalisation_round": _round_figures(by_round[0]),
        "selection_round": _round_figures(by_round[rounds + 1]),
        "selected_round": selected,
        "calibration_round": _round_figures(by_round[rounds + 2]),
        "anchor_seconds": round(float(summary["anchor_seconds"]), 4),
        "simulate_wall_seconds": round(total, 1),
        "verify_training_seconds": round(verify_s, 2),
        "verify_training_check_seconds": float(m.group(1)) if m else None,
        "refused": sum(len(r["refused"]) for r in summary["rounds"]),
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="C-MAPSS folder")
    args = p.parse_args()
    if not (args.data_dir / "train_FD001.txt").is_file():
        raise SystemExit(f"no C-MAPSS data in {args.data_dir} (--data-dir)")
    configs = [(1, 2, 2)] if args.quick else [(1, 2, 5), (2, 6, 5)]
    results = []
    for fd001, fd002, rounds in configs:
        print(f"  {fd001} + {fd002} plants, {rounds} rounds ...", file=sys.stderr, flush=True)
        results.append(federation(args.data_dir, fd001, fd002, rounds))
    rows = []
    for r in results:
        tr, r0, cal = r["training_round"], r["normalisation_round"], r["calibration_round"]
        sel = r["selection_round"]
        rows.append([
            f"{r['plants']} ({r['fd001_plants']}+{r['fd002_plants']})",
            r["rounds"],
            f"{tr['median_seconds']:.2f}",
            f"{tr['median_ledger_seconds'] * 1e3:.1f}",
            f"{tr['median_ledger_share_pct']:.2f} %",
            f"{r0['seconds']:.2f}",
            f"{sel['seconds']:.2f}",
            r["selected_round"],
            f"{cal['seconds']:.2f}",
            f"{r['anchor_seconds'] * 1e3:.0f}",
            f"{r['verify_training_seconds']:.1f}",
        ])  # fmt: skip
    # Columns: plants (FD001 + FD002 plants), training rounds R, median seconds per training
    # round, median ledger milliseconds per training round (server + plants' signing), its
    # share of the round, round 0 and selection round seconds, the round selected, calibration
    # round seconds, the final anchoring, and
    # `verify-training --home` as a command. Everything else is in the JSON.
    report(
        "Federated rounds, every one in the log",
        COLUMNS,
        rows,
        {"federations": results, "cpus": os.cpu_count(), "quick": args.quick},
        args.json,
    )


if __name__ == "__main__":
    main()
