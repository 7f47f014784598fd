"""The ticket page's tools: internal notes (a form) and customers' media (files served to the
agents of the ticket's team only), and the static files of the console's tools.

Both go through the console session and the ticket's visibility: another team's agent gets
the console's 404 for the ticket, its notes and its media alike, a signed-out browser the
sign-in page.
"""

from __future__ import annotations

import logging
import re

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from tierline.serving.api.agents import TicketId, get_db
from tierline.serving.channels.whatsapp.media import MediaError, MediaTooLarge, served_type
from tierline.serving.console.panel import find_media, media_store
from tierline.serving.console.views import STATIC_FILES, _act, _page, _signed_in, templates
from tierline.serving.storage.models import Ticket
from tierline.serving.tickets import TicketNotFound
from tierline.serving.tickets.notes import add_note
from tierline.serving.tickets.queue import visible

log = logging.getLogger(__name__)
router = APIRouter()
STATIC_FILES.update({"tools.css": "text/css", "tools.js": "text/javascript"})
#: Media are customers' files: never run as a page of ours, never cached by the browser.
MEDIA_HEADERS = {"x-content-type-options": "nosniff", "cache-control": "private, no-store",
                 "content-security-policy": "default-src 'none'; sandbox",
                 "referrer-policy": "same-origin"}


def filesize(size: int | None) -> str:
    """'820 B', '34 KB', '16.0 MB' (binary units, as the size limit is set): at a glance."""
    if size is None:
        return "?"
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


templates.env.filters["filesize"] = filesize


@router.post("/tickets/{ticket_id}/notes")
def note(ticket_id: TicketId, request: Request, csrf: str = Form(""), text: str = Form("")):
    """Add an internal note: stored on the ticket, shown to its team, sent to nobody (an
    empty one is refused: ``err_input``)."""
    return _act(request, ticket_id, csrf,
                lambda agent: add_note(get_db(request), agent, ticket_id, text), "note_saved")


@router.get("/tickets/{ticket_id}/media/{inbound_id}")
def media(ticket_id: TicketId, inbound_id: TicketId, request: Request) -> Response:
    """A customer's file of the ticket's conversation, fetched through the Graph API once and
    kept on disk; images, audio and video inline, anything else as a download."""
    session, agent = _signed_in(request)
    db = get_db(request)
    with db.session() as s:
        ticket = s.get(Ticket, ticket_id)
        try:
            conversation_id = visible(agent, ticket).conversation_id
        except TicketNotFound:
            conversation_id = None
    ref = conversation_id and find_media(db, conversation_id, inbound_id)
    if not ref:
        return _page(request, "error.html", session, agent, status_code=404, message="not_found")
    store = media_store(request)
    if store is None:
        return _media_notice(request, session, agent, 503, "media_disabled")
    try:
        path, info = store.file(ref.media_id)
    except MediaTooLarge:
        return _media_notice(request, session, agent, 413, "media_too_large")
    except MediaError as exc:
        log.warning("media of message %s not fetched: %s", inbound_id, exc)
        return _media_notice(request, session, agent, 502, "media_unavailable")
    inline = served_type(info.mime_type or ref.mime_type)
    if ref.kind == "document" or inline is None:
        name = _safe_filename(ref.filename) or f"{ref.kind}-{inbound_id}"
        return FileResponse(path, media_type="application/octet-stream", headers={
            **MEDIA_HEADERS, "content-disposition": f'attachment; filename="{name}"'})
    return FileResponse(path, media_type=inline, headers=MEDIA_HEADERS)


def _media_notice(request: Request, session, agent, status: int, message: str) -> HTMLResponse:
    return _page(request, "error.html", session, agent, status_code=status, message=message)


def _safe_filename(name: str) -> str:
    """A file name fit for a header: letters, digits, dots, dashes, underscores and spaces."""
    return re.sub(r"[^\w. -]", "_", name, flags=re.ASCII).strip(" .")[:120]
