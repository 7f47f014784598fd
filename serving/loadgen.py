"""A small load generator for the WhatsApp webhook: signed deliveries over real HTTP.

``run_webhook_load`` (``tierline bench webhook``) starts the service in-process on a free
loopback port (SQLite in a temporary folder, sending disabled so replies stay in the outbox),
fires ``n`` signed deliveries at a fixed concurrency over keep-alive connections
(``RawPool``), and reports webhook latency
(p50/p99), accepted messages per second, and how long the worker took until every message had
its reply stored.

``run_http_bench`` (``tierline bench http``, part of ``make bench``) is the end-to-end figure:
the service as ``make run`` starts it (``tierline serve``, its own processes, N uvicorn
workers) on a fresh PostgreSQL database, replies going out to a fake Graph API (its own
process); for each number of processes (one vs two): a closed-loop ceiling, open-loop signed
deliveries at increasing rates (accepted msg/s, webhook p50/p99, delivery-to-reply p50/p99
measured at the fake Graph API), ``/v1/analyze`` and ``/v1/decide`` at concurrency 1, 16 and
64, CPU seconds per 1,000 messages (service, PostgreSQL, load generator, from /proc); and a
py-spy profile of the service (first process count, highest rate).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import uvicorn
from sqlalchemy import func, select

from serving.api_keys import create_api_key
from serving.app import create_app
from serving.background import new_event_loop
from serving.settings import Settings
from serving.storage.db import Database
from serving.storage.models import Job
from serving.whatsapp.payload import signature

log = logging.getLogger(__name__)
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


def run_webhook_load(n: int = 1000, concurrency: int = 16, customers: int = 200) -> dict:
    """Run the load against a fresh in-process service; return the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{Path(tmp) / 'load.db'}",
                            whatsapp_app_secret=SECRET, whatsapp_verify_token="v",
                            whatsapp_phone_number_id=PHONE_NUMBER_ID, worker_poll_seconds=0.005)
        app = create_app(settings)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{port}"
        wait_ready(url)
        t0 = time.perf_counter()
        latencies = run_async(fire(url, n, concurrency, customers))
        accepted_s = time.perf_counter() - t0
        db = app.state.services.db
        while True:
            with db.session() as s:
                left = s.scalar(select(func.count()).select_from(Job).where(Job.status != "done"))
            if not left:
                break
            time.sleep(0.05)
        drained_s = time.perf_counter() - t0
        server.should_exit = True
        thread.join(10)
    return {"messages": n, "concurrency": concurrency,
            "webhook_p50_ms": statistics.median(latencies),
            "webhook_p99_ms": float(np.percentile(latencies, 99)),
            "accepted_per_s": n / accepted_s, "all_replied_s": drained_s,
            "processed_per_s": n / drained_s}


# ---------------------------------------------------------------------------------------------
# `tierline bench http`: the service as `make run` starts it, PostgreSQL, a fake Graph API.
# ---------------------------------------------------------------------------------------------

#: Meta allows up to 1,000 messages/s per number after upgrades (80 by default): the bench
#: sends at the upgraded rate, so the send rate limit does not cap delivery-to-reply.
BENCH_SEND_RATE = 1000.0
DECIDE_TEXTS = ("where is my order?", "ND-100000", "I was charged twice", "how long does shipping take?",
                "this is useless, nothing works!!!", "thanks")


#: What Meta reports of every message it accepted, each in a webhook delivery of its own.
STATUS_SEQUENCE = ("sent", "delivered", "read")


def status_delivery(wamid: str, state: str, recipient: str, callback: str | None) -> bytes:
    """One Meta-shaped webhook body with one status of an outbound message."""
    st = {"id": wamid, "status": state, "timestamp": str(int(time.time())), "recipient_id": recipient}
    if callback:
        st["biz_opaque_callback_data"] = callback
    return webhook_body(statuses=[st])


