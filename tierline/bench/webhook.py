"""``tierline bench webhook``: signed deliveries to the service in-process.

The service runs in this process on a free loopback port (SQLite in a temporary folder, sending
disabled so replies stay in the outbox); ``n`` deliveries go out at a fixed concurrency over
keep-alive connections. It reports webhook latency (p50/p99), accepted messages per second, and
how long the worker took until every message had its reply stored.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from sqlalchemy import func, select

from tierline.bench.load import PHONE_NUMBER_ID, SECRET, fire, free_port, run_async, wait_ready
from tierline.serving.app import create_app
from tierline.serving.settings import Settings
from tierline.serving.storage.models import Job
from tierline.training.timing import percentile


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
            "webhook_p99_ms": percentile(latencies, 99),
            "accepted_per_s": n / accepted_s, "all_replied_s": drained_s,
            "processed_per_s": n / drained_s}

