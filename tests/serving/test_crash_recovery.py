"""kill -9 in the middle of a load: every acknowledged message gets exactly one reply.

The service runs as a real process (``python -m tierline serve``); the fake Graph API plays
Meta on both sides (accepts sends, posts signed status webhooks back, retried while the
service is down), and the load generator retries deliveries that got no 200, as Meta does.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import signal
import subprocess
import sys
import time

import httpx

from tests.net import free_port, wait_ready
from tests.serving.conftest import process_env
from tests.serving.fakes import (
    APP_SECRET,
    FakeGraphAPI,
    envelope,
    message,
    sign,
)

N = 800  # a third acknowledged before the kill: enough to be mid-load, bounded in time


def start_service(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tierline", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_kill_9_mid_load_loses_nothing_and_duplicates_nothing(database_url):
    graph = FakeGraphAPI()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    graph.status_target = (f"{url}/webhooks/whatsapp", APP_SECRET)
    env = process_env(database_url, graph.url, TIERLINE_PORT=str(port),
                      TIERLINE_JOB_LEASE_SECONDS="2", TIERLINE_SENDING_LEASE_SECONDS="4",
                      TIERLINE_WHATSAPP_RETRY_BASE_SECONDS="0.05")
    proc = start_service(env)
    wait_ready(url, timeout=90)
    customers = [f"4477009{n:05d}" for n in range(N)]
    acknowledged: set[str] = set()
    attempts = collections.Counter()

    def deliver(customer: str) -> None:
        raw = json.dumps(envelope([message(text="hello", wamid=f"wamid.crash.{customer}",
                                           customer=customer)], customer=customer)).encode()
        while True:  # Meta retries until it gets a 2xx
            attempts[customer] += 1
            try:
                r = client.post(f"{url}/webhooks/whatsapp", content=raw,
                                headers={"x-hub-signature-256": sign(raw),
                                         "content-type": "application/json"})
                if r.status_code == 200:
                    acknowledged.add(customer)
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)

    # One keep-alive pool for Meta's side (a client per request costs the test more CPU than
    # the service spends on the message).
    client = httpx.Client(timeout=10, limits=httpx.Limits(max_connections=8))
    try:
        load_started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(deliver, c) for c in customers]
            while len(acknowledged) < N // 3:
                time.sleep(0.01)
            killed = time.monotonic()
            proc.send_signal(signal.SIGKILL)  # kill -9 mid-load
            proc.wait(10)
            killed_at = len(acknowledged)
            proc = start_service(env)
            for f in futures:
                f.result(timeout=180)
        all_acknowledged = time.monotonic()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if {m["to"] for m in graph.received} >= set(customers):
                break
            time.sleep(0.1)
        all_answered = time.monotonic()
        time.sleep(6)  # past the sending lease: an unconfirmed send would be retried by now
        replies = collections.Counter(m["to"] for m in graph.received)
        keys = collections.Counter(m.get("biz_opaque_callback_data") for m in graph.received)
        assert acknowledged == set(customers)
        assert killed_at < N, "the kill happened after the load"
        missing = [c for c in customers if replies[c] == 0]
        doubled = [c for c in customers if replies[c] > 1]
        assert not missing, f"{len(missing)} acknowledged messages never answered"
        assert not doubled, f"{len(doubled)} answered twice"
        assert all(n == 1 for n in keys.values())
        print(f"kill -9 after {killed_at}/{N} acknowledged ({killed - load_started:.1f} s into the "
              f"load); {sum(attempts.values()) - N} redeliveries; all acknowledged "
              f"{all_acknowledged - killed:.1f} s after the kill (restart included), all answered "
              f"{all_answered - killed:.1f} s after it; {len(graph.received)} replies, 0 lost, "
              f"0 duplicated")
    finally:
        client.close()
        proc.kill()
        proc.wait(10)
        graph.close()
