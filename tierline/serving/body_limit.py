"""One request-body size limit for every route: a pure ASGI middleware.

Why here and not in the routes: FastAPI reads a JSON body whole before any route code runs,
so ``/v1/analyze`` and ``/v1/decide`` read a 250 MB body into memory before their validation
could refuse it; only the webhook bounded its own read. This middleware sits in front of every
route: a declared ``Content-Length`` over the limit is answered 413 before a byte of the body is
read, and a streamed (chunked) body is counted as it arrives and refused as soon as it passes
the limit, so no more than the limit (plus one chunk) is ever held.

The limit is ``max_body_bytes`` (1 MiB) for every route, except ``/v1/analyze``, whose own
content limits (``max_texts_per_request`` texts of ``max_text_chars`` characters) need more: its
limit is what those texts can take as JSON (6 bytes a character: ``\\uXXXX`` escapes).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                   Awaitable[None]]
#: JSON's worst case per character of text: ``\\uXXXX``.
JSON_BYTES_PER_CHAR = 6


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a streamed body passes its limit; an HTTPException, so the
    route's body parsing re-raises it as it is and the app answers 413 (a plain exception
    became FastAPI's 400 "error parsing the body")."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"body larger than {limit} bytes")


def limits_from(settings) -> tuple[int, dict[str, int]]:
    """(default limit, per-path limits) from the settings."""
    analyze = settings.max_texts_per_request * settings.max_text_chars * JSON_BYTES_PER_CHAR
    return settings.max_body_bytes, {"/v1/analyze": max(settings.max_body_bytes, analyze + 65_536)}


class BodySizeLimit:
    """Refuses request bodies over the limit of their path with 413."""

    def __init__(self, app: ASGIApp, default: int, per_path: dict[str, int] | None = None) -> None:
        self.app = app
        self.default = default
        self.per_path = per_path or {}

    async def __call__(self, scope: Message, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        limit = self.per_path.get(path, self.default)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            log.warning("body of %d bytes over %d bytes refused (%s %s)", declared, limit,
                        scope.get("method"), path)
            return await _refuse(send, limit)
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    log.warning("streamed body over %d bytes refused (%s %s)", limit,
                                scope.get("method"), path)
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLarge:
            # A route that read the stream outside FastAPI's body parsing let it through.
            if not started:
                await _refuse(send, limit)


def _content_length(scope: Message) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def _refuse(send, limit: int) -> None:
    body = json.dumps({"detail": f"body larger than {limit} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
