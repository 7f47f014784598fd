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

MEDIA_TYPES = ("image", "audio", "video", "document", "location", "sticker", "contacts")


class PayloadError(ValueError):
    """The body is JSON but not a WhatsApp webhook payload."""


@dataclass
class IncomingMessage:
    """One customer message from the webhook."""

    wamid: str
    customer_id: str  # the sender's wa_id (phone number)
    phone_number_id: str  # our business number that received it
    type: str
    text: str = ""
    button_id: str | None = None
    sent_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)


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


def _message(msg: dict[str, Any], phone_number_id: str) -> IncomingMessage:
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
    return IncomingMessage(wamid=msg["id"], customer_id=str(msg["from"]),
                           phone_number_id=phone_number_id, type=kind[:30], text=text,
                           button_id=str(button_id) if button_id else None,
                           sent_at=_timestamp(msg.get("timestamp")), raw=msg)


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
            for msg in _array(value.get("messages"), "messages"):
                messages.append(_message(msg, phone_number_id))
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
