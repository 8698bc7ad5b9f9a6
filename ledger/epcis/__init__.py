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

See docs/epcis.md.
"""

from ledger.epcis.audit import audit_bundle, audit_html, verify_audit, write_audit
from ledger.epcis.capture import (
    CapturedEvent,
    CaptureResult,
    capture,
    capture_signed,
    prepare,
)
from ledger.epcis.errors import Complaint, QueryParameterError, SchemaViolation, UnsupportedEpcis
from ledger.epcis.export import RecordLink, inspection_event, maintenance_event
from ledger.epcis.genealogy import (
    Edge,
    Genealogy,
    Recall,
    downstream,
    recall_by_model,
    recall_from_lot,
    recall_nonconformant,
    trace,
    upstream,
)
from ledger.epcis.hashid import event_hash_id
from ledger.epcis.index import EventRef
from ledger.epcis.query import EventQuery, QueryPage, get_event, parse_query, query_events
from ledger.epcis.validate import validate, validate_capture

__all__ = [
    "CaptureResult",
    "CapturedEvent",
    "Complaint",
    "Edge",
    "EventQuery",
    "EventRef",
    "Genealogy",
    "QueryPage",
    "QueryParameterError",
    "Recall",
    "RecordLink",
    "SchemaViolation",
    "UnsupportedEpcis",
    "audit_bundle",
    "audit_html",
    "capture",
    "capture_signed",
    "downstream",
    "event_hash_id",
    "get_event",
    "inspection_event",
    "maintenance_event",
    "parse_query",
    "prepare",
    "query_events",
    "recall_by_model",
    "recall_from_lot",
    "recall_nonconformant",
    "trace",
    "upstream",
    "validate",
    "validate_capture",
    "verify_audit",
    "write_audit",
]
