"""EPCIS 2.0 on the ledger: capture, query, genealogy, recall, and the auditor's export.

Every captured event is a signed record of kind `epcis_event` in the append-only log,
identified by its CBV 2.0 event hash ID, and indexed (`epcis_events`, `epcis_links`) so that
queries and genealogy are SQL. Nothing here touches the network: the GS1 schema and JSON-LD
contexts ship in `schema/`.

    validate.py    the official EPCIS 2.0 JSON Schema; refusals carry its complaints
    hashid.py      CBV 2.0 event hash IDs (GS1's reference implementation, offline)
    capture.py     documents and events -> records + index, atomic and idempotent
    query.py       SimpleEventQuery parameters -> EPCISQueryDocument pages
    export.py      predictions and inspections -> EPCIS events linked to their records
    genealogy.py   upstream / downstream traces, recall queries
    audit.py       the auditor's bundle (events, receipts, checkpoints) and its HTML page
    synthetic.py   a generated plant history for tests, benchmarks and demos

Import from the modules (`from ledger.epcis.capture import capture`): the package re-exports
nothing, so `ledger.epcis.capture` stays the module. See docs/epcis.md for the API.
"""
