"""A small load generator for the WhatsApp webhook: signed deliveries over real HTTP.

Starts the service in-process on a free loopback port (SQLite in a temporary folder, sending
disabled so replies stay in the outbox), fires ``n`` signed deliveries at a fixed concurrency
with httpx, and reports webhook latency (p50/p99), accepted messages per second, and how long
the worker took until every message had its reply stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import uvicorn
from sqlalchemy import func, select

from serving.app import create_app
from serving.settings import Settings
from serving.storage.models import Job
from serving.whatsapp.payload import signature

log = logging.getLogger(__name__)
SECRET = "loadgen-secret"
PHONE_NUMBER_ID = "100000000001"
TEXTS = ("hi", "where is my order?", "1", "ND-100000", "how long does shipping take?",
         "I was charged twice", "thanks", "what's the weather?")


def delivery(i: int, customers: int) -> bytes:
    """One Meta-shaped webhook body with one text message."""
    customer = f"4477009{i % customers:05d}"
    body = {"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": "Load"}, "wa_id": customer}],
            "messages": [{"from": customer, "id": f"wamid.load.{i}", "timestamp": str(int(time.time())),
                          "type": "text", "text": {"body": TEXTS[i % len(TEXTS)]}}]}}]}]}
    return json.dumps(body).encode()


async def post_delivery(client: httpx.AsyncClient, url: str, i: int, customers: int,
                        latencies: list[float]) -> None:
    """POST delivery ``i`` signed like Meta; record its latency; fail loudly on non-200."""
    raw = delivery(i, customers)
    t0 = time.perf_counter()
    r = await client.post(f"{url}/webhooks/whatsapp", content=raw,
                          headers={"x-hub-signature-256": signature(raw, SECRET),
                                   "content-type": "application/json"})
    latencies.append((time.perf_counter() - t0) * 1000)
    if r.status_code != 200:
        raise RuntimeError(f"delivery {i}: HTTP {r.status_code} {r.text[:200]}")


async def fire(url: str, n: int, concurrency: int, customers: int) -> list[float]:
    """POST ``n`` signed deliveries, ``concurrency`` at a time; latencies in ms."""
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            await post_delivery(client, url, queue.get_nowait(), customers, latencies)

    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return latencies


async def fire_at_rate(url: str, n: int, rate: float, customers: int, offset: int = 0
                       ) -> list[float]:
    """Open-loop load: start a delivery every ``1/rate`` seconds whatever the answers do
    (how Meta sends), so queueing shows up in the latencies instead of slowing the sender."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        start, tasks = time.perf_counter(), []
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(
                post_delivery(client, url, i + offset, customers, latencies)))
        await asyncio.gather(*tasks)
    return latencies


def run_webhook_load(n: int = 1000, concurrency: int = 16, customers: int = 200) -> dict:
    """Run the load against a fresh in-process service; return the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{Path(tmp) / 'load.db'}",
                            whatsapp_app_secret=SECRET, whatsapp_verify_token="v",
                            whatsapp_phone_number_id=PHONE_NUMBER_ID, worker_poll_seconds=0.005)
        app = create_app(settings)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        t0 = time.perf_counter()
        latencies = asyncio.run(fire(url, n, concurrency, customers))
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
