"""The load generator: Meta-shaped, signed webhook deliveries over raw keep-alive HTTP/1.1.

``fire`` keeps a fixed number of deliveries in flight (closed loop); ``fire_at_rate`` starts one
every ``1/rate`` seconds whatever the answers do (open loop, how Meta sends). Both return the
webhook latencies. The benchmarks (``tierline.bench.webhook``, ``tierline.bench.http``) and the fake Graph API's
status reports (``tierline.bench.fake_graph``) send through ``RawPool``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import socket
import time

import httpx

from tierline.serving.queue.loops import new_event_loop
from tierline.serving.channels.whatsapp.payload import signature

SECRET = "loadgen-secret"
PHONE_NUMBER_ID = "100000000001"
TEXTS = ("hi", "where is my order?", "1", "ND-100000", "how long does shipping take?",
         "I was charged twice", "thanks", "what's the weather?")


def webhook_body(**value) -> bytes:
    """A Meta-shaped webhook body for our number, with ``value``'s fields (messages, statuses)."""
    body = {"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": PHONE_NUMBER_ID},
            **value}}]}]}
    return json.dumps(body).encode()


def delivery(i: int, customers: int) -> bytes:
    """One Meta-shaped webhook body with one text message."""
    customer = f"4477009{i % customers:05d}"
    return webhook_body(
        contacts=[{"profile": {"name": "Load"}, "wa_id": customer}],
        messages=[{"from": customer, "id": f"wamid.load.{i}", "timestamp": str(int(time.time())),
                   "type": "text", "text": {"body": TEXTS[i % len(TEXTS)]}}])


class TransportError(Exception):
    """The connection broke or answered something that is not HTTP/1.1."""


class RawConnection:
    """One keep-alive HTTP/1.1 connection on asyncio streams.

    The load generator shares the service's two cores, so what it spends per request is taken
    from the service: httpx spent 1.5-3.8 CPU-ms per delivery here (its connection pool and
    header models), more than a third of what the service itself spends on a message. This
    writes a prebuilt request and reads the status line, ``content-length`` and body: about a
    tenth of that. It is the load generator's only HTTP client; the service's own code never
    uses it.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def request(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        """Send one request (``head`` ends with the blank line); (status, body)."""
        try:
            self.writer.write(head + body)
            raw = await self.reader.readuntil(b"\r\n\r\n")
            lines = raw.split(b"\r\n")
            status = int(lines[0].split(b" ", 2)[1])
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            return status, (await self.reader.readexactly(length) if length else b"")
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError, IndexError) as exc:
            self.close()
            raise TransportError(f"{type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        self.writer.close()


class RawPool:
    """Keep-alive connections to one host: an idle one is reused, else a new one is opened
    (so open-loop load is never held back by a fixed number of connections). A connection idle
    for longer than ``IDLE_SECONDS`` is closed instead: uvicorn closes keep-alive connections
    after 5 s, and a request on one it closed fails."""

    IDLE_SECONDS = 4.0

    def __init__(self, url: str) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port or 80)
        self._idle: list[tuple[RawConnection, float]] = []

    def head(self, method: str, path: str, length: int, extra: str = "") -> bytes:
        """A request head for this host (``extra``: more header lines, each ending CRLF)."""
        return (f"{method} {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n"
                f"content-type: application/json\r\ncontent-length: {length}\r\n{extra}\r\n").encode()

    async def _connection(self, fresh: bool) -> RawConnection:
        while self._idle and not fresh:
            connection, idle_since = self._idle.pop()
            if time.monotonic() - idle_since < self.IDLE_SECONDS:
                return connection
            connection.close()
        try:
            return RawConnection(*await asyncio.open_connection(self.host, self.port))
        except OSError as exc:
            raise TransportError(f"connect: {exc}") from None

    async def request(self, head: bytes, body: bytes, fresh: bool = False) -> tuple[int, bytes]:
        """One request on an idle connection (a new one when ``fresh``, e.g. for a retry);
        the connection goes back when it is done."""
        connection = await self._connection(fresh)
        status, body = await connection.request(head, body)
        self._idle.append((connection, time.monotonic()))
        return status, body

    def webhook_head(self, raw: bytes) -> bytes:
        """The head of a POST of ``raw`` to the webhook, signed like Meta signs it."""
        return self.head("POST", "/webhooks/whatsapp", len(raw),
                         f"x-hub-signature-256: {signature(raw, SECRET)}\r\n")

    def close(self) -> None:
        for connection, _ in self._idle:
            connection.close()
        self._idle.clear()


#: Connection errors (a keep-alive connection closed under the request, say) are retried like
#: Meta retries a delivery, at most this many times; the latency then counts from the first try.
TRANSPORT_RETRIES = 3
TRANSPORT_ERRORS: collections.Counter = collections.Counter()


async def post_delivery(pool: RawPool, i: int, customers: int, latencies: list[float],
                        sent_at: dict[int, float] | None = None) -> None:
    """POST delivery ``i`` signed like Meta; record its latency (and, in ``sent_at``, when it
    left, on the system-wide monotonic clock); fail loudly on non-200."""
    raw = delivery(i, customers)
    head = pool.webhook_head(raw)
    t0 = time.perf_counter()
    if sent_at is not None:
        sent_at[i] = time.monotonic()
    for attempt in range(TRANSPORT_RETRIES + 1):
        try:
            status, body = await pool.request(head, raw, fresh=attempt > 0)
            break
        except TransportError:
            TRANSPORT_ERRORS["webhook"] += 1
            if attempt == TRANSPORT_RETRIES:
                raise
    latencies.append((time.perf_counter() - t0) * 1000)
    if status != 200:
        raise RuntimeError(f"delivery {i}: HTTP {status} {body[:200]!r}")


async def fire(url: str, n: int, concurrency: int, customers: int, offset: int = 0,
               sent_at: dict[int, float] | None = None) -> list[float]:
    """POST ``n`` signed deliveries, ``concurrency`` at a time; latencies in ms."""
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i + offset)
    pool = RawPool(url)

    async def worker() -> None:
        while not queue.empty():
            await post_delivery(pool, queue.get_nowait(), customers, latencies, sent_at)

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        pool.close()
    return latencies


async def fire_at_rate(url: str, n: int, rate: float, customers: int, offset: int = 0,
                       sent_at: dict[int, float] | None = None) -> list[float]:
    """Open-loop load: start a delivery every ``1/rate`` seconds whatever the answers do
    (how Meta sends), so queueing shows up in the latencies instead of slowing the sender."""
    latencies: list[float] = []
    pool = RawPool(url)
    try:
        start, tasks = time.perf_counter(), []
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post_delivery(pool, i + offset, customers, latencies,
                                                           sent_at)))
        await asyncio.gather(*tasks)
    finally:
        pool.close()
    return latencies


def run_async(coroutine):
    """Run the load on uvloop when it is installed (the service's own loop; less CPU per
    request than asyncio's), else on asyncio."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coroutine)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float = 120.0) -> None:
    """Wait for ``/readyz`` (models loaded, database reachable)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready in {timeout:.0f}s")


def wait_ready_port(port: int, timeout: float = 60.0) -> None:
    """Wait until something listens on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")