class StatusReporter:
    """The fake Graph API's statuses: when on, every accepted message is followed by signed
    "sent", "delivered" and "read" webhooks to the service, in order, as Meta does (three
    deliveries per reply: in production they outnumber the customers' messages)."""

    def __init__(self) -> None:
        self.pool: RawPool | None = None
        self.counts = collections.Counter()
        self._tasks: set[asyncio.Task] = set()

    def configure(self, url: str | None) -> None:
        """Report to ``url`` from now on (None: stop); the counts start again."""
        if self.pool is not None:
            self.pool.close()
        self.pool = RawPool(url) if url else None
        self.counts.clear()

    def accepted(self, wamid: str, recipient: str, callback: str | None) -> None:
        """A message was accepted: report its statuses (in the background)."""
        if self.pool is not None:
            task = asyncio.get_running_loop().create_task(self._report(self.pool, wamid, recipient,
                                                                       callback))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _report(self, pool: RawPool, wamid: str, recipient: str, callback: str | None) -> None:
        for state in STATUS_SEQUENCE:
            raw = status_delivery(wamid, state, recipient, callback)
            head = pool.webhook_head(raw)
            try:
                status, _ = await pool.request(head, raw)
            except TransportError:
                status, _ = await pool.request(head, raw, fresh=True)  # as Meta retries
            self.counts["acknowledged" if status == 200 else f"HTTP {status}"] += 1


