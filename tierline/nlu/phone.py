"""Phone numbers in one canonical form (E.164), so that a customer is the same customer everywhere.

Meta sends the sender as digits without a plus ("447700900001"); a business's customer list
writes "+44 7700 900001" or "0044 7700 900001". Compared as typed, a VIP is silently missed.
Every number is parsed with ``phonenumbers`` (Google's libphonenumber) and written as E.164.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import phonenumbers


#: How many numbers are remembered (as typed, and in their E.164 form).
REMEMBERED = 16_384
_canonical: dict[str, None] = {}  # E.164 strings this module produced, oldest first
_canonical_lock = threading.Lock()


def e164(number: str | int) -> str | None:
    """``number`` as E.164 ("+447700900001"), or None when it cannot be a phone number.

    A number without a country prefix is read as international: WhatsApp ids always carry the
    country code, and the directory must not guess a region. Remembered for the latest
    numbers, both as given and as written back: the webhook normalises every sender
    ("447700900001") and then looks up its tier by the E.164 form ("+447700900001"), and
    customers write again. A parse costs 25 µs; a new sender used to cost two of them at
    intake, which `tierline bench http` (a new sender per message) showed as a tenth less
    webhook throughput at saturation."""
    if isinstance(number, str) and number in _canonical:
        return number
    result = _parse(number)
    if result is not None and result not in _canonical:
        with _canonical_lock:
            _canonical[result] = None
            if len(_canonical) > REMEMBERED:
                del _canonical[next(iter(_canonical))]
    return result


@lru_cache(maxsize=REMEMBERED)
def _parse(number: str | int) -> str | None:
    """:func:`e164` without the memory of numbers already in E.164."""
    raw = str(number).strip()
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    elif not raw.startswith("+"):
        raw = "+" + raw
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def customer_key(customer_id: str | int) -> str:
    """The key a customer is known by: E.164 for a phone number, else the id as given (an API
    caller's own ids, "demo-user-7")."""
    return e164(customer_id) or str(customer_id).strip()
