"""Two service processes on one database share the work: every message answered exactly once."""

from __future__ import annotations

import collections
import concurrent.futures
import json
import subprocess
import sys
import time

import httpx
from sqlalchemy import create_engine, func, select

from tierline.serving.storage.db import normalise_url
from tierline.serving.storage.models import DecisionRow, Job
from tests.net import free_port, wait_ready
from tests.serving.conftest import process_env
from tests.serving.fakes import (
    FakeGraphAPI,
    envelope,
    message,
    sign,
)

N = 200


def test_two_processes_share_the_queue_without_double_processing(database_url):
    graph = FakeGraphAPI()
    ports = [free_port(), free_port()]
    base = process_env(database_url, graph.url)
    procs = []
    try:
        for port in ports:  # one after the other: the first one migrates the schema
            procs.append(subprocess.Popen([sys.executable, "-m", "tierline", "serve"],
                                          env={**base, "TIERLINE_PORT": str(port)},
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_ready(f"http://127.0.0.1:{port}", timeout=90)
        customers = [f"4477009{n:05d}" for n in range(N)]

        def deliver(i: int) -> int:
            customer = customers[i]
            raw = json.dumps(envelope([message(text="hello", wamid=f"wamid.two.{customer}",
                                               customer=customer)], customer=customer)).encode()
            port = ports[i % 2]
            return httpx.post(f"http://127.0.0.1:{port}/webhooks/whatsapp", content=raw, timeout=30,
                              headers={"x-hub-signature-256": sign(raw),
                                       "content-type": "application/json"}).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert set(pool.map(deliver, range(N))) == {200}
        graph_customers = lambda: {m["to"] for m in graph.received}  # noqa: E731
        deadline = time.monotonic() + 120
        while graph_customers() < set(customers) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        replies = collections.Counter(m["to"] for m in graph.received)
        assert set(replies) == set(customers) and set(replies.values()) == {1}
        engine = create_engine(normalise_url(database_url))
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(DecisionRow)).scalar() == N
            workers = conn.execute(select(Job.locked_by, func.count()).group_by(Job.locked_by)).all()
        engine.dispose()
        pids = {w.split("-")[0] for w, _ in workers}
        assert len(pids) == 2, workers  # both processes took jobs
        print(f"jobs per worker: {dict(workers)}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(20)
        graph.close()
