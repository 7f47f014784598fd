"""One body-size limit for every route, over real HTTP: a declared ``Content-Length`` over the
limit is answered 413 before any of the body is sent, and a chunked body is refused once it
passes the limit (the client is still sending). Before, ``/v1/analyze`` and ``/v1/decide`` read
a body of any size whole (a 250 MB body was read into memory)."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from tierline.serving.body_limit import limits_from

HUGE = 250 * 1024 * 1024


def head(service, path: str, extra: str) -> bytes:
    key = service.api_headers()["Authorization"]
    return (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"authorization: {key}\r\n{extra}\r\n").encode()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def read_answer(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    try:
        return sock.recv(65536)
    except TimeoutError:
        return b""


@pytest.mark.parametrize("path", ["/v1/analyze", "/v1/decide", "/webhooks/whatsapp"])
def test_a_declared_oversized_body_is_refused_before_it_is_sent(service, path):
    with socket.create_connection(("127.0.0.1", service.server.port), timeout=5) as sock:
        t0 = time.monotonic()
        sock.sendall(head(service, path, f"content-length: {HUGE}\r\n"))
        answer = read_answer(sock)  # nothing of the body was sent
        elapsed = time.monotonic() - t0
    assert status_of(answer) == 413, answer[:200]
    assert b"body larger than" in answer and elapsed < 2.0


@pytest.mark.parametrize("path", ["/v1/analyze", "/v1/decide"])
def test_a_chunked_body_is_refused_once_it_passes_the_limit(service, path):
    default, per_path = limits_from(service.app.state.settings)
    limit = per_path.get(path, default)
    frame = b"100000\r\n" + b" " * 0x100000 + b"\r\n"  # one 1 MiB chunk
    pending, sent = frame, 0
    with socket.create_connection(("127.0.0.1", service.server.port), timeout=5) as sock:
        sock.sendall(head(service, path, "transfer-encoding: chunked\r\n"))
        sock.setblocking(False)
        answer = b""
        deadline = time.monotonic() + 60
        while sent < HUGE and time.monotonic() < deadline:
            try:
                answer = sock.recv(65536)
                break  # the server answered while the client was still sending
            except BlockingIOError:
                pass
            try:
                n = sock.send(pending)
                sent, pending = sent + n, pending[n:] or frame
            except BlockingIOError:
                time.sleep(0.005)
            except (BrokenPipeError, ConnectionResetError):
                break
        if not answer:
            sock.setblocking(True)
            answer = read_answer(sock)
    print(f"\n{path}: limit {limit} bytes; 413 after the client had sent {sent} bytes "
          f"(socket buffers included)")
    assert status_of(answer) == 413, answer[:200]
    assert sent < limit + 32 * 1024 * 1024  # stopped far short of the 250 MB


def test_bodies_within_the_limits_are_served(service):
    texts = ["a" * 50_000] * 4  # 200 kB
    r = httpx.post(f"{service.url}/v1/analyze", json={"texts": texts}, timeout=60,
                   headers=service.api_headers())
    assert r.status_code == 200 and len(r.json()["results"]) == 4
