"""Peers for the serving tests: a fake WhatsApp Graph API and Meta-shaped webhook payloads.

The fake is the *peer* (Meta's servers), never the code under test: it runs a real HTTP server
on 127.0.0.1 and records what tierline sends it.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PHONE_NUMBER_ID = "109876543210"
CUSTOMER = "447700900123"
APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
ACCESS_TOKEN = "test-access-token"
_ids = itertools.count(1)


class GraphServer(ThreadingHTTPServer):
    """The fake Graph API's listener, with a listen backlog a real API server would have.

    ``socketserver``'s default backlog is 5: with more sends opening connections at once
    (the sender keeps up to ``sender_concurrency`` in flight), the kernel held the surplus
    handshakes back for seconds of SYN retries, so a request written by a process killed
    meanwhile reached the fake seconds later and was accepted after its resend: a duplicate
    that Meta's servers would not have produced.
    """

    request_queue_size = 1024


class FakeGraphAPI:
    """Answers ``POST /{phone_number_id}/messages`` (and ``GET /{phone_number_id}``);
    ``script`` lists failures to play first (to the POSTs). Customers' media, once added with
    :meth:`add_media`, are served like Meta serves them: ``GET /{media-id}`` (with the access
    token) answers the file's details and a download URL, ``GET`` of that URL (with the token)
    the bytes; ``media_requests`` records the paths of both (and of any other ``GET``).

    A script entry is an HTTP status (500, 429...), ``("meta", status, code)`` for a Meta error
    body, ``{"status", "code"?, "message"?, "headers"?}`` for an error answer with its message
    and headers (``Retry-After``...), or ``("sleep", seconds)`` to answer late (a timeout for
    the client).

    ``outage`` plays an outage on every request while set: ``"503"`` (answered 503), ``"reset"``
    (the connection is closed without an answer) or ``("hang", seconds)`` (answered 504 after
    ``seconds``, never accepted); :meth:`refuse` closes the listening socket (connections are
    refused) until :meth:`listen_again`. ``slow_to`` maps a recipient to seconds its first
    request waits before a 504 (never accepted). ``slow_share`` of all requests (drawn from a
    seeded generator) wait ``slow_seconds`` before a 504, never accepted. Accepted messages
    carry ``_at`` (monotonic time); ``peak_in_flight`` is the most requests it held at once.
    """

    def __init__(self) -> None:
        self.received: list[dict] = []  # successfully accepted payloads
        self.attempts = 0
        self.script: list = []
        #: (webhook URL, app secret): like Meta, post a signed "sent" status for every accepted
        #: message, retrying until the service answers 200.
        self.status_target: tuple[str, str] | None = None
        self.lock = threading.Lock()
        self.outage: str | tuple | None = None
        self.slow_to: dict[str, float] = {}
        self.slow_share = 0.0
        self.slow_seconds = 0.0
        self._slow_draws = random.Random(16)
        self.in_flight = self.peak_in_flight = 0
        self._client = None
        #: media id -> (bytes, mime type, the size the details declare)
        self.media: dict[str, tuple[bytes, str, int]] = {}
        self.media_requests: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                """``GET /{phone_number_id}``: the number's details, like Meta (what
                ``tierline doctor`` asks to try the access token)."""
                if self.headers.get("authorization") != f"Bearer {ACCESS_TOKEN}":
                    return answer_json(self, 401, {"error": {
                        "message": "Invalid OAuth access token - Cannot parse access token",
                        "type": "OAuthException", "code": 190}})
                path = self.path.split("?")[0].strip("/")
                if path != PHONE_NUMBER_ID:
                    with fake.lock:
                        fake.media_requests.append(path)
                if path in fake.media or path.startswith("_media/"):
                    return fake._serve_media(self, path)
                if path != PHONE_NUMBER_ID:
                    return answer_json(self, 400, {"error": {
                        "message": "Unsupported get request.", "type": "GraphMethodException",
                        "code": 100}})
                answer_json(self, 200, {"display_phone_number": "+1 555-0100",
                                        "verified_name": "Test Shop", "id": PHONE_NUMBER_ID})

            def do_POST(self) -> None:
                with fake.lock:
                    fake.in_flight += 1
                    fake.peak_in_flight = max(fake.peak_in_flight, fake.in_flight)
                try:
                    self._post()
                finally:
                    with fake.lock:
                        fake.in_flight -= 1

            def _post(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with fake.lock:
                    fake.attempts += 1
                    outage = fake.outage
                    step = fake.script.pop(0) if fake.script and outage is None else None
                    to = _recipient(body)
                    slow = fake.slow_to.pop(to, None) if outage is None else None
                    drawn_slow = fake._slow_draws.random() < fake.slow_share
                    if slow is None and outage is None and drawn_slow:
                        slow = fake.slow_seconds
                if outage == "reset":
                    self.close_connection = True
                    return self.connection.shutdown(socket.SHUT_RDWR)
                if outage is not None:
                    step = ("hang", outage[1]) if isinstance(outage, tuple) else int(outage)
                if slow is not None:
                    step = ("hang", slow)
                if isinstance(step, tuple) and step[0] == "sleep":  # slow, then accepted
                    time.sleep(step[1])
                    step = None
                if isinstance(step, tuple) and step[0] == "hang":  # times out, never accepted
                    time.sleep(step[1])
                    return self._answer(504, {"error": {"message": "gateway timeout", "code": 2}})
                if isinstance(step, dict):
                    payload = {"error": {"message": step.get("message", "scripted failure"),
                                         "code": step.get("code", step["status"])}}
                    return self._answer(step["status"], payload, step.get("headers", {}))
                if step is not None:
                    status, code = (step[1], step[2]) if isinstance(step, tuple) else (step, None)
                    payload = {"error": {"message": "scripted failure", "code": code or status}}
                    return self._answer(status, payload)
                if self.headers.get("authorization") != f"Bearer {ACCESS_TOKEN}":
                    return self._answer(401, {"error": {"message": "bad token", "code": 190}})
                message = json.loads(body)
                message["_path"] = self.path
                message["_at"] = time.monotonic()
                wamid = f"wamid.out.{next(_ids)}"
                with fake.lock:
                    fake.received.append(message)
                if fake.status_target is not None:
                    fake.report_status(wamid, message.get("biz_opaque_callback_data"))
                self._answer(200, {"messaging_product": "whatsapp",
                                   "contacts": [{"input": message.get("to"), "wa_id": message.get("to")}],
                                   "messages": [{"id": wamid}]})

            def _answer(self, status: int, payload: dict, headers: dict | None = None) -> None:
                answer_json(self, status, payload, headers)

        self._handler = Handler
        self.server = GraphServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add_media(self, media_id: str, data: bytes, mime_type: str,
                  declared_size: int | None = None) -> None:
        """Serve a customer's file under ``media_id`` (its details may declare another size)."""
        with self.lock:
            self.media[media_id] = (data, mime_type,
                                    len(data) if declared_size is None else declared_size)

    def _serve_media(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        """``GET /{media-id}`` (details) or ``GET /_media/{media-id}`` (bytes), like Meta."""
        with self.lock:
            found = self.media.get(path.removeprefix("_media/"))
        if found is None:
            return answer_json(handler, 404, {"error": {"message": "no such media", "code": 100}})
        data, mime_type, size = found
        if path.startswith("_media/"):
            handler.send_response(200)
            handler.send_header("content-type", mime_type)
            handler.send_header("content-length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return
        answer_json(handler, 200, {"messaging_product": "whatsapp", "id": path,
                                   "url": f"{self.url}/_media/{path}", "mime_type": mime_type,
                                   "sha256": hashlib.sha256(data).hexdigest(),
                                   "file_size": size})

    def refuse(self) -> None:
        """Stop listening: connections to the API are refused (the port stays reserved)."""
        self.server.shutdown()
        self.server.server_close()

    def listen_again(self) -> None:
        """Listen on the same port again after :meth:`refuse`."""
        self.server = GraphServer(self.server.server_address, self._handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _status_client(self):
        """One keep-alive client for all status webhooks: a client per request (``httpx.post``)
        costs milliseconds of CPU to set up, which made the fake, not the service, the
        bottleneck of loads of thousands of messages."""
        import httpx

        with self.lock:
            if self._client is None:
                self._client = httpx.Client(timeout=5, limits=httpx.Limits(max_connections=32))
            return self._client

    def report_status(self, wamid: str, callback: str | None) -> None:
        """Deliver a 'sent' status webhook in the background, retried like Meta does."""
        url, secret = self.status_target
        body = json.dumps(envelope(statuses=[status(wamid, "sent", callback)])).encode()

        def deliver() -> None:
            import httpx

            for _ in range(600):
                try:
                    r = self._status_client().post(url, content=body, headers={
                        "x-hub-signature-256": sign(body, secret), "content-type": "application/json"})
                    if r.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)

        threading.Thread(target=deliver, daemon=True).start()

    def wait_for(self, n: int, timeout: float = 20.0) -> list[dict]:
        """Wait until ``n`` messages were accepted; return them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= n:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"expected {n} messages at the Graph API, got {len(self.received)}")

    def wait_to(self, customer: str, n: int, timeout: float = 20.0) -> list[dict]:
        """Wait until ``n`` messages to ``customer`` were accepted; return those (in order).

        Tests filter by recipient: replies to earlier tests' customers may still be in flight.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                mine = [m for m in self.received if m.get("to") == customer]
            if len(mine) >= n:
                return mine
            time.sleep(0.02)
        raise AssertionError(f"expected {n} messages to {customer}, got {len(mine)}")

    def texts(self) -> list[str]:
        """The visible text of every accepted message."""
        out = []
        for m in self.received:
            if m["type"] == "text":
                out.append(m["text"]["body"])
            elif m["type"] == "interactive":
                out.append(m["interactive"]["body"]["text"])
            else:
                out.append(f"[template {m['template']['name']}]")
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._client is not None:
            self._client.close()


def answer_json(handler: BaseHTTPRequestHandler, status: int, payload: dict,
                headers: dict | None = None) -> None:
    """Answer a fake peer's request with ``payload`` as JSON (the client may have gone)."""
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("content-type", "application/json")
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("content-length", str(len(data)))
    handler.end_headers()
    try:
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client timed out and went away first (a "hang")


def _recipient(body: bytes) -> str | None:
    """The ``to`` of a send's JSON body (None when it is not one)."""
    try:
        return json.loads(body).get("to")
    except (ValueError, AttributeError):
        return None


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    """Meta's ``X-Hub-Signature-256`` header value."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def envelope(messages: list[dict] | None = None, statuses: list[dict] | None = None,
             phone_number_id: str = PHONE_NUMBER_ID, customer: str = CUSTOMER) -> dict:
    """A webhook body in Meta's shape."""
    value: dict = {"messaging_product": "whatsapp",
                   "metadata": {"display_phone_number": "15550001111",
                                "phone_number_id": phone_number_id}}
    if messages is not None:
        value["contacts"] = [{"profile": {"name": "Test Customer"}, "wa_id": customer}]
        value["messages"] = messages
    if statuses is not None:
        value["statuses"] = statuses
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "WABA_ID", "changes": [{"field": "messages", "value": value}]}]}


