"""Phone numbers in one canonical form (E.164), so that a customer is the same customer everywhere.

Meta sends the sender as digits without a plus ("447700900001"); a business's customer list
writes "+44 7700 900001" or "0044 7700 900001". Compared as typed, a VIP is silently missed.
Every number is parsed with ``phonenumbers`` (Google's libphonenumber) and written as E.164.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers


@lru_cache(maxsize=16_384)
def e164(number: str | int) -> str | None:
    """``number`` as E.164 ("+447700900001"), or None when it cannot be a phone number.

    A number without a country prefix is read as international: WhatsApp ids always carry the
    country code, and the directory must not guess a region. Remembered for the latest
    numbers: the webhook normalises every sender, and customers write again (a parse costs
    25 µs, a remembered one well under 1)."""
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
