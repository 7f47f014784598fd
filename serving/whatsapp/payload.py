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

TEXT_TYPES = ("text", "interactive", "button")
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


def _message(msg: dict[str, Any], phone_number_id: str) -> IncomingMessage:
    if not isinstance(msg, dict) or not isinstance(msg.get("id"), str) or not msg.get("from"):
        raise PayloadError("message without id or from")
    kind = str(msg.get("type") or "unsupported")
    text, button_id = "", None
    if kind == "text":
        text = str((msg.get("text") or {}).get("body") or "")
    elif kind == "interactive":
        interactive = msg.get("interactive") or {}
        reply = interactive.get("button_reply") or interactive.get("list_reply") or {}
        text, button_id = str(reply.get("title") or ""), reply.get("id")
    elif kind == "button":
        button = msg.get("button") or {}
        text, button_id = str(button.get("text") or ""), button.get("payload")
    elif kind == "reaction":
        text = str((msg.get("reaction") or {}).get("emoji") or "")
    elif kind not in MEDIA_TYPES:
        kind = "unsupported"
    return IncomingMessage(wamid=msg["id"], customer_id=str(msg["from"]),
                           phone_number_id=phone_number_id, type=kind, text=text,
                           button_id=str(button_id) if button_id else None,
                           sent_at=_timestamp(msg.get("timestamp")), raw=msg)


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
            phone_number_id = str((value.get("metadata") or {}).get("phone_number_id") or "")
            for msg in value.get("messages") or []:
                messages.append(_message(msg, phone_number_id))
            for st in value.get("statuses") or []:
                if not isinstance(st, dict) or not st.get("id"):
                    raise PayloadError("status without id")
                statuses.append(StatusUpdate(
                    wamid=str(st["id"]), status=str(st.get("status") or ""),
                    recipient_id=str(st.get("recipient_id") or ""),
                    phone_number_id=phone_number_id, at=_timestamp(st.get("timestamp")),
                    errors=list(st.get("errors") or []),
                    callback_data=st.get("biz_opaque_callback_data")))
    return messages, statuses
