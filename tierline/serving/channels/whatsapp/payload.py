"""Parsing Meta's webhook payload (``entry[].changes[].value``) into plain records.

Only the shape matters here; storage and replies happen elsewhere. Every message type becomes
an :class:`IncomingMessage` (text, interactive button/list replies and template quick-reply
buttons carry text and a button id; media, location, stickers, reactions and unknown types carry
their type so the worker can answer them sensibly).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from tierline.nlu.phone import customer_key

MEDIA_TYPES = ("image", "audio", "video", "document", "location", "sticker", "contacts")


class PayloadError(ValueError):
    """The body is JSON but not a WhatsApp webhook payload."""


@dataclass
class IncomingMessage:
    """One customer message from the webhook.

    ``customer_id`` is the sender's number in E.164 ("+447700900123", :func:`customer_key`),
    however Meta wrote it; ``wa_id`` is the sender as Meta wrote it ("447700900123"): the
    conversation is keyed by it and replies go to it (given none, the ``customer_id`` as
    given). ``customer_name`` is the sender's WhatsApp profile name, when the delivery names
    it (``contacts[].profile.name``)."""

    wamid: str
    customer_id: str
    phone_number_id: str  # our business number that received it
    type: str
    text: str = ""
    button_id: str | None = None
    sent_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    wa_id: str = ""
    customer_name: str | None = None

    def __post_init__(self) -> None:
        self.wa_id = self.wa_id or str(self.customer_id)
        self.customer_id = customer_key(self.customer_id)

    @property
    def conversation_id(self) -> str:
        """The WhatsApp conversation this message belongs to."""
        return conversation_id(self.phone_number_id, self.wa_id)


def conversation_id(phone_number_id: str, wa_id: str) -> str:
    """One WhatsApp conversation per (business number, customer as Meta names them)."""
    return f"wa:{phone_number_id}:{wa_id}"


def recipient_of(conversation_id: str) -> str:
    """Whom a WhatsApp conversation's messages go to: the customer's ``wa_id`` as Meta sent
    it (the last part of :func:`conversation_id`), never a number rewritten here."""
    return conversation_id.rsplit(":", 1)[-1]


@dataclass
class StatusUpdate:
    """A delivery status (sent/delivered/read/failed) of one of our outbound messages."""

    wamid: str
    status: str
    recipient_id: str
    phone_number_id: str
    at: datetime | None
    errors: list[dict[str, Any]]
    callback_data: str | None


def signature(raw_body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends: ``sha256=`` + HMAC-SHA256 hex of the body."""
    return "sha256=" + hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()


def signature_is_valid(raw_body: bytes, header: str | None, app_secret: str) -> bool:
    """Check ``X-Hub-Signature-256`` against the raw body, in constant time."""
    if not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(signature(raw_body, app_secret),
                               "sha256=" + header[len("sha256="):].strip().lower())