def message(kind: str = "text", text: str = "hi", wamid: str | None = None,
            customer: str = CUSTOMER, **extra) -> dict:
    """One inbound message of the given type."""
    base = {"from": customer, "id": wamid or f"wamid.in.{next(_ids)}",
            "timestamp": str(int(time.time())), "type": kind}
    if kind == "text":
        base["text"] = {"body": text}
    elif kind == "button_reply":
        base["type"] = "interactive"
        base["interactive"] = {"type": "button_reply",
                               "button_reply": {"id": extra["button_id"], "title": text}}
    elif kind == "list_reply":
        base["type"] = "interactive"
        base["interactive"] = {"type": "list_reply",
                               "list_reply": {"id": extra["button_id"], "title": text}}
    elif kind == "button":
        base["button"] = {"payload": extra.get("payload", "menu_agent"), "text": text}
    elif kind == "reaction":
        base["reaction"] = {"message_id": "wamid.out.1", "emoji": "👍"}
    elif kind == "location":
        base["location"] = {"latitude": 45.46, "longitude": 9.19}
    elif kind in ("image", "audio", "video", "document", "sticker"):
        base[kind] = {"id": extra.get("media_id", "MEDIA_ID"),
                      "mime_type": extra.get("mime_type", "application/octet-stream")}
        base[kind].update({k: extra[k] for k in ("caption", "filename") if k in extra})
    elif kind == "unsupported":
        base["errors"] = [{"code": 131051, "title": "Message type unknown"}]
    return base


