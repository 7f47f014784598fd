"""``tierline serve`` with ``TIERLINE_WORKERS=2``: the processes agree.

- ``/metrics`` adds up: whichever process answers a scrape, the counters are the work both
  processes did together (prometheus_client's multiprocess mode), never a customer's number.
- One ``POST /v1/admin/reload`` reaches both: after an edit of the FAQ and one reload, every
  answer, whichever process gives it, uses the new FAQ (the ``live_versions`` generation each
  process follows, within ``TIERLINE_LIVE_POLL_SECONDS``, 1 s by default).

Real processes on a free port of 127.0.0.1, on PostgreSQL (``TIERLINE_TEST_POSTGRES_URL``, the
production store) or, without one, SQLite: one backend, not both, to keep the module near 20 s
(two processes loading models take most of it; ``test_live_versions.py`` runs the follow and
a failed reload on both backends). A fake Graph API; connections are not kept alive, so
requests spread over both processes. Every process started is stopped by its PID.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from tierline.nlu.flow import DEFAULT_FLOW_PATH
from tierline.serving.api_keys import create_api_key
from tierline.serving.storage.db import Database
from tierline.serving.tickets import create_agent
from tests.net import free_port, wait_ready
from tests.serving.conftest import BACKENDS, fresh_database, process_env, stop_service
from tests.serving.fakes import FakeGraphAPI, envelope, message, sign

#: Requests go out on a new connection each: the kernel hands each to either process.
CLOSE = {"connection": "close"}
QUESTION = "how long does shipping take"
OLD_ANSWER = "Orders ship within 24 hours"
NEW_ANSWER = "Orders now ship the same day"
#: Every process must serve a new generation within this many seconds of the reload.
FOLLOW_WITHIN_SECONDS = 10.0
GENERATION = re.compile(r'^tierline_served_generation\{pid="(\d+)"\} (\S+)$', re.M)


@dataclass
class Served:
    url: str
    graph: FakeGraphAPI
    flow: Path
    metrics_dir: Path
    pids: set[int]
    api: dict[str, str]
    admin: dict[str, str]


def generations(url: str) -> dict[int, float]:
    """Each live process's served generation, from one scrape of ``/metrics``."""
    text = httpx.get(f"{url}/metrics", headers=CLOSE, timeout=10).text
    return {int(pid): float(value) for pid, value in GENERATION.findall(text)}


def sample(text: str, name: str) -> float:
    """The value of an unlabelled sample (or one given with its labels) in an exposition."""
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


@pytest.fixture(scope="module", params=BACKENDS[-1:])
def database_url(request, tmp_path_factory) -> Iterator[str]:
    """PostgreSQL when the suite has one, else SQLite (this module only)."""
    with fresh_database(request.param, tmp_path_factory) as url:
        yield url


