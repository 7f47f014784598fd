"""The Zendesk sink over real HTTP against a fake Zendesk on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from tierline.serving.notify.sinks import SinkError, TicketExport, ZendeskSink

EMAIL = "bot@shop.example"
TOKEN = "zd-token-s3cr3t-123"
BASIC = "Basic " + base64.b64encode(f"{EMAIL}/token:{TOKEN}".encode()).decode()
KEY = "ticket:7:ticket.created:zendesk"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


Reply = tuple[int, object]  # status, then a JSON-able body or raw bytes


class FakeZendesk:
    """Records requests and answers each with the next scripted reply."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = list(replies)
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with peer._lock:
                    peer.requests.append(Recorded(self.command, self.path,
                                                  {k.lower(): v for k, v in self.headers.items()},
                                                  body))
                    status, reply = peer.replies.pop(0) if peer.replies else (500, b"unscripted")
                if not isinstance(reply, bytes):
                    reply = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = _answer  # noqa: N815 - http.server's naming

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def zendesk() -> Iterator:
    peers: list[FakeZendesk] = []

    def make(*replies: Reply) -> FakeZendesk:
        peers.append(FakeZendesk(list(replies)))
        return peers[-1]

    yield make
    for peer in peers:
        peer.close()


def export(**overrides) -> TicketExport:
    fields = dict(ticket_id=7, subject="Refund not received", team="billing", priority="high",
                  tags=["refund", "VIP customer"], requester_name="Ana",
                  requester_phone_masked="+44770090****",
                  transcript=[{"role": "customer", "text": "where is my refund", "at": "12:00"},
                              {"role": "bot", "text": "Let me check.", "at": "12:01"}])
    fields.update(overrides)
    return TicketExport(**fields)


NOT_FOUND: Reply = (200, {"tickets": [], "count": 0})


def test_create_posts_the_ticket_and_returns_its_id(zendesk):
    zd = zendesk(NOT_FOUND, (201, {"ticket": {"id": 9001, "status": "new"}}))
    assert ZendeskSink(zd.url + "/", EMAIL, TOKEN).create(export(), KEY) == "9001"

    lookup, create = zd.requests
    assert lookup.method == "GET"
    url = urlsplit(lookup.path)
    assert url.path == "/api/v2/tickets.json"
    assert parse_qs(url.query) == {"external_id": ["tierline-7"]}
    assert create.method == "POST" and create.path == "/api/v2/tickets.json"
    assert lookup.headers["authorization"] == create.headers["authorization"] == BASIC
    assert create.headers["content-type"] == "application/json"
    assert create.headers["idempotency-key"] == KEY and "idempotency-key" not in lookup.headers

    ticket = create.json()["ticket"]
    assert ticket["subject"] == "Refund not received"
    assert ticket["priority"] == "high"
    assert ticket["external_id"] == "tierline-7"
    assert ticket["tags"] == ["tierline", "team_billing", "refund", "vip_customer"]
    body = ticket["comment"]["body"]
    assert "[12:00] customer: where is my refund\n[12:01] bot: Let me check." in body
    assert "Ana +44770090****" in body


@pytest.mark.parametrize("priority", ["high", "normal", "low"])
def test_priorities_map_one_to_one(zendesk, priority):
    zd = zendesk(NOT_FOUND, (201, {"ticket": {"id": 1}}))
    ZendeskSink(zd.url, EMAIL, TOKEN).create(export(priority=priority, tags=[]), KEY)
    assert zd.requests[1].json()["ticket"]["priority"] == priority


def test_existing_external_id_is_returned_not_duplicated(zendesk):
    zd = zendesk((200, {"tickets": [{"id": 555, "external_id": "tierline-7"}], "count": 1}))
    assert ZendeskSink(zd.url, EMAIL, TOKEN).create(export(), KEY) == "555"
    assert [r.method for r in zd.requests] == ["GET"]  # no second ticket


def test_retrying_after_a_lost_response_does_not_duplicate(zendesk):
    # The first create reached Zendesk but its answer was a 502; the retry finds the ticket.
    zd = zendesk(NOT_FOUND, (502, b"bad gateway"),
                 (200, {"tickets": [{"id": 77}]}))
    sink = ZendeskSink(zd.url, EMAIL, TOKEN)
    with pytest.raises(SinkError, match="502"):
        sink.create(export(), KEY)
    assert sink.create(export(), KEY) == "77"
    assert [r.method for r in zd.requests] == ["GET", "POST", "GET"]


ERRORS = {
    "create refused, body echoes credentials": [
        NOT_FOUND, (422, {"error": "RecordInvalid", "token": TOKEN, "auth": BASIC})],
    "lookup 401 echoing the token": [(401, f"Couldn't authenticate {TOKEN}".encode())],
    "rate limited": [(429, {"error": "slow down"})],
    "create answers non-JSON": [NOT_FOUND, (201, b"<html>oops</html>")],
    "create answers without an id": [NOT_FOUND, (201, {"ticket": {}})],
    "create answers without a ticket": [NOT_FOUND, (201, {"tickets": []})],
    "lookup answers garbage": [(200, {"tickets": "nope"})],
    "lookup ticket without id": [(200, {"tickets": [{"subject": "x"}]})],
}


@pytest.mark.parametrize("replies", ERRORS.values(), ids=ERRORS.keys())
def test_errors_raise_sink_error_without_the_token(zendesk, caplog, replies):
    zd = zendesk(*replies)
    with pytest.raises(SinkError) as info:
        ZendeskSink(zd.url, EMAIL, TOKEN).create(export(), KEY)
    text = f"{info.value} {info.value!r} {caplog.text}"
    assert TOKEN not in text and BASIC.split()[1] not in text
    assert str(info.value).startswith("zendesk ")
    assert info.value.__cause__ is None
    # What the outbox stores and logs: no peer answer (it can quote a customer), no token.
    assert info.value.summary.startswith("zendesk ") and TOKEN not in info.value.summary
    assert "RecordInvalid" not in info.value.summary and "Couldn't" not in info.value.summary


def test_http_errors_carry_status_and_retry_after(zendesk):
    zd = zendesk((429, {"error": "slow down"}))
    with pytest.raises(SinkError) as info:
        ZendeskSink(zd.url, EMAIL, TOKEN).create(export(), KEY)
    assert info.value.status_code == 429 and "HTTP 429" in str(info.value)


def test_unreachable_zendesk_is_a_sink_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(SinkError, match="ConnectError") as info:
        ZendeskSink(url, EMAIL, TOKEN, timeout=2.0).create(export(), KEY)
    assert TOKEN not in str(info.value)


def test_empty_transcript_still_has_a_comment_body(zendesk):
    zd = zendesk(NOT_FOUND, (201, {"ticket": {"id": 3}}))
    ZendeskSink(zd.url, EMAIL, TOKEN).create(export(transcript=[], requester_name=None,
                                                    requester_phone_masked=None), KEY)
    assert zd.requests[1].json()["ticket"]["comment"]["body"] == "(no transcript)"