def _timestamp(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


#: Column widths in storage: longer ids are not Meta's, and must be a 422, never a database error.
MAX_ID_CHARS = 200
MAX_PHONE_CHARS = 64
#: Longest profile name kept (WhatsApp's own limit is far below it).
MAX_NAME_CHARS = 256


def _object(value: Any, where: str) -> dict[str, Any]:
    """``value`` as a JSON object (absent: empty); any other type is a :class:`PayloadError`."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be an object")
    return value


def _array(value: Any, where: str) -> list[Any]:
    """``value`` as a JSON array (absent: empty); any other type is a :class:`PayloadError`."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError(f"{where} must be a list")
    return value


def _scalar_text(value: Any) -> str:
    """A text field: strings and numbers as text, anything else (objects, lists) refused."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise PayloadError("a text field holds an object or a list")
    return str(value)


def _profile_names(contacts: Any) -> dict[str, str]:
    """The senders' profile names of a change (``contacts[].profile.name``), by their number
    in E.164 ("" for the one contact without a ``wa_id``). Lenient: a contact of another shape
    is skipped, never a reason to refuse the messages it came with."""
    names: dict[str, str] = {}
    for contact in contacts if isinstance(contacts, list) else []:
        profile = contact.get("profile") if isinstance(contact, dict) else None
        name = profile.get("name") if isinstance(profile, dict) else None
        if not isinstance(name, str) or not (name := _clean_name(name)):
            continue
        wa_id = contact.get("wa_id")
        names[customer_key(wa_id) if isinstance(wa_id, (str, int)) and wa_id != "" else ""] = name
    return names


def _clean_name(name: str) -> str:
    """A profile name as shown to agents: printable characters, spaces collapsed, bounded."""
    printable = "".join(c if c.isprintable() else " " for c in name)
    return " ".join(printable.split())[:MAX_NAME_CHARS]


def _message(msg: dict[str, Any], phone_number_id: str,
             names: dict[str, str] | None = None) -> IncomingMessage:
    if not isinstance(msg, dict) or not isinstance(msg.get("id"), str) or not msg.get("from"):
        raise PayloadError("message without id or from")
    if not isinstance(msg["from"], (str, int)) or len(str(msg["from"])) > MAX_PHONE_CHARS \
            or len(msg["id"]) > MAX_ID_CHARS:
        raise PayloadError("message id or from of the wrong type or too long")
    kind = str(msg.get("type") or "unsupported")
    text, button_id = "", None
    if kind == "text":
        text = _scalar_text(_object(msg.get("text"), "text").get("body"))
    elif kind == "interactive":
        interactive = _object(msg.get("interactive"), "interactive")
        reply = _object(interactive.get("button_reply") or interactive.get("list_reply"),
                        "interactive reply")
        text, button_id = _scalar_text(reply.get("title")), reply.get("id")
    elif kind == "button":
        button = _object(msg.get("button"), "button")
        text, button_id = _scalar_text(button.get("text")), button.get("payload")
    elif kind == "reaction":
        text = _scalar_text(_object(msg.get("reaction"), "reaction").get("emoji"))
    elif kind not in MEDIA_TYPES:
        kind = "unsupported"
    if button_id is not None and (isinstance(button_id, (dict, list)) or len(str(button_id)) > MAX_ID_CHARS):
        raise PayloadError("button id of the wrong type or too long")
    incoming = IncomingMessage(wamid=msg["id"], customer_id=str(msg["from"]),
                               phone_number_id=phone_number_id, type=kind[:30], text=text,
                               button_id=str(button_id) if button_id else None,
                               sent_at=_timestamp(msg.get("timestamp")), raw=msg)
    names = names or {}
    incoming.customer_name = names.get(incoming.customer_id) or (
        names.get("") if len(names) == 1 else None)
    return incoming


def _errors(value: Any) -> list[dict[str, Any]]:
    """A status's ``errors``: the objects of a list; anything else (``"errors": 5``, which once
    raised a TypeError and answered 500) is ignored."""
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


def parse_webhook(body: Any) -> tuple[list[IncomingMessage], list[StatusUpdate]]:
    """Messages and statuses of a webhook body; raises :class:`PayloadError` on a wrong shape."""
    if not isinstance(body, dict) or body.get("object") != "whatsapp_business_account":
        raise PayloadError("not a whatsapp_business_account webhook")
    entries = body.get("entry")
    if not isinstance(entries, list):
        raise PayloadError("entry must be a list")
    messages: list[IncomingMessage] = []
    statuses: list[StatusUpdate] = []
    for entry in entries:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            raise PayloadError("entry[].changes must be a list")
        for change in changes:
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                raise PayloadError("changes[].value must be an object")
            phone_number_id = _scalar_text(_object(value.get("metadata"), "metadata")
                                           .get("phone_number_id"))[:MAX_PHONE_CHARS]
            names = _profile_names(value.get("contacts"))
            for msg in _array(value.get("messages"), "messages"):
                messages.append(_message(msg, phone_number_id, names))
            for st in _array(value.get("statuses"), "statuses"):
                if not isinstance(st, dict) or not st.get("id"):
                    raise PayloadError("status without id")
                statuses.append(StatusUpdate(
                    wamid=str(st["id"]), status=str(st.get("status") or ""),
                    recipient_id=str(st.get("recipient_id") or ""),
                    phone_number_id=phone_number_id, at=_timestamp(st.get("timestamp")),
                    errors=_errors(st.get("errors")),
                    callback_data=_scalar_text(st.get("biz_opaque_callback_data")) or None))
    return messages, statuses
