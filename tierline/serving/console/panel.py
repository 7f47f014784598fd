"""What the ticket page shows beside the ticket itself: the customer panel, the timeline with
internal notes and customers' media, and the canned replies of the ticket's team.

:func:`ticket_panel` is called by the ticket page for an agent who may see the ticket (the
page found it with :func:`~tierline.serving.tickets.ticket_detail`), so every part of it is
the ticket's team's (or an admin's) to see.

The timeline is the transcript with the ticket's internal notes placed by time. A customer's
media message is a transcript line ``[image received]`` (the worker's ``MEDIA_LABEL``); the
stored webhook message that made it names the file, and they are paired in order, one media
type at a time (the worker writes a conversation's lines in the order of its messages).
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any

from fastapi import Request
from sqlalchemy import select

from tierline.serving.channels.whatsapp.media import (
    MEDIA_KINDS,
    MediaError,
    MediaRef,
    MediaStore,
    MediaTooLarge,
    media_of,
    served_type,
)
from tierline.serving.queue.worker import MEDIA_LABEL
from tierline.serving.storage.db import Database
from tierline.serving.storage.models import Agent, InboundMessage, Job, Ticket
from tierline.serving.tickets.canned import fill
from tierline.serving.tickets.history import customer_history
from tierline.serving.tickets.notes import notes_of

#: The transcript line of each media type, and back.
MEDIA_LINES = {MEDIA_LABEL.format(type=kind): kind for kind in MEDIA_KINDS}


def media_store(request: Request) -> MediaStore | None:
    """The app's media store (None without a WhatsApp access token: nothing can be fetched)."""
    app = request.app
    store = getattr(app.state, "media_store", None)
    settings = app.state.settings
    if store is None and settings.whatsapp_access_token is not None:
        store = MediaStore(settings.whatsapp_api_base,
                           settings.whatsapp_access_token.get_secret_value(),
                           settings.media_cache_dir, settings.media_max_bytes,
                           timeout=settings.whatsapp_send_timeout)
        app.state.media_store = store
    return store


def media_refs(db: Database, conversation_id: str) -> list[MediaRef]:
    """The files of a conversation's media messages that were turned (their transcript line
    written), in the order they came."""
    with db.session() as s:
        rows = s.execute(select(InboundMessage.id, InboundMessage.type, InboundMessage.payload)
                         .join(Job, Job.inbound_id == InboundMessage.id)
                         .where(InboundMessage.conversation_id == conversation_id,
                                InboundMessage.type.in_(MEDIA_KINDS), Job.status == "done")
                         .order_by(InboundMessage.id)).all()
    return [ref for row in rows if (ref := media_of(row.id, row.type, row.payload)) is not None]


def find_media(db: Database, conversation_id: str, inbound_id: int) -> MediaRef | None:
    """The file of one stored message of the conversation (None: not one of its media)."""
    with db.session() as s:
        row = s.get(InboundMessage, inbound_id)
        if row is None or row.conversation_id != conversation_id:
            return None
        return media_of(row.id, row.type, row.payload)


def describe_media(ref: MediaRef, ticket_id: int, store: MediaStore | None) -> dict[str, Any]:
    """How the page shows a file: ``state`` ``ok`` (inline, or a download link), ``too_large``
    (a notice with its size), ``unavailable`` (the Graph API could not say) or ``disabled``
    (no access token configured)."""
    shown: dict[str, Any] = {"kind": ref.kind, "caption": ref.caption, "filename": ref.filename,
                             "url": f"/console/tickets/{ticket_id}/media/{ref.inbound_id}",
                             "inline": None, "size": None, "limit": None}
    if store is None:
        return {**shown, "state": "disabled"}
    shown["limit"] = store.max_bytes
    try:
        info = store.info(ref.media_id)
    except MediaError:
        return {**shown, "state": "unavailable"}
    shown["size"] = info.size
    if info.size is not None and info.size > store.max_bytes:
        return {**shown, "state": "too_large"}
    inline = served_type(info.mime_type or ref.mime_type)
    # Documents are always downloads; stickers are images.
    shown["inline"] = None if ref.kind == "document" else inline
    return {**shown, "state": "ok"}


def timeline(transcript: list[dict], notes: list[dict], media: list[dict],
             refs: list[MediaRef]) -> list[dict]:
    """The transcript's lines (customers' media lines with their file) and the notes, by
    time; a note written at the same moment as a line comes after it."""
    files: dict[str, deque] = defaultdict(deque)
    for ref, shown in zip(refs, media):
        files[ref.kind].append(shown)
    items = []
    for n, line in enumerate(transcript):
        item = {**line, "kind": "line", "media": None}
        kind = MEDIA_LINES.get(line["text"]) if line["role"] == "customer" else None
        if kind and files[kind]:
            item["media"] = files[kind].popleft()
        items.append(((line["at"], 0, n), item))
    for n, note in enumerate(notes):
        items.append(((note["at"], 1, n), {**note, "kind": "note", "role": "note"}))
    return [item for _, item in sorted(items, key=lambda pair: pair[0])]


def canned_for(request: Request, agent: Agent, ticket: dict, language: str | None) -> list[dict]:
    """The canned replies of the ticket's team in the conversation's language, filled in."""
    services = request.app.state.services
    language = language or services.engine.flow.default_language
    ctx = ticket["context"]
    values = {"customer_name": ticket.get("customer_name"), "agent_name": agent.name,
              "order_number": ctx.get("order_number") or (ctx.get("order_numbers") or [None])[-1]}
    offered = []
    for reply in services.canned.current().offered(ticket["team"], language):
        text, missing = fill(reply.text, values)
        offered.append({"title": reply.title, "text": text, "missing": missing})
    return offered


def ticket_panel(request: Request, agent: Agent, ticket: dict) -> dict[str, Any]:
    """The ticket page's customer panel, timeline and canned replies (``ticket``: what
    :func:`~tierline.serving.tickets.ticket_detail` gave this agent)."""
    db: Database = request.app.state.services.db
    customer = customer_history(db, agent, ticket["id"])
    with db.session() as s:
        conversation_id = s.get(Ticket, ticket["id"]).conversation_id
        notes = notes_of(s, ticket["id"])
    refs = media_refs(db, conversation_id)
    store = media_store(request)
    media = [describe_media(ref, ticket["id"], store) for ref in refs]
    return {"customer": customer, "notes": notes,
            "timeline": timeline(ticket["transcript"], notes, media, refs),
            "canned": canned_for(request, agent, ticket, customer["language"])}
