"""Handoff notifications over real HTTP against a fake peer on 127.0.0.1.

The fake peer (a ``ThreadingHTTPServer``) stands in for Slack or a customer webhook; the
notifiers and the dispatcher run unmodified.
"""

from __future__ import annotations

import gc
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pydantic
import pytest

from serving.handoff.notify import (
    NotificationDispatcher,
    NotifyError,
    SignedWebhookNotifier,
    SlackNotifier,
    TicketNotice,
    sign,
    verify,
)

SECRET = "whsec-test-9f8e7d"
LOGGER = "serving.handoff.notify"


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


@pytest.fixture
def dispatchers() -> Iterator:
    made: list[NotificationDispatcher] = []

    def make(notifiers, **kwargs) -> NotificationDispatcher:
        kwargs.setdefault("base_delay", 0.01)
        kwargs.setdefault("max_delay", 0.05)
        d = NotificationDispatcher(notifiers, **kwargs)
        d.start()
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop(timeout=1.0)
        deadline = time.monotonic() + 5  # let the worker finish so it cannot log into later tests
        while d.running and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not d.running


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
    SlackNotifier(f"{peer.url}/services/T000/B000/XXXX").send(notice())
    [req] = peer.requests
    assert req.method == "POST" and req.path == "/services/T000/B000/XXXX"
    assert req.headers["content-type"] == "application/json"
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
    SlackNotifier(f"{peer.url}/hook").send(notice(url=None, priority="low"))
    payload = json.loads(peer.requests[0].body)
    assert "http" not in payload["text"]
    assert all(b["type"] != "actions" for b in payload["blocks"])


def test_slack_error_raises_without_the_secret_url(peer_factory):
    peer = peer_factory([500])
    url = f"{peer.url}/services/T000/B000/SECRETPART"
    with pytest.raises(NotifyError, match="HTTP 500") as info:
        SlackNotifier(url).send(notice())
    assert "SECRETPART" not in str(info.value)


# --- signed webhook ------------------------------------------------------------------------

def test_signed_webhook_signature_verifies(peer_factory):
    peer = peer_factory([202])
    sent = notice()
    SignedWebhookNotifier(f"{peer.url}/tierline", SECRET).send(sent)
    [req] = peer.requests
    assert req.path == "/tierline"
    assert req.headers["x-tierline-event"] == "ticket.created"
    assert uuid.UUID(req.headers["x-tierline-delivery"]).version == 4
    signature = req.headers["x-tierline-signature-256"]
    assert verify(req.body, SECRET, signature)
    assert not verify(req.body, "not-the-secret", signature)
    assert TicketNotice.model_validate_json(req.body) == sent
    assert SECRET not in json.dumps(req.headers) and SECRET.encode() not in req.body


def test_signed_webhook_raises_on_non_2xx(peer_factory):
    peer = peer_factory([403])
    with pytest.raises(NotifyError, match="HTTP 403"):
        SignedWebhookNotifier(f"{peer.url}/x", SECRET).send(notice())


# --- dispatcher ----------------------------------------------------------------------------

def test_dispatcher_retries_through_500s_then_delivers_once(peer_factory, dispatchers, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    peer = peer_factory([500, 500, 200])
    d = dispatchers([SignedWebhookNotifier(f"{peer.url}/hook", SECRET)])
    assert d.submit(notice())
    assert d.wait_idle(5)
    time.sleep(0.1)  # nothing more arrives after the success
    assert len(peer.requests) == 3
    assert all(verify(r.body, SECRET, r.headers["x-tierline-signature-256"])
               for r in peer.requests)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and not any(r.levelno >= logging.ERROR for r in caplog.records)


def test_dispatcher_gives_up_after_max_attempts(peer_factory, dispatchers, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    peer = peer_factory(default=500)
    d = dispatchers([SignedWebhookNotifier(f"{peer.url}/hook", SECRET)], max_attempts=3)
    d.submit(notice())
    assert d.wait_idle(5)
    assert len(peer.requests) == 3
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "gave up" in errors[0].getMessage()
    assert "3 attempt" in errors[0].getMessage()
    assert SECRET not in caplog.text and "+447700900" not in caplog.text.replace("****", "")


def test_submit_returns_fast_when_peer_is_slow_or_down(peer_factory, dispatchers, dead_url):
    slow = peer_factory(delay=0.3)
    d = dispatchers([SignedWebhookNotifier(f"{slow.url}/hook", SECRET, timeout=2.0),
                     SlackNotifier(dead_url)], max_attempts=2)
    notices = [notice(ticket_id=i) for i in range(50)]
    gc.disable()  # a collector pause is not submit() waiting on the network
    try:
        took = []
        for n in notices:
            started = time.perf_counter()
            assert d.submit(n) is True
            took.append(time.perf_counter() - started)
    finally:
        gc.enable()
    assert max(took) < 0.05, f"slowest submit took {max(took) * 1000:.1f} ms"


def test_one_failing_notifier_does_not_stop_another(peer_factory, dispatchers, dead_url, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)

    class Broken:
        """Not an HTTP notifier at all: raises something unexpected."""

        def send(self, notice: TicketNotice) -> None:
            raise RuntimeError("kaput")

    good = peer_factory()
    d = dispatchers([Broken(), SlackNotifier(dead_url),
                     SignedWebhookNotifier(f"{good.url}/hook", SECRET)], max_attempts=3)
    d.submit(notice(ticket_id=1))
    d.submit(notice(ticket_id=2))
    assert d.wait_idle(5)
    assert sorted(json.loads(r.body)["ticket_id"] for r in good.requests) == [1, 2]
    gave_up = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(gave_up) == 4  # Broken and Slack, for each of the two notices
    assert any("Broken" in m for m in gave_up) and any("slack" in m for m in gave_up)


def test_queue_full_drops_with_a_warning(caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    d = NotificationDispatcher([], max_queue=1)  # not started: nothing drains the queue
    assert d.submit(notice(ticket_id=1)) is True
    assert d.submit(notice(ticket_id=2)) is False
    assert "queue full" in caplog.text
    assert not d.wait_idle(0.05)


def test_stop_ends_the_thread_and_interrupts_backoff(peer_factory, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    peer = peer_factory(default=500)
    d = NotificationDispatcher([SignedWebhookNotifier(f"{peer.url}/hook", SECRET)],
                               max_attempts=5, base_delay=30.0, max_delay=60.0)
    d.start()
    assert d.running
    d.submit(notice())
    deadline = time.monotonic() + 5
    while not peer.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    d.stop(timeout=0.5)  # the worker sleeps 15-30 s in backoff; stop must not wait for it
    assert time.monotonic() - started < 2.0
    assert not d.running
    assert d.wait_idle(0.5)
    assert d.submit(notice(ticket_id=2)) is False  # stopped: dropped, not raised


def test_stop_drains_the_queue(peer_factory):
    peer = peer_factory()
    d = NotificationDispatcher([SignedWebhookNotifier(f"{peer.url}/hook", SECRET)])
    for i in range(5):
        d.submit(notice(ticket_id=i))  # queued before the worker exists
    d.start()
    d.stop(timeout=5)
    assert not d.running
    assert sorted(json.loads(r.body)["ticket_id"] for r in peer.requests) == list(range(5))
