"""The Graph API client: send text, reply buttons, lists and templates.

Errors are sorted for the sender: :class:`RetryableSendError` (5xx, HTTP 429, Meta error code
130429 "rate limit hit", timeouts, connection errors) is retried with backoff;
:class:`PermanentSendError` (other 4xx: bad number, outside the 24-hour window, ...) is not.

The client is asynchronous (aiohttp): the sender runs a batch's sends concurrently on its own
event loop. Measured side by side against the same fake Graph API, a send cost 0.17 CPU-ms
with aiohttp on uvloop against 1.02 with httpx's sync client on 8 threads (0.74 on one
thread, 1.73 with its async client): the send was a quarter of the service's CPU per message.
"""

from __future__ import annotations

import asyncio
import json
import math
import logging
from typing import Any

import aiohttp

log = logging.getLogger(__name__)
RETRYABLE_META_CODES = {130429, 131048, 131056, 80007, 4, 2}  # rate limits, temporary errors


class SendError(Exception):
    """Sending failed."""


class RetryableSendError(SendError):
    """Sending failed in a way that a later retry can fix."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AmbiguousSendError(RetryableSendError):
    """The request may have reached Meta (timeout after sending): it must not be re-sent until
    a status webhook could confirm it (the sender waits one lease, then retries)."""


class PermanentSendError(SendError):
    """Sending failed for good (bad request, recipient, or policy)."""


def text_payload(to: str, body: str) -> dict[str, Any]:
    """A plain text message (4,096 characters at most)."""
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
            "type": "text", "text": {"preview_url": False, "body": body[:4096]}}


def buttons_payload(to: str, body: str, buttons: list[tuple[str, str]]) -> dict[str, Any]:
    """Interactive reply buttons (at most 3, titles of at most 20 characters)."""
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
            "type": "interactive", "interactive": {
                "type": "button", "body": {"text": body[:1024]},
                "action": {"buttons": [{"type": "reply", "reply": {"id": i[:256], "title": t[:20]}}
                                       for i, t in buttons[:3]]}}}


def list_payload(to: str, body: str, button: str, rows: list[tuple[str, str]]) -> dict[str, Any]:
    """An interactive list (one section, at most 10 rows)."""
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
            "type": "interactive", "interactive": {
                "type": "list", "body": {"text": body[:4096]},
                "action": {"button": button[:20], "sections": [{"title": button[:24], "rows": [
                    {"id": i[:200], "title": t[:24]} for i, t in rows[:10]]}]}}}


def template_payload(to: str, name: str, language: str, body_params: list[str]) -> dict[str, Any]:
    """A template message (the only kind allowed outside the 24-hour window)."""
    components = [{"type": "body", "parameters": [{"type": "text", "text": p[:1024]}
                                                  for p in body_params]}] if body_params else []
    return {"messaging_product": "whatsapp", "to": to, "type": "template",
            "template": {"name": name, "language": {"code": language}, "components": components}}


class GraphClient:
    """``POST {api_base}/{phone_number_id}/messages`` with the bearer token.

    Its HTTP session belongs to the event loop of the first :meth:`send` (the sender's), and
    keeps ``concurrency`` keep-alive connections.
    """

    def __init__(self, api_base: str, access_token: str, timeout: float = 10.0,
                 concurrency: int = 8) -> None:
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout
        self.concurrency = concurrency
        self._headers = {"Authorization": f"Bearer {access_token}",
                         "Content-Type": "application/json"}
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            # ``connect`` bounds the wait for a connection (a pool slot included): a send
            # that never left is safe to retry, unlike one that timed out after it was written.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency),
                timeout=aiohttp.ClientTimeout(total=self.timeout, connect=self.timeout))
        return self._session

    async def send(self, phone_number_id: str, payload: dict[str, Any]) -> str:
        """Send one message; return its ``wamid``."""
        url = f"{self.api_base}/{phone_number_id}/messages"
        try:
            async with self._client().post(url, data=json.dumps(payload),
                                           headers=self._headers) as response:
                status, body = response.status, await response.read()
                retry_after = response.headers.get("retry-after")
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise RetryableSendError(f"not sent: {type(exc).__name__}") from None
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            raise AmbiguousSendError(f"sent, no answer: {type(exc).__name__}") from None
        if status < 300:
            try:
                return str(json.loads(body)["messages"][0]["id"])
            except (ValueError, KeyError, IndexError, TypeError):
                raise PermanentSendError("2xx answer without messages[0].id") from None
        code, message = _meta_error(body)
        detail = f"HTTP {status}, Meta code {code}: {message}"
        if status >= 500 or status == 429 or code in RETRYABLE_META_CODES:
            raise RetryableSendError(detail, _seconds(retry_after))
        raise PermanentSendError(detail)

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _meta_error(body: bytes) -> tuple[int | None, str]:
    """Meta's error code and message from an error answer (its raw text when it is not JSON)."""
    try:
        error = json.loads(body).get("error") or {}
        return (int(error["code"]) if "code" in error else None), str(error.get("message", ""))[:300]
    except (ValueError, AttributeError, TypeError):
        return None, body[:300].decode(errors="replace")


def _seconds(value: str | None) -> float | None:
    """A ``Retry-After`` in seconds, or None when it is absent or not a finite, non-negative
    number ("inf", "nan", "-5" or an HTTP date are ignored; the sender caps large values)."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
