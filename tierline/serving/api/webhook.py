"""``/webhooks/whatsapp``: Meta's verification handshake and signed message deliveries.

The POST path does as little as possible before answering: read of the raw body (bounded
for every route by ``serving/body_limit.py``),
signature check (before any parsing; nothing is stored for a bad signature), parse, store the
messages with their jobs (deduplicated on wamid; by the intake thread's group commit,
``serving/intake.py``), answer 200. The turn itself runs in the
worker. A database outage answers 503, so Meta delivers again later.
"""

from __future__ import annotations

import hmac
import json
import logging

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from tierline.serving.queue.intake import IntakeBusy
from tierline.serving.metrics import METRICS
from tierline.serving.channels.whatsapp.payload import PayloadError, parse_webhook, signature_is_valid

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks", tags=["whatsapp"])


def error(status: int, detail: str) -> JSONResponse:
    """A JSON error body (never echoes the request)."""
    return JSONResponse(status_code=status, content={"detail": detail})


@router.get("/whatsapp", response_class=PlainTextResponse)
def verify(request: Request, mode: str | None = Query(None, alias="hub.mode"),
           token: str | None = Query(None, alias="hub.verify_token"),
           challenge: str | None = Query(None, alias="hub.challenge")):
    """Subscription handshake: echo ``hub.challenge`` when the verify token matches."""
    settings = request.app.state.settings
    if not settings.webhook_enabled:
        return error(404, "WhatsApp webhook is not configured")
    expected = settings.whatsapp_verify_token.get_secret_value()
    if mode == "subscribe" and token is not None and challenge is not None and \
            hmac.compare_digest(token.encode(), expected.encode()):
        return PlainTextResponse(challenge)
    log.warning("webhook verification refused (mode=%s)", mode)
    return error(403, "verification failed")


@router.post("/whatsapp")
async def receive(request: Request):
    """Signed delivery from Meta: store, deduplicate, acknowledge."""
    settings = request.app.state.settings
    services = request.app.state.services
    if not settings.webhook_enabled:
        return error(404, "WhatsApp webhook is not configured")
    with METRICS.webhook_latency.time():
        # Bounded by the app's body limit (serving/body_limit.py): 413 past max_body_bytes.
        raw = await request.body()
        header = request.headers.get("x-hub-signature-256")
        if not header:
            log.warning("webhook without X-Hub-Signature-256 refused")
            return error(401, "missing X-Hub-Signature-256")
        if not signature_is_valid(raw, header, settings.whatsapp_app_secret.get_secret_value()):
            log.warning("webhook with a bad signature refused")
            return error(403, "invalid signature")
        try:
            body = json.loads(raw)
            messages, statuses = parse_webhook(body)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            log.warning("signed webhook body is not valid JSON")
            return error(400, "body is not valid JSON")
        except PayloadError as exc:
            log.warning("signed webhook body has an unexpected shape: %s", exc)
            return error(422, f"not a WhatsApp webhook payload: {exc}")
        try:
            # Stored by the intake thread (group commit, off the event loop); answered once the
            # transaction holding this delivery committed.
            result = await services.intake.store(messages, statuses)
        except IntakeBusy as exc:
            log.warning("webhook not acknowledged (503, Meta retries): %s", exc.orig)
            return error(503, "storage busy, retry later")
        except (OperationalError, SQLAlchemyError):
            log.exception("database unavailable: webhook not acknowledged (503, Meta retries)")
            return error(503, "storage unavailable, retry later")
    log.debug("webhook: %d stored, %d duplicate(s), %d status(es)", result.stored,
              result.duplicates, result.statuses)
    METRICS.messages_in.inc(result.stored)
    METRICS.duplicates.inc(result.duplicates)
    # A response object, not a dict: FastAPI's encoding of a returned dict cost more CPU than
    # the signature check.
    return JSONResponse({"stored": result.stored, "duplicates": result.duplicates,
                         "ignored": result.foreign, "statuses": result.statuses})
