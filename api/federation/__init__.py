"""Federated training across plants over Flower, every round in the log (docs/federated.md).

`records` (what is logged), `server` (the operator's Flower strategy), `client` (a plant's
signing client), `verify` (`forgeproof verify-training`), `cli` (`forgeproof fl ...`). The ML
itself (statistics, local steps, aggregation) is `ml.federated`.
"""
