"""Products assigned to suppliers: a supplier reads the demand forecasts of its products.

An assignment is kept twice, in one transaction: as an operator-signed `product_assignment`
record in the log (`{"product": ..., "supplier": ...}`), and as a row of `product_assignments`
that indexes it (like `models` indexes manifests). Reads go through the row (`api.access`);
the record is what lets a demand scorecard's per-supplier figures be recomputed from receipts
alone: a settled forecast counts for the suppliers whose assignment to its product was logged
before it (docs/scorecards.md).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from api.auth import Caller
from api.forecasts import check_product
from api.tables import ProductAssignment, RecordTag
from ledger.errors import Conflict, NotPermitted
from ledger.ingest import check_record
from ledger.records import Record, hex0x

ASSIGNMENT_KIND = "product_assignment"


def assign_product(service: Any, product: str, supplier: str) -> dict[str, Any]:
    """Assign `product` to `supplier` with an operator-signed record; returns the assignment
    and its record's id and index.

    Raises:
        InputError: a malformed product code.
        NotPermitted: `supplier` does not hold the supplier role (403, as for assets).
        NotFound: no such participant.
        Conflict: the product is already assigned to that supplier (nothing is appended).
    """
    check_product(product)
    dep = service.dep
    if "supplier" not in dep.registry.participant(supplier).roles:
        raise NotPermitted(f"{supplier} is not a supplier")
    signer = dep.signer(dep.operator)
    payload = {"product": product, "supplier": supplier}
    record = Record.new(ASSIGNMENT_KIND, payload, participant=dep.operator, address=signer.address)
    accepted = check_record(record, signer.sign(dep.domain, record), dep.domain,
                            service.key_snapshot())  # fmt: skip
    # Looked up under the log's lock, logged and indexed in one transaction: two requests at
    # once log one assignment, and a refusal appends nothing.
    with service.append_lock, dep.log.appending() as app:
        if _assigned(app.conn, product, supplier):
            raise Conflict(f"{product} is already assigned to {supplier}")
        [appended] = app.add([accepted])
        app.conn.execute(
            insert(ProductAssignment).values(
                product=product, supplier=supplier, leaf_index=appended.index
            )
        )
        app.conn.execute(
            insert(RecordTag).values(leaf_index=appended.index, asset=None, model=None,
                                     product=product)
        )  # fmt: skip
    return {
        "product": product,
        "supplier": supplier,
        "record_id": hex0x(appended.leaf_hash),
        "record_index": appended.index,
    }


def _assigned(conn: Connection, product: str, supplier: str) -> bool:
    found = conn.execute(
        select(ProductAssignment.product).where(
            ProductAssignment.product == product, ProductAssignment.supplier == supplier
        )
    ).first()
    return found is not None


def readable_assignments(conn: Connection, caller: Caller) -> list[dict[str, Any]]:
    """The product assignments `caller` may look at, by product: a supplier's own (it is not
    shown who else supplies its products); every one for a caller that reads everything;
    none for anyone else."""
    q = select(ProductAssignment).order_by(ProductAssignment.product, ProductAssignment.supplier)
    if caller.role == "supplier":
        q = q.where(ProductAssignment.supplier == caller.participant)
    elif not caller.reads_everything:
        return []
    return [
        {"product": r.product, "supplier": r.supplier, "record_index": r.leaf_index}
        for r in conn.execute(q).all()
    ]


def suppliers_at(conn: Connection, products: set[str]) -> dict[str, list[tuple[int, str]]]:
    """For each of `products`, its assignments as (leaf index of the assignment record,
    supplier), in log order: a forecast at leaf i counts for those with index < i."""
    out: dict[str, list[tuple[int, str]]] = {}
    if not products:
        return out
    rows = conn.execute(
        select(ProductAssignment.product, ProductAssignment.leaf_index, ProductAssignment.supplier)
        .where(ProductAssignment.product.in_(sorted(products)))
        .order_by(ProductAssignment.leaf_index)
    ).all()
    for product, index, supplier in rows:
        out.setdefault(product, []).append((index, supplier))
    return out