def status(wamid: str, state: str, callback: str | None = None) -> dict:
    """A delivery status for one of our outbound messages."""
    st = {"id": wamid, "status": state, "timestamp": str(int(time.time())),
          "recipient_id": CUSTOMER}
    if callback:
        st["biz_opaque_callback_data"] = callback
    return st


class RecordingPeer:
    """A generic HTTP peer (Slack, a signed-webhook receiver, Zendesk): records every request
    and answers with ``answer(method, path) -> (status, json)``."""

    def __init__(self, answer=None) -> None:
        self.requests: list[dict] = []
        self.answer = answer or (lambda method, path: (200, {"ok": True}))
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                peer.requests.append({"method": self.command, "path": self.path,
                                      "headers": {k.lower(): v for k, v in self.headers.items()},
                                      "body": body})
                answer_json(self, *peer.answer(self.command, self.path))

            do_GET = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, n: int, timeout: float = 15.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.requests) < n:
            time.sleep(0.02)
        assert len(self.requests) >= n, f"expected {n} requests, got {len(self.requests)}"
        return self.requests

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class IdempotentPeer:
    """Slack, a signed-webhook receiver or Zendesk, honouring ``Idempotency-Key`` the way Zendesk
    does: the first POST with a key is accepted and its answer kept; a later POST with that key
    and the same body gets the same answer and changes nothing (a raw duplicate); one with
    another body gets 400. A POST without a key is refused (400).

    With ``zendesk=True`` it is Zendesk's ticket API: ``POST /api/v2/tickets.json`` creates a
    ticket (ids from 1000) and ``GET /api/v2/tickets.json?external_id=...`` finds it; otherwise
    any POST path is accepted with ``{"ok": true}``.

    ``outage``: while set, every request is answered with that HTTP status (nothing accepted);
    ``fail_next``: so many next requests are answered 500; :meth:`refuse` closes the listening socket until :meth:`listen_again`. ``lose_answers``: the
    next N accepted POSTs are answered only after ``slow_seconds`` (the client gives up first:
    an answer lost after the peer acted).
    """

    def __init__(self, zendesk: bool = False) -> None:
        self.zendesk = zendesk
        self.requests: list[dict] = []  # every request, raw duplicates included
        self.accepted: dict[str, dict] = {}  # idempotency key -> the request that acted
        #: POSTs with a key already accepted, answered without acting (Zendesk's
        #: ``x-idempotency-lookup: hit``).
        self.duplicates = 0
        self.outage: int | None = None
        self.fail_next = 0
        self.lose_answers = 0
        self.slow_seconds = 0.0
        self.lock = threading.Lock()
        self._answers: dict[str, tuple[bytes, tuple[int, dict]]] = {}
        self._tickets: dict[str, int] = {}  # Zendesk external_id -> ticket id
        self._ids = itertools.count(1000)
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                from urllib.parse import parse_qs, urlsplit

                peer._record(self, b"")
                if (failure := peer._failure()) is not None:
                    return self._answer(failure, {"error": "outage"})
                external = parse_qs(urlsplit(self.path).query).get("external_id", [""])[0]
                with peer.lock:
                    found = peer._tickets.get(external)
                tickets = [] if found is None else [{"id": found, "external_id": external}]
                self._answer(200, {"tickets": tickets, "count": len(tickets)})

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                request = peer._record(self, body)
                if (failure := peer._failure()) is not None:
                    return self._answer(failure, {"error": "outage"})
                key = request["headers"].get("idempotency-key")
                if not key:
                    return self._answer(400, {"error": "Idempotency-Key missing"})
                slow = 0.0
                with peer.lock:
                    if key in peer._answers:
                        peer.duplicates += 1
                        first_body, answer = peer._answers[key]
                        if first_body != body:
                            answer = (400, {"error": "IdempotentRequestError",
                                            "description": "key reused with another body"})
                    else:
                        answer = peer._act(body)
                        peer._answers[key] = (body, answer)
                        peer.accepted[key] = request
                        if peer.lose_answers > 0:
                            peer.lose_answers -= 1
                            slow = peer.slow_seconds
                if slow:
                    time.sleep(slow)
                self._answer(*answer)

            def _answer(self, status_code: int, payload: dict) -> None:
                answer_json(self, status_code, payload)

        self._handler = Handler
        self.server = GraphServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def _record(self, handler: BaseHTTPRequestHandler, body: bytes) -> dict:
        request = {"method": handler.command, "path": handler.path, "body": body,
                   "headers": {k.lower(): v for k, v in handler.headers.items()}}
        with self.lock:
            self.requests.append(request)
        return request

    def _failure(self) -> int | None:
        """The status of a played failure for this request, or None."""
        with self.lock:
            if self.outage is not None:
                return self.outage
            if self.fail_next > 0:
                self.fail_next -= 1
                return 500
        return None

    def _act(self, body: bytes) -> tuple[int, dict]:
        """What the first POST with a key does (under the lock)."""
        if not self.zendesk:
            return 200, {"ok": True}
        ticket = json.loads(body)["ticket"]
        ticket_id = self._tickets.setdefault(ticket["external_id"], next(self._ids))
        return 201, {"ticket": {"id": ticket_id, "external_id": ticket["external_id"]}}

    def posts(self) -> list[dict]:
        """Every POST received (raw: retries of one key included)."""
        with self.lock:
            return [r for r in self.requests if r["method"] == "POST"]

    def wait_accepted(self, n: int, timeout: float = 20.0) -> dict[str, dict]:
        """Wait until ``n`` keys were accepted; the accepted requests by key."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.accepted) >= n:
                    return dict(self.accepted)
            time.sleep(0.02)
        raise AssertionError(f"expected {n} accepted deliveries, got {len(self.accepted)}")

    def refuse(self) -> None:
        """Stop listening: connections are refused (the port stays reserved)."""
        self.server.shutdown()
        self.server.server_close()

    def listen_again(self) -> None:
        """Listen on the same port again after :meth:`refuse`."""
        self.server = GraphServer(self.server.server_address, self._handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
