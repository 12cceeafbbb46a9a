"""`lookup_order` and `list_orders`: read-only questions about the example shop's orders.

They answer from the SQLite database built from `examples/data/orders.sql` (see
`examples.data.orders_db`), opened read-only, so calling them twice is harmless
(`idempotent=True`). Amounts are returned as decimal strings ("123.40") with their
currency: exact, and unambiguous for a model to quote.
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from contextlib import closing
from typing import Annotated, Any, Literal

from examples.data.orders_db import connect
from runq.runs.tools import tool

Status = Literal["pending", "paid", "shipped", "delivered", "cancelled", "refunded"]

_ORDER_ID = re.compile(r"^(?:ORD)?[-_ ]?(\d{1,9})$")


@tool(timeout=5.0, idempotent=True)
def lookup_order(
    order_id: Annotated[str, "The order number, e.g. 'ORD-1004'"],
) -> dict[str, Any]:
    """Look up one order of the shop: status, dates, customer, items, totals and tracking.

    Use it to answer questions such as "where is my order ORD-1011?" or "what did I pay
    for ORD-1005?".
    """
    key = normalize_order_id(order_id)
    with closing(connect()) as db:
        order = db.execute(
            """SELECT o.*, t.subtotal_cents, t.total_cents, t.item_count,
                      c.name AS customer_name, c.email, c.city, c.country
               FROM orders o JOIN order_totals t ON t.order_id = o.id
                             JOIN customers c ON c.id = o.customer_id
               WHERE o.id = ?""",
            (key,),
        ).fetchone()
        if order is None:
            raise ValueError(f"no order with id {order_id!r}; order ids look like 'ORD-1001'")
        items = db.execute(
            """SELECT i.line, i.sku, p.name, i.quantity, i.unit_price_cents
               FROM order_items i JOIN products p ON p.sku = i.sku
               WHERE i.order_id = ? ORDER BY i.line""",
            (key,),
        ).fetchall()
    return _order_details(order, items)


@tool(timeout=5.0, idempotent=True)
def list_orders(
    customer: Annotated[str, "Customer id ('C003'), email address, or (part of) the name"],
    status: Annotated[Status | None, "Only orders with this status"] = None,
) -> dict[str, Any]:
    """List a customer's orders, newest first, with status, date and total.

    Use lookup_order for the items and tracking of one order.
    """
    with closing(connect()) as db:
        customers = _find_customers(db, customer)
        ids = [c["id"] for c in customers]
        query = f"""SELECT o.id, o.customer_id, o.status, o.placed_at, o.currency,
                           t.total_cents, t.item_count
                    FROM orders o JOIN order_totals t ON t.order_id = o.id
                    WHERE o.customer_id IN ({", ".join("?" * len(ids))})"""
        params: list[str] = list(ids)
        if status is not None:
            query += " AND o.status = ?"
            params.append(status)
        rows = db.execute(query + " ORDER BY o.placed_at DESC", params).fetchall()
    return {
        "customers": [{"id": c["id"], "name": c["name"], "email": c["email"]} for c in customers],
        "status": status,
        "orders": [
            {
                "order_id": row["id"],
                "customer_id": row["customer_id"],
                "status": row["status"],
                "placed_at": row["placed_at"],
                "total": money(row["total_cents"]),
                "currency": row["currency"],
                "item_count": row["item_count"],
            }
            for row in rows
        ],
    }


def normalize_order_id(order_id: str) -> str:
    """'ord-1004', 'ORD1004' and '1004' all mean 'ORD-1004'; anything else is refused."""
    match = _ORDER_ID.match(order_id.strip().upper())
    if match is None:
        raise ValueError(f"{order_id!r} is not an order id; order ids look like 'ORD-1001'")
    return f"ORD-{match.group(1)}"


def money(cents: int) -> str:
    """Integer cents as a decimal string: 12350 -> '123.50'."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _order_details(order: sqlite3.Row, items: list[sqlite3.Row]) -> dict[str, Any]:
    details: dict[str, Any] = {
        "order_id": order["id"],
        "status": order["status"],
        "placed_at": order["placed_at"],
        "updated_at": order["updated_at"],
        "customer": {
            "id": order["customer_id"],
            "name": order["customer_name"],
            "email": order["email"],
            "city": order["city"],
            "country": order["country"],
        },
        "items": [
            {
                "line": item["line"],
                "sku": item["sku"],
                "name": item["name"],
                "quantity": item["quantity"],
                "unit_price": money(item["unit_price_cents"]),
                "line_total": money(item["quantity"] * item["unit_price_cents"]),
            }
            for item in items
        ],
        "item_count": order["item_count"],
        "currency": order["currency"],
        "subtotal": money(order["subtotal_cents"]),
        "shipping": money(order["shipping_cents"]),
        "total": money(order["total_cents"]),
    }
    if order["carrier"]:
        details["shipment"] = {
            "carrier": order["carrier"],
            "tracking_number": order["tracking_number"],
        }
    return details


def _find_customers(db: sqlite3.Connection, text: str) -> list[sqlite3.Row]:
    """Customers whose id or email equals `text`, else whose name contains it.

    Matching ignores case and accents, so "tomas novak" finds "Tomáš Novák".
    """
    wanted = _fold(text)
    if not wanted:
        raise ValueError("say which customer: an id like 'C003', an email address or a name")
    everyone = db.execute("SELECT id, name, email FROM customers ORDER BY id").fetchall()
    exact = [c for c in everyone if wanted in (_fold(c["id"]), _fold(c["email"]))]
    found = exact or [c for c in everyone if wanted in _fold(c["name"])]
    if not found:
        raise ValueError(
            f"no customer matches {text!r}; search by customer id (like 'C003'), "
            "email address or name"
        )
    return found


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(plain.casefold().split())