@pytest.fixture(scope="module")
def served(database_url, tmp_path_factory) -> Iterator[Served]:
    """``tierline serve --workers 2`` on the module's database, with its own flow folder and
    metrics folder; yields once both processes serve."""
    tmp = tmp_path_factory.mktemp("agree")
    shutil.copytree(DEFAULT_FLOW_PATH.parent, tmp / "bot")
    graph = FakeGraphAPI()
    port = free_port()
    env = process_env(database_url, graph.url, TIERLINE_PORT=str(port), TIERLINE_WORKERS="2",
                      TIERLINE_FLOW_PATH=str(tmp / "bot" / DEFAULT_FLOW_PATH.name),
                      TIERLINE_METRICS_DIR=str(tmp / "metrics"),
                      TIERLINE_CONSOLE_SECRET="test-console-secret")
    proc = subprocess.Popen([sys.executable, "-m", "tierline", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    pids: set[int] = set()
    try:
        wait_ready(url, timeout=90)
        deadline = time.monotonic() + 60
        while len(pids) < 2:  # each process reports its generation once it serves
            assert time.monotonic() < deadline, f"two processes did not start: {pids}"
            pids = set(generations(url))
            time.sleep(0.1)
        db = Database(database_url)
        api = {"authorization": f"Bearer {create_api_key(db, 'tests', ['decide'])[1]}"}
        admin = {"authorization": f"Bearer {create_agent(db, 'Root', [], admin=True)}"}
        db.dispose()
        yield Served(url, graph, tmp / "bot" / DEFAULT_FLOW_PATH.name, tmp / "metrics", pids,
                     api, admin)
    finally:
        stop_service(proc, pids)
        graph.close()


def per_process(metrics_dir: Path, name: str) -> dict[int, float]:
    """A counter's (or a histogram's ``_count``) value in each process's own files of the
    metrics folder (``counter_<pid>.db``, ``histogram_<pid>.db``)."""
    counts: dict[int, float] = {}
    for path in [*metrics_dir.glob("counter_*.db"), *metrics_dir.glob("histogram_*.db")]:
        pid = int(path.stem.rsplit("_", 1)[1])
        for metric in MultiProcessCollector.merge([str(path)]):
            counts[pid] = counts.get(pid, 0.0) + sum(
                s.value for s in metric.samples if s.name == name)
    return counts


def test_metrics_add_up_over_both_processes_at_every_scrape(served):
    n = 24
    customers = [f"4477008{i:05d}" for i in range(n)]
    before = httpx.get(f"{served.url}/metrics", headers=CLOSE).text

    def deliver(customer: str) -> int:
        raw = json.dumps(envelope([message(text="hello", wamid=f"wamid.agree.{customer}",
                                           customer=customer)], customer=customer)).encode()
        return httpx.post(f"{served.url}/webhooks/whatsapp", content=raw, timeout=30, headers={
            **CLOSE, "x-hub-signature-256": sign(raw), "content-type": "application/json"}
                          ).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert set(pool.map(deliver, customers)) == {200}
    served.graph.wait_for(n, timeout=60)

    def scrape() -> tuple[float, float, float]:
        text = httpx.get(f"{served.url}/metrics", headers=CLOSE, timeout=10).text
        assert not any(c in text for c in customers) and "hello" not in text
        return (sample(text, "tierline_messages_in_total"),
                sample(text, 'tierline_messages_out_total{status="sent"}'),
                sample(text, "tierline_turn_seconds_count") - sample(before, "tierline_turn_seconds_count"))

    deadline = time.monotonic() + 10  # the last send is counted just after the fake got it
    while scrape() != (n, n, n) and time.monotonic() < deadline:
        time.sleep(0.1)
    scrapes = [scrape() for _ in range(8)]
    assert scrapes == [(n, n, n)] * 8, scrapes
    # Both processes did part of the work: the sums are not one process's count.
    stored = per_process(served.metrics_dir, "tierline_messages_in_total")
    turned = per_process(served.metrics_dir, "tierline_turn_seconds_count")
    assert sum(stored.values()) == n and sum(turned.values()) >= n
    working = {pid for pid in served.pids if stored.get(pid, 0) + turned.get(pid, 0) > 0}
    assert working == served.pids, (stored, turned)
    print(f"\n8 scrapes, each {n} in / {n} sent / {n} turns; stored per process {stored}, "
          f"turned per process {turned}")


def test_one_admin_reload_reaches_every_process(served):
    def answers(count: int, prefix: str) -> list[str]:
        replies = []
        for i in range(count):
            r = httpx.post(f"{served.url}/v1/decide", headers={**served.api, **CLOSE},
                           timeout=30, json={"conversation_id": f"{prefix}-{i}",
                                             "customer": {"id": "c"}, "text": QUESTION})
            assert r.status_code == 200, r.text
            replies.append(r.json()["reply"])
        return replies

    assert all(OLD_ANSWER in reply for reply in answers(2, "before"))
    faq = served.flow.parent / "faq.yaml"
    faq.write_text(faq.read_text(encoding="utf-8").replace(OLD_ANSWER, NEW_ANSWER),
                   encoding="utf-8")
    start = time.monotonic()
    r = httpx.post(f"{served.url}/v1/admin/reload", headers={**served.admin, **CLOSE},
                   timeout=60)
    assert r.status_code == 200, r.text
    generation, digest, reloaded_by = r.json()["generation"], r.json()["flow_digest"], r.json()["pid"]
    # Wait (bounded) until /metrics shows every process on the new generation.
    while set(generations(served.url).values()) != {generation}:
        assert time.monotonic() - start < FOLLOW_WITHIN_SECONDS, generations(served.url)
        time.sleep(0.1)
    followed = time.monotonic() - start
    replies = answers(12, "after")
    assert all(NEW_ANSWER in reply for reply in replies), Counter(replies)
    # Each process says it serves that generation and that flow (asked until both answered).
    seen: dict[int, dict] = {}
    for _ in range(60):
        if set(seen) == served.pids:
            break
        models = httpx.get(f"{served.url}/v1/admin/models", headers={**served.admin, **CLOSE},
                           timeout=10).json()
        seen[models["pid"]] = models
    assert set(seen) == served.pids
    assert all(m["generation"] == generation and m["flow_digest"] == digest
               and m["reload_failure"] is None for m in seen.values()), seen
    assert all(m["live"]["generation"] == generation for m in seen.values())
    print(f"\nreloaded by process {reloaded_by}; every process on generation {generation} "
          f"{followed:.1f}s after the reload; 12 of 12 answers from the new FAQ")
