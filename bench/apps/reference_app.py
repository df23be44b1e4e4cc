"""The reference workload: an allocation-heavy Flask shop, with the agent inside.

What makes a real service's collector work hard, in one app:

- a long-lived in-memory catalogue (``REFERENCE_CACHE_ENTRIES`` products,
  about 300 MB at the default), built at import. Under ``gunicorn --preload``
  the master builds it once and the workers share its pages copy-on-write,
  until something writes to them: a full collection does, to every tracked
  object it scans, which is what ``gc.freeze()`` is for;
- every request builds an order graph with reference cycles (lines point back
  at their order, orders at their customer), so only the collector can free
  it, looks products up in the catalogue, and renders JSON;
- every request keeps the customer's basket in a bounded store of recent
  baskets (``RECENT_BASKETS``, oldest dropped first), and one request in
  ``CHURN`` refreshes a catalogue entry, as a price update would: objects
  that live long enough to reach the oldest generation, which is what
  triggers full collections (CPython runs one when the objects promoted
  there since the last one exceed a quarter of those it kept then).

The catalogue is built from a fixed seed, so every server is the same.
"""

from __future__ import annotations

import os
import random
from collections import OrderedDict
from typing import Any

from flask import Flask

from gctuner.flask import GCTuner

CACHE_ENTRIES = int(os.environ.get("REFERENCE_CACHE_ENTRIES", "60000"))
DESCRIPTION_WORDS = 400
ORDERS_PER_REQUEST = 6
LINES_PER_ORDER = 40
CHURN = 20
"""One request in this many replaces a catalogue entry."""
RECENT_BASKETS = 2000

_WORDS = ("steel", "oak", "linen", "wool", "glass", "copper", "walnut", "cotton",
          "brass", "slate", "cedar", "silk", "clay", "bamboo", "marble", "felt")  # fmt: skip


def product(index: int, rng: random.Random) -> dict[str, Any]:
    """One catalogue entry: nested dicts and lists, about ten objects the
    collector tracks, and 2-3 KB of text, which it never reads (a str holds
    no references), as in a real catalogue."""
    sku = f"SKU-{index:08d}"
    words = rng.sample(_WORDS, 6)
    return {
        "id": index,
        "sku": sku,
        "name": f"{words[0].title()} {words[1]} item {index}",
        "description": " ".join(rng.choices(_WORDS, k=DESCRIPTION_WORDS)),
        "price_cents": rng.randrange(100, 100_000),
        "tags": words[2:],
        "attributes": {"colour": words[0], "material": words[1], "origin": rng.choice(_WORDS),
                       "weight_g": rng.randrange(10, 5000)},  # fmt: skip
        "variants": [
            {"sku": f"{sku}-{v}", "stock": rng.randrange(100),
             "dimensions_mm": [rng.randrange(10, 900) for _ in range(3)]}  # fmt: skip
            for v in range(3)
        ],
        "related": [rng.randrange(CACHE_ENTRIES) for _ in range(8)],
    }


def build_catalogue(entries: int) -> list[dict[str, Any]]:
    """The long-lived cache, the same at every start (fixed seed)."""
    rng = random.Random(6)
    return [product(index, rng) for index in range(entries)]


CATALOGUE = build_catalogue(CACHE_ENTRIES)

RECENT: OrderedDict[int, list[list[Any]]] = OrderedDict()
"""Customer -> the lines of their last basket, at most ``RECENT_BASKETS``."""

app = Flask(__name__)
GCTuner(app)


class Customer:
    """A request's customer; with its orders, the root of a cyclic graph."""

    def __init__(self, customer_id: int) -> None:
        self.id = customer_id
        self.orders: list[Order] = []


class Order:
    """One order, pointing back at its customer."""

    def __init__(self, customer: Customer, number: int) -> None:
        self.customer = customer  # a cycle: customer.orders holds this order
        self.number = number
        self.lines: list[Line] = []


class Line:
    """One priced line, pointing back at its order and into the catalogue."""

    def __init__(self, order: Order, item: dict[str, Any], quantity: int) -> None:
        self.order = order  # a cycle: order.lines holds this line
        self.item = item
        self.quantity = quantity
        self.adjustments = [{"kind": "discount", "percent": quantity % 15},
                            {"kind": "tax", "percent": 20}]  # fmt: skip

    def total_cents(self) -> int:
        cents = self.item["price_cents"] * self.quantity
        for adjustment in self.adjustments:
            sign = -1 if adjustment["kind"] == "discount" else 1
            cents += sign * cents * adjustment["percent"] // 100
        return cents


@app.get("/order")
def order() -> dict[str, Any]:
    """A customer's recent orders, priced from the catalogue, as JSON."""
    rng = random.Random()
    customer = Customer(rng.randrange(1_000_000))
    for number in range(ORDERS_PER_REQUEST):
        placed = Order(customer, number)
        customer.orders.append(placed)
        for _ in range(LINES_PER_ORDER):
            item = CATALOGUE[rng.randrange(CACHE_ENTRIES)]
            placed.lines.append(Line(placed, item, rng.randrange(1, 10)))
    RECENT[customer.id] = [[line.item["sku"], line.quantity] for line in customer.orders[-1].lines]
    if len(RECENT) > RECENT_BASKETS:
        RECENT.popitem(last=False)
    if rng.randrange(CHURN) == 0:
        index = rng.randrange(CACHE_ENTRIES)
        CATALOGUE[index] = product(index, rng)
    return {
        "customer": customer.id,
        "orders": [
            {
                "number": placed.number,
                "lines": [{"sku": line.item["sku"], "quantity": line.quantity,
                           "total_cents": line.total_cents()} for line in placed.lines],  # fmt: skip
                "total_cents": sum(line.total_cents() for line in placed.lines),
            }
            for placed in customer.orders
        ],
    }