async def _graph_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            arrivals: list, reporter: StatusReporter) -> None:
    """One keep-alive connection of the fake Graph API: ``POST /{id}/messages`` records the
    message's idempotency key (``biz_opaque_callback_data``) with its arrival time and answers
    like Meta; ``GET /_arrivals`` hands the record to the bench; ``POST /_statuses``
    (``{"url": webhook base URL or null}``) turns status reports on or off, ``GET /_statuses``
    counts them."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            arrived = time.monotonic()
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            length = next((int(v) for k, _, v in (line.partition(":") for line in lines[1:])
                           if k.strip().lower() == "content-length"), 0)
            body = await reader.readexactly(length) if length else b""
            if path == "/_statuses":
                if method == "POST":
                    reporter.configure(json.loads(body)["url"])
                payload = json.dumps(reporter.counts).encode()
            elif method == "GET":
                payload = json.dumps(arrivals).encode()
            else:
                message = json.loads(body)
                callback = message.get("biz_opaque_callback_data")
                arrivals.append((callback, arrived))
                wamid = f"wamid.out.{len(arrivals)}"
                reporter.accepted(wamid, str(message.get("to", "")), callback)
                payload = json.dumps({"messaging_product": "whatsapp",
                                      "messages": [{"id": wamid}]}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"content-length: %d\r\n\r\n%s" % (len(payload), payload))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        writer.close()


def serve_fake_graph(port: int) -> None:
    """Run the fake Graph API on 127.0.0.1:``port`` until killed (its own process, so its
    work neither slows the load generator nor skews the times it records)."""
    arrivals: list = []
    reporter = StatusReporter()

    async def main() -> None:
        server = await asyncio.start_server(
            lambda r, w: _graph_connection(r, w, arrivals, reporter), "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    run_async(main())


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


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# CPU time of processes, read from /proc (Linux): user + system, in seconds.
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()  # fields after "pid (comm) "


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants (uvicorn's worker processes)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += parents.get(pid, [])
    return tree


def postgres_backends(database: str) -> list[int]:
    """PostgreSQL server processes serving ``database`` (``postgres: user db host ...``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if cmd.startswith("postgres:") and f" {database} " in cmd:
                pids.append(int(entry.name))
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """Sum of user + system CPU time of these processes."""
    total = 0
    for pid in pids:
        if fields := _stat(pid):
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


class CpuMeter:
    """CPU seconds spent by the service, PostgreSQL (this database's backends) and the load
    generator itself between ``start()`` and ``stop()``."""

    def __init__(self, service_pid: int, database: str) -> None:
        self.service_pid, self.database = service_pid, database

    def _now(self) -> dict[str, float]:
        me = os.times()
        return {"service": cpu_seconds(process_tree(self.service_pid)),
                "postgres": cpu_seconds(postgres_backends(self.database)),
                "loadgen": me.user + me.system}

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> dict[str, float]:
        end = self._now()
        # PostgreSQL backends come and go with the pool: a backend that ended is not counted.
        return {k: max(0.0, end[k] - self._start[k]) for k in end}


@contextlib.contextmanager
def fresh_postgres_database(admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one run (dropped after): its URL."""
    from sqlalchemy import create_engine, text

    from serving.storage.db import normalise_url

    name = f"tierline_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class BenchService:
    """``tierline serve`` in its own process(es) (what ``make run`` starts), with production
    settings except the webhook/sending secrets, the fake Graph API and the database."""

    def __init__(self, database_url: str, graph_url: str, workers: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "TIERLINE_DATABASE_URL": database_url, "TIERLINE_PORT": str(self.port),
               "TIERLINE_WORKERS": str(workers), "TIERLINE_LOG_LEVEL": "WARNING",
               "TIERLINE_WHATSAPP_APP_SECRET": SECRET, "TIERLINE_WHATSAPP_VERIFY_TOKEN": "bench",
               "TIERLINE_WHATSAPP_ACCESS_TOKEN": "bench-token",
               "TIERLINE_WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
               "TIERLINE_WHATSAPP_API_BASE": graph_url,
               "TIERLINE_WHATSAPP_SEND_RATE": str(BENCH_SEND_RATE)}
        self.proc = subprocess.Popen([sys.executable, "-m", "tierline", "serve"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_ready(self.url)
            if workers > 1:  # /readyz answers as soon as the first worker process is ready
                time.sleep(5.0)
        except RuntimeError:
            self.proc.kill()
            raise RuntimeError(self.proc.stderr.read().decode(errors="replace")[-2000:]) from None
        # The inference APIs need a key, made as `tierline api-keys add` makes one.
        db = Database(database_url)
        try:
            self.api_key = create_api_key(db, "bench", ["analyze", "decide"])[1]
        finally:
            db.dispose()

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _replies_by_message(graph_url: str) -> dict[int, list[float]]:
    """Arrival times at the fake Graph API of the bot's replies, by load-generator message."""
    by_message: dict[int, list[float]] = {}
    for key, arrived in httpx.get(f"{graph_url}/_arrivals", timeout=30).json():
        if key and key.startswith("reply:wamid.load."):
            by_message.setdefault(int(key.split(":")[1].rsplit(".", 1)[1]), []).append(arrived)
    return by_message


def _wait_replies(graph_url: str, ids: range, timeout: float) -> dict[int, list[float]]:
    """Wait until every message in ``ids`` has a reply at the fake Graph API (or the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        replies = _replies_by_message(graph_url)
        if all(i in replies for i in ids) or time.monotonic() > deadline:
            return replies
        time.sleep(0.25)


def webhook_step(service: BenchService, graph_url: str, meter: CpuMeter, *, rate: float | None,
                 n: int, offset: int, concurrency: int = 64, statuses: bool = False) -> dict:
    """One load step: ``n`` deliveries open-loop at ``rate``/s (or closed-loop at
    ``concurrency`` when ``rate`` is None), each from a new customer so that every message
    gets a reply; then wait until every reply reached the fake Graph API. With ``statuses``
    the fake Graph API also posts Meta's three statuses of every reply to the webhook (their
    deliveries are not in the webhook latencies, which are the messages')."""
    sent_at: dict[int, float] = {}
    customers = 10 ** 7  # one customer per message: every message is answered
    errors_before = TRANSPORT_ERRORS["webhook"]
    if statuses:
        httpx.post(f"{graph_url}/_statuses", json={"url": service.url}, timeout=30)
    meter.start()
    t0 = time.monotonic()
    if rate is None:
        latencies = run_async(fire(service.url, n, concurrency, customers, offset, sent_at))
    else:
        latencies = run_async(fire_at_rate(service.url, n, rate, customers, offset, sent_at))
    accepted_s = time.monotonic() - t0
    ids = range(offset, offset + n)
    replies = _wait_replies(graph_url, ids, timeout=max(60.0, n / 20))
    status_counts: dict[str, int] = {}
    if statuses:  # every reply's statuses answered, or the timeout
        deadline = time.monotonic() + max(60.0, n / 20)
        expected = len(STATUS_SEQUENCE) * sum(len(replies[i]) for i in ids if i in replies)
        while sum(status_counts.values()) < expected and time.monotonic() < deadline:
            time.sleep(0.25)
            status_counts = httpx.get(f"{graph_url}/_statuses", timeout=30).json()
        httpx.post(f"{graph_url}/_statuses", json={"url": None}, timeout=30)
    cpu = meter.stop()
    answered = [i for i in ids if i in replies]
    to_reply = [(min(replies[i]) - sent_at[i]) * 1000 for i in answered]
    last = max((min(replies[i]) for i in answered), default=t0)
    mode = "open loop" if rate else f"closed loop, concurrency {concurrency}"
    return {"mode": mode + (" + 3 statuses a reply" if statuses else ""),
            "status_deliveries": status_counts,
            "offered_per_s": rate, "messages": n,
            "accepted_per_s": n / accepted_s, "processed_per_s": len(answered) / (last - t0),
            "webhook_p50_ms": percentile(latencies, 50), "webhook_p99_ms": percentile(latencies, 99),
            "reply_p50_ms": percentile(to_reply, 50), "reply_p99_ms": percentile(to_reply, 99),
            "answered": len(answered),
            "duplicated_replies": sum(len(replies[i]) > 1 for i in answered),
            "connection_errors_retried": TRANSPORT_ERRORS["webhook"] - errors_before,
            **{f"cpu_s_per_1000_{k}": v * 1000 / n for k, v in cpu.items()}}


async def _api_load(url: str, path: str, bodies: list[dict], concurrency: int,
                    api_key: str) -> list[float]:
    """POST ``bodies`` to ``path`` with ``api_key``, ``concurrency`` at a time; latencies in ms."""
    latencies: list[float] = []
    queue: asyncio.Queue[dict] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    pool = RawPool(url)

    async def worker() -> None:
        while not queue.empty():
            raw = json.dumps(queue.get_nowait()).encode()
            t0 = time.perf_counter()
            status, answer = await pool.request(pool.head(
                "POST", path, len(raw), f"authorization: Bearer {api_key}\r\n"), raw)
            latencies.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                raise RuntimeError(f"{path}: HTTP {status} {answer[:200]!r}")

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        pool.close()
    return latencies


def api_step(service: BenchService, meter: CpuMeter, path: str, concurrency: int, n: int) -> dict:
    """Closed-loop throughput and latency of ``/v1/analyze`` or ``/v1/decide``."""
    if path == "/v1/analyze":
        bodies = [{"texts": [DECIDE_TEXTS[i % len(DECIDE_TEXTS)]]} for i in range(n)]
    else:  # 200 conversations, each a few turns long
        bodies = [{"conversation_id": f"bench-{concurrency}-{i % 200}",
                   "customer": {"id": f"4477009{i % 200:05d}"},
                   "text": DECIDE_TEXTS[i % len(DECIDE_TEXTS)]} for i in range(n)]
    meter.start()
    t0 = time.monotonic()
    latencies = run_async(_api_load(service.url, path, bodies, concurrency, service.api_key))
    elapsed = time.monotonic() - t0
    cpu = meter.stop()
    return {"path": path, "concurrency": concurrency, "requests": n, "per_s": n / elapsed,
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            **{f"cpu_s_per_1000_{k}": v * 1000 / n for k, v in cpu.items()}}


def profile_service(service: BenchService, seconds: float, out: Path) -> subprocess.Popen | None:
    """Start py-spy (the dev extra) on the service's processes; None when it is not installed."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        log.warning("py-spy not installed: no profile (pip install -e '.[dev]')")
        return None
    # --gil: only the thread holding the GIL is sampled, i.e. where the Python CPU time goes
    # (threads waiting on the database or the network are left out).
    return subprocess.Popen([py_spy, "record", "--pid", str(service.proc.pid), "--subprocesses",
                             "--duration", str(int(seconds)), "--rate", "200", "--format", "raw",
                             "--gil", "--nonblocking", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarise_profile(raw: Path, top: int = 20) -> list[dict]:
    """Where the time goes, from py-spy's collapsed stacks: the functions with the largest share
    of samples on top of the stack (self), and tierline's own functions (``serving.``,
    ``nlu.``) by their share of samples anywhere on the stack (inclusive)."""
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    if not total:
        return []
    ours = [f for f, _ in inclusive.most_common() if "(serving/" in f or "(nlu/" in f][:top]
    return ([{"kind": "self", "function": f, "pct": 100 * c / total} for f, c in own.most_common(top)]
            + [{"kind": "tierline, inclusive", "function": f, "pct": 100 * inclusive[f] / total}
               for f in ours])


def run_http_bench(admin_url: str, rates: list[float], seconds: float, workers: list[int],
                   api_requests: int, out_dir: Path, profile: bool = True,
                   status_rates: tuple[float, ...] = ()) -> dict:
    """The whole end-to-end benchmark; writes ``http_bench.json`` / ``.md`` to ``out_dir``."""
    import multiprocessing

    out_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request costs CPU here
    graph_port = free_port()
    graph_url = f"http://127.0.0.1:{graph_port}"
    graph = multiprocessing.get_context("spawn").Process(target=serve_fake_graph, args=(graph_port,),
                                                         daemon=True)
    graph.start()
    report: dict = {"machine": machine(), "load_at_start": Path("/proc/loadavg").read_text().split()[:3],
                    "send_rate": BENCH_SEND_RATE, "webhook": [], "api": [], "scale_out": [],
                    "profile": []}
    offset = 0
    try:
        wait_ready_port(graph_port)
        for n_workers in workers:
            with fresh_postgres_database(admin_url) as database_url:
                service = BenchService(database_url, graph_url, n_workers)
                meter = CpuMeter(service.proc.pid, database_url.rsplit("/", 1)[1])
                try:
                    webhook_step(service, graph_url, meter, rate=50, n=100, offset=offset)  # warm-up
                    offset += 100
                    closed = webhook_step(service, graph_url, meter, rate=None,
                                          n=int(max(rates) * seconds), offset=offset)
                    offset += closed["messages"]
                    report["scale_out"].append({"processes": n_workers, **closed})
                    log.info("%d process(es), closed loop: %s", n_workers, _short(closed))
                    for rate in rates:
                        step = webhook_step(service, graph_url, meter, rate=rate,
                                            n=int(rate * seconds), offset=offset)
                        offset += step["messages"]
                        report["webhook"].append({"processes": n_workers, **step})
                        log.info("%s msg/s: %s", rate, _short(step))
                    if profile and n_workers == workers[0]:
                        # One more step at the highest rate, under py-spy: where the time goes
                        # where it matters most, without the profiler's cost in the figures.
                        spy = profile_service(service, seconds, out_dir / "http_bench_profile.txt")
                        if spy is not None:
                            step = webhook_step(service, graph_url, meter, rate=max(rates),
                                                n=int(max(rates) * seconds), offset=offset)
                            offset += step["messages"]
                            spy.wait(seconds * 3)
                            report["profile"] = summarise_profile(out_dir / "http_bench_profile.txt")
                    for rate in status_rates:
                        step = webhook_step(service, graph_url, meter, rate=rate,
                                            n=int(rate * seconds), offset=offset, statuses=True)
                        offset += step["messages"]
                        report["webhook"].append({"processes": n_workers, **step})
                        log.info("%s msg/s + statuses: %s %s", rate, _short(step),
                                 step["status_deliveries"])
                    for path in ("/v1/analyze", "/v1/decide"):
                        for concurrency in (1, 16, 64):
                            n = api_requests // 4 if concurrency == 1 else api_requests
                            step = api_step(service, meter, path, concurrency, n)
                            report["api"].append({"processes": n_workers, **step})
                            log.info("%s c=%d: %.0f/s p99 %.1f ms", path, concurrency,
                                     step["per_s"], step["p99_ms"])
                finally:
                    service.close()
    finally:
        graph.kill()
    report["load_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    (out_dir / "http_bench.json").write_text(json.dumps(report, indent=2))
    (out_dir / "http_bench.md").write_text(http_bench_markdown(report))
    return report


def wait_ready_port(port: int, timeout: float = 60.0) -> None:
    """Wait until something listens on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def machine() -> dict:
    """CPU model and cores (what the figures depend on)."""
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?")
    return {"cpu": model, "cores": os.cpu_count(), "python": sys.version.split()[0]}


def _short(step: dict) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in step.items()
                     if isinstance(v, float) and not k.startswith("cpu"))


