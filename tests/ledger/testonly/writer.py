"""A record producer for the crash tests: appends signed records and logs each acknowledgement.

    python -m tests.ledger.testonly.writer HOME ACK_FILE N [PAUSE_S]

A line `index leaf_hash` is written (and fsynced) only after the append committed: every line
in ACK_FILE is a record the log promised to keep.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

from ledger.deployment import Deployment
from ledger.ingest import check_record
from ledger.records import Record


def main() -> None:
    home, ack_path, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    dep = Deployment.open(home)
    signer = dep.signer("acme")
    rng = random.Random(os.getpid())
    done = dep.log.committed_size()
    with ack_path.open("a") as ack:
        while done < n:
            batch = []
            for _ in range(rng.randint(1, 12)):
                rec = Record.new(
                    "supplier_record",
                    {"lot": f"L{rng.random()}"},
                    participant="acme",
                    address=signer.address,
                )
                batch.append(
                    check_record(
                        rec, signer.sign(dep.domain, rec), dep.domain, dep.registry.snapshot()
                    )
                )
            for a in dep.log.append(batch):
                ack.write(f"{a.index} {a.leaf_hash.hex()}\n")
            ack.flush()
            os.fsync(ack.fileno())
            done = dep.log.size
            time.sleep(pause)
    dep.close()


if __name__ == "__main__":
    main()
