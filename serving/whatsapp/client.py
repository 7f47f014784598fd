"""The Graph API client: send text, reply buttons, lists and templates.

Errors are sorted for the sender: :class:`RetryableSendError` (5xx, HTTP 429, Meta error code
130429 "rate limit hit", timeouts, connection errors) is retried with backoff;
:class:`PermanentSendError` (other 4xx: bad number, outside the 24-hour window, ...) is not.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

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
    """``POST {api_base}/{phone_number_id}/messages`` with the bearer token."""

    def __init__(self, api_base: str, access_token: str, timeout: float = 10.0,
                 client: httpx.Client | None = None) -> None:
        self.api_base = api_base.rstrip("/")
        self._client = client or httpx.Client(timeout=timeout)
        self._headers = {"Authorization": f"Bearer {access_token}"}

    def send(self, phone_number_id: str, payload: dict[str, Any]) -> str:
        """Send one message; return its ``wamid``."""
        url = f"{self.api_base}/{phone_number_id}/messages"
        try:
            response = self._client.post(url, json=payload, headers=self._headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise RetryableSendError(f"not sent: {type(exc).__name__}") from None
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise AmbiguousSendError(f"sent, no answer: {type(exc).__name__}") from None
        if response.status_code < 300:
            try:
                return str(response.json()["messages"][0]["id"])
            except (ValueError, KeyError, IndexError, TypeError):
                raise PermanentSendError("2xx answer without messages[0].id") from None
        code, message = _meta_error(response)
        detail = f"HTTP {response.status_code}, Meta code {code}: {message}"
        if response.status_code >= 500 or response.status_code == 429 or code in RETRYABLE_META_CODES:
            retry_after = response.headers.get("retry-after")
            raise RetryableSendError(detail, float(retry_after) if _is_number(retry_after) else None)
        raise PermanentSendError(detail)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()


def _meta_error(response: httpx.Response) -> tuple[int | None, str]:
    try:
        error = response.json().get("error") or {}
        return (int(error["code"]) if "code" in error else None), str(error.get("message", ""))[:300]
    except (ValueError, AttributeError, TypeError):
        return None, response.text[:300]


def _is_number(value: str | None) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
        return True
    except (TypeError, ValueError):
        return False
