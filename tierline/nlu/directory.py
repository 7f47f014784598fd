"""Look-ups the bot and the policy need: orders and customers, behind small interfaces.

The defaults read the demo files named in the flow (``data/bot/*.csv``); a business plugs in
its own shop or CRM by implementing the same two methods.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tierline.nlu.phone import customer_key


@dataclass(frozen=True)
class Order:
    """What the bot can tell a customer about an order."""

    number: str
    status: str
    carrier: str
    eta: str


class OrderLookup(Protocol):
    """Finds an order by its number; ``None`` when there is no such order."""

    def find(self, order_number: str) -> Order | None: ...


class CustomerDirectory(Protocol):
    """The customer's tier (``standard``, ``premium``, ``vip``...) by customer id."""

    def tier_of(self, customer_id: str) -> str: ...


class CsvOrderLookup:
    """Orders from a CSV file with columns order_number, status, carrier, eta."""

    def __init__(self, path: Path) -> None:
        with open(path, encoding="utf-8", newline="") as fh:
            self._orders = {r["order_number"].upper(): Order(r["order_number"], r["status"],
                                                             r["carrier"], r["eta"])
                            for r in csv.DictReader(fh)}

    def find(self, order_number: str) -> Order | None:
        """The order, matched case-insensitively."""
        return self._orders.get(order_number.strip().upper())

    def numbers(self) -> list[str]:
        """Every known order number (the simulator draws real ones from here)."""
        return sorted(o.number for o in self._orders.values())


class CsvCustomerDirectory:
    """Tiers from a CSV file with columns customer_id, name, tier; unknown ids are standard.
    Phone numbers match whatever way they are written ("+44 7700 900001" in the file,
    "447700900001" from Meta): both sides are read as E.164 (:mod:`tierline.nlu.phone`)."""

    def __init__(self, path: Path) -> None:
        with open(path, encoding="utf-8", newline="") as fh:
            self._tiers = {customer_key(r["customer_id"]): r["tier"] for r in csv.DictReader(fh)}

    def tier_of(self, customer_id: str) -> str:
        """The tier of ``customer_id``; ``standard`` when the directory does not know them."""
        return self._tiers.get(customer_key(customer_id), "standard")
