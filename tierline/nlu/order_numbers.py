"""Order numbers in a customer's message, in the flow's format, however WhatsApp users type them.

The flow gives the format as a regular expression (``orders.number_pattern``, "^ND-\\d{6}$").
Customers write "ND-123456", but also "nd123456", "nd 123456", "#ND-123456", "ND–123456" (a
phone's autocorrected dash) or "pedido: nd_123456.". A number is found when it is written as
the format says (any case), or when a prefix of letters and a run of digits, joined by nothing,
a space or one punctuation mark, are an order number once joined the format's way: every
candidate is checked against the format itself, so nothing that is not an order number in the
flow's own terms is ever reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: A prefix of letters, at most one separator (spaces around it allowed), then digits (groups
#: of digits split by single spaces: "ND 123 456").
_TYPED = re.compile(r"(?<![0-9A-Za-z])([A-Za-z]{1,8})\s?[-–—_./#:]?\s?(\d+(?: \d+)*)(?![0-9A-Za-z])")
#: How a typed prefix and its digits may be joined to meet the format.
_JOINERS = ("-", "", " ", "_", "/", ".")
#: Order numbers kept per conversation (the latest ones).
MAX_REMEMBERED = 5


@dataclass(frozen=True)
class FoundNumber:
    """An order number written in a message: as the format writes it, and where it stands."""

    number: str
    start: int
    end: int


class OrderNumbers:
    """Finds order numbers of one format (the flow's ``number_pattern``) in messages."""

    def __init__(self, pattern: str) -> None:
        core = pattern.strip("^$")
        self._format = re.compile(core, re.IGNORECASE)
        self._written = re.compile(f"(?<![0-9A-Za-z])(?:{core})(?![0-9A-Za-z])", re.IGNORECASE)
        # The format's own letters ("ND" of "ND-\d{6}"): a typed prefix that is them, with
        # digits that make no number, is a number mistyped.
        letters = re.match(r"[A-Za-z]+", core)
        self._prefix = letters.group(0).upper() if letters else None

    def is_number(self, text: str) -> bool:
        """``text`` is an order number of this format (any case)."""
        return self._format.fullmatch(text) is not None

    def find_all(self, text: str) -> list[FoundNumber]:
        """Every order number in ``text``, in the order written, each once (upper-cased)."""
        found = [FoundNumber(m.group(0).upper(), m.start(), m.end())
                 for m in self._written.finditer(text)]
        for m in _TYPED.finditer(text):
            if any(f.start < m.end() and m.start() < f.end for f in found):
                continue  # already found as written
            joined = self._joined(m.group(1), m.group(2).split(" "))
            if joined is not None:
                number, used = joined
                found.append(FoundNumber(number, m.start(), m.start(2) + len(used)))
        seen: set[str] = set()
        ordered = []
        for f in sorted(found, key=lambda f: f.start):
            if f.number not in seen:
                seen.add(f.number)
                ordered.append(f)
        return ordered

    def mistyped(self, text: str) -> bool:
        """``text`` holds no order number but the format's prefix with digits that make none:
        "ND-55", "ND-5512", "nd 1234567" (a digit short or one too many)."""
        if self._prefix is None:
            return False
        # The cheap test first: most messages type no such prefix at all.
        return (any(m.group(1).upper() == self._prefix for m in _TYPED.finditer(text))
                and not self.find_all(text))

    def first(self, text: str) -> FoundNumber | None:
        """The first order number in ``text``, or None."""
        found = self.find_all(text)
        return found[0] if found else None

    def _joined(self, prefix: str, groups: list[str]) -> tuple[str, str] | None:
        """The order number a typed prefix and digit groups make, with the digits it used (the
        longest run of groups first: "ND 123456 2 pairs" is ND-123456), or None."""
        for n in range(len(groups), 0, -1):
            digits = "".join(groups[:n])
            for joiner in _JOINERS:
                candidate = f"{prefix}{joiner}{digits}"
                if self.is_number(candidate):
                    return candidate.upper(), " ".join(groups[:n])
        return None


def remember(known: list[str], numbers: list[str], limit: int = MAX_REMEMBERED) -> list[str]:
    """``known`` with ``numbers`` added as the latest (a number written again moves to the end),
    the ``limit`` latest kept."""
    kept = [n for n in known if n not in numbers] + list(dict.fromkeys(numbers))
    return kept[-limit:]
