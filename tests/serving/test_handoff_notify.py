"""Handoff notifiers over real HTTP against a fake peer on 127.0.0.1.

The fake peer (a ``ThreadingHTTPServer``) stands in for Slack or a customer webhook; the
notifiers run unmodified. Their retries and durability (the notify outbox) are tested in
``test_notify_outbox.py`` and ``test_ticket_notifications.py``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pydantic
import pytest

from tierline.serving.notify.notify import (
    NotifyError,
    SignedWebhookNotifier,
    SlackNotifier,
    TicketNotice,
    sign,
    verify,
)

SECRET = "whsec-test-9f8e7d"
KEY = "ticket:42:ticket.created:webhook"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class FakePeer:
    """An HTTP peer that records requests and answers with a scripted list of statuses."""

    def __init__(self, statuses: list[int] | None = None, default: int = 200,
                 delay: float = 0.0) -> None:
        self.statuses = list(statuses or [])
        self.default = default
        self.delay = delay
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with peer._lock:
                    peer.requests.append(Recorded(self.command, self.path,
                                                  {k.lower(): v for k, v in self.headers.items()},
                                                  body))
                    status = peer.statuses.pop(0) if peer.statuses else peer.default
                if peer.delay:
                    time.sleep(peer.delay)
                payload = b"ok" if status < 400 else b"boom"
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)

    def __enter__(self) -> FakePeer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def peer_factory() -> Iterator:
    peers: list[FakePeer] = []

    def make(*args, **kwargs) -> FakePeer:
        peer = FakePeer(*args, **kwargs).__enter__()
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.__exit__()


@pytest.fixture
def dead_url() -> str:
    """A loopback URL nobody listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/hook"


def notice(**overrides) -> TicketNotice:
    fields = dict(ticket_id=42, conversation_id="conv-abc", team="billing", priority="high",
                  reasons=["asked for a human", "refund > 100"], customer="+44770090****",
                  p_escalate=0.91, intent="refund", off_hours=False,
                  created_at=datetime(2025, 3, 1, 12, 30, tzinfo=UTC),
                  url="https://tierline.example/tickets/42")
    fields.update(overrides)
    return TicketNotice(**fields)


# --- notices and signatures ---------------------------------------------------------------

def test_notice_refuses_an_unmasked_phone_number():
    with pytest.raises(pydantic.ValidationError, match="unmasked"):
        notice(customer="+44 7700 900123")
    assert notice(customer="Ana").customer == "Ana"


def test_sign_and_verify_round_trip():
    body = b'{"ticket_id": 1}'
    header = sign(body, SECRET)
    assert header.startswith("sha256=") and len(header) == len("sha256=") + 64
    assert verify(body, SECRET, header)
    assert not verify(body, "wrong-secret", header)
    assert not verify(body + b" ", SECRET, header)
    assert not verify(body, SECRET, "")
    assert not verify(body, SECRET, "sha256=ü")


# --- Slack ---------------------------------------------------------------------------------

def test_slack_payload_shape(peer_factory):
    peer = peer_factory()
    SlackNotifier(f"{peer.url}/services/T000/B000/XXXX").send(notice(), KEY)
    [req] = peer.requests
    assert req.method == "POST" and req.path == "/services/T000/B000/XXXX"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["idempotency-key"] == KEY
    payload = json.loads(req.body)
    assert set(payload) == {"text", "blocks"}
    for needle in ("billing", "high", "asked for a human", "+44770090****", "#42",
                   "https://tierline.example/tickets/42"):
        assert needle in payload["text"]
    assert "refund &gt; 100" in payload["text"]  # mrkdwn is escaped
    types = [b["type"] for b in payload["blocks"]]
    assert types[0] == "header" and "section" in types and types[-1] == "actions"
    fields = " ".join(f["text"] for b in payload["blocks"] for f in b.get("fields", []))
    assert "*Team*\nbilling" in fields and "*Customer*\n+44770090****" in fields
    assert payload["blocks"][-1]["elements"][0]["url"] == "https://tierline.example/tickets/42"
    assert "conv-abc" not in req.body.decode()  # conversation ids embed the WhatsApp number


def test_slack_payload_without_url_has_no_link(peer_factory):
    peer = peer_factory()
    SlackNotifier(f"{peer.url}/hook").send(notice(url=None, priority="low"), KEY)
    payload = json.loads(peer.requests[0].body)
    assert "http" not in payload["text"]
    assert all(b["type"] != "actions" for b in payload["blocks"])


def test_slack_error_raises_without_the_secret_url(peer_factory):
    peer = peer_factory([500])
    url = f"{peer.url}/services/T000/B000/SECRETPART"
    with pytest.raises(NotifyError, match="HTTP 500") as info:
        SlackNotifier(url).send(notice(), KEY)
    assert "SECRETPART" not in str(info.value)
    assert info.value.status_code == 500
    assert info.value.summary == "slack webhook answered HTTP 500"  # the peer's answer stays out


def test_unreachable_peer_raises_without_the_secret_url(dead_url):
    with pytest.raises(NotifyError, match="ConnectError") as info:
        SlackNotifier(dead_url, timeout=2.0).send(notice(), KEY)
    assert dead_url not in str(info.value) and info.value.status_code is None


# --- signed webhook ------------------------------------------------------------------------

def test_signed_webhook_signature_verifies(peer_factory):
    peer = peer_factory([202])
    sent = notice()
    SignedWebhookNotifier(f"{peer.url}/tierline", SECRET).send(sent, KEY)
    [req] = peer.requests
    assert req.path == "/tierline"
    assert req.headers["x-tierline-event"] == "ticket.created"
    # The same on every retry of this delivery: the receiver de-duplicates on it.
    assert req.headers["x-tierline-delivery"] == req.headers["idempotency-key"] == KEY
    signature = req.headers["x-tierline-signature-256"]
    assert verify(req.body, SECRET, signature)
    assert not verify(req.body, "not-the-secret", signature)
    assert TicketNotice.model_validate_json(req.body) == sent
    assert SECRET not in json.dumps(req.headers) and SECRET.encode() not in req.body


def test_signed_webhook_raises_on_non_2xx(peer_factory):
    peer = peer_factory([403])
    with pytest.raises(NotifyError, match="HTTP 403"):
        SignedWebhookNotifier(f"{peer.url}/x", SECRET).send(notice(), KEY)
