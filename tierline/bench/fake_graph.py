"""The fake Graph API of ``bench http``: its own process, so that its work neither slows the
load generator nor skews the times it records.

It answers ``POST /{id}/messages`` like Meta and records when each message arrived (by its
idempotency key); when asked, it posts Meta's "sent", "delivered" and "read" statuses of every
accepted message back to the service's webhook, signed, as Meta does.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time

from tierline.bench.load import RawPool, TransportError, run_async, webhook_body

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