def http_bench_markdown(report: dict) -> str:
    """The report as Markdown tables."""
    m = report["machine"]
    lines = [f"# tierline end-to-end HTTP benchmark\n\n{m['cpu']}, {m['cores']} cores, Python "
             f"{m['python']}; load average at start {' '.join(report['load_at_start'])}, at end "
             f"{' '.join(report['load_at_end'])}. Service: `tierline serve` (PostgreSQL, sending "
             f"at up to {report['send_rate']:.0f} msg/s to a fake Graph API process); the load "
             "generator runs on the same cores.\n",
             "## Webhook: signed deliveries, open loop\n",
             "| processes | offered msg/s | accepted msg/s | processed msg/s | webhook p50 / p99 ms | "
             "delivery→reply p50 / p99 ms | answered | duplicated | connection errors (retried) | "
             "CPU s per 1,000 msgs (service / PostgreSQL / load generator) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in report["webhook"] + report["scale_out"]:
        offered = s["mode"] if s["offered_per_s"] is None else f"{s['offered_per_s']:.0f}" + (
            " + statuses" if s.get("status_deliveries") else "")
        lines.append(f"| {s['processes']} | {offered} | {s['accepted_per_s']:.0f} | "
                     f"{s['processed_per_s']:.0f} | {s['webhook_p50_ms']:.1f} / {s['webhook_p99_ms']:.1f} | "
                     f"{s['reply_p50_ms']:.0f} / {s['reply_p99_ms']:.0f} | {s['answered']}/{s['messages']} | "
                     f"{s['duplicated_replies']} | {s.get('connection_errors_retried', 0)} | "
                     f"{s['cpu_s_per_1000_service']:.1f} / "
                     f"{s['cpu_s_per_1000_postgres']:.1f} / {s['cpu_s_per_1000_loadgen']:.1f} |")
    with_statuses = [s for s in report["webhook"] if s.get("status_deliveries")]
    if with_statuses:
        lines += ["\n\"+ statuses\": after each reply the fake Graph API posts Meta's sent, "
                  "delivered and read statuses, each a signed delivery of its own (answers: " +
                  "; ".join(f"{s['processes']} process(es) at {s['offered_per_s']:.0f} msg/s: " +
                            ", ".join(f"{n} {k}" for k, n in s["status_deliveries"].items())
                            for s in with_statuses) + ")."]
    lines += ["\n## /v1/analyze and /v1/decide, closed loop\n",
              "| processes | route | concurrency | requests | req/s | p50 / p99 ms | CPU s per 1,000 "
              "(service / PostgreSQL / load generator) |", "|---|---|---|---|---|---|---|"]
    for s in report["api"]:
        lines.append(f"| {s['processes']} | `{s['path']}` | {s['concurrency']} | {s['requests']} | "
                     f"{s['per_s']:.0f} | {s['p50_ms']:.1f} / {s['p99_ms']:.1f} | "
                     f"{s['cpu_s_per_1000_service']:.1f} / {s['cpu_s_per_1000_postgres']:.1f} / "
                     f"{s['cpu_s_per_1000_loadgen']:.1f} |")
    if report["profile"]:
        lines += ["\n## Where the service's CPU goes (py-spy --gil, an extra step at the highest "
                  "open-loop rate, not in the figures above)\n",
                  "| | function | % of samples |", "|---|---|---|"]
        lines += [f"| {p['kind']} | `{p['function'][:110]}` | {p['pct']:.1f} |" for p in report["profile"]]
    return "\n".join(lines) + "\n"
