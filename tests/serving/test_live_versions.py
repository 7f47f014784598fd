"""The ``live_versions`` row and each process's watcher (``tierline.serving.live``).

The generation only grows and a compare-and-set bump announces once; the watcher follows a
new generation within its poll and retries one it could not load; a process whose reload
fails keeps answering with its previous flow and says so (``GET /v1/admin/models``,
``/metrics``), then catches up once the files are fixed. Across real processes:
``test_worker_processes_agree.py``.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from tierline.nlu.flow import DEFAULT_FLOW_PATH
from tierline.serving.live import LiveRow, LiveState, LiveWatcher
from tierline.serving.storage.db import Database
from tierline.serving.tickets import create_agent
from tests.serving.conftest import serve

QUESTION = "how long does shipping take"
OLD_ANSWER = "Orders ship within 24 hours"
NEW_ANSWER = "Orders now ship the same day"


def flow_copy(folder: Path) -> Path:
    """A copy of the shipped flow folder (bot.yaml and the files it reads); its bot.yaml."""
    shutil.copytree(DEFAULT_FLOW_PATH.parent, folder)
    return folder / DEFAULT_FLOW_PATH.name


def wait_for(condition, timeout: float = 20.0, what: str = "condition") -> float:
    """Seconds until ``condition()`` is true (AssertionError after ``timeout``)."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, f"no {what} within {timeout:.0f}s"
        time.sleep(0.02)
    return time.monotonic() - start


@pytest.fixture()
def sqlite_db(tmp_path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'live.db'}")
    database.migrate()
    yield database
    database.dispose()


def test_the_generation_only_grows_and_a_stale_compare_and_set_announces_nothing(sqlite_db):
    row = LiveRow(sqlite_db)
    assert row.read() == LiveState(0)
    announced = LiveState(0, "3", None, "nlu-en@sha256:abc", "sha256:flow")
    assert row.bump(announced, "admin reload by agent 1") == 1
    assert row.read() == LiveState(1, "3", None, "nlu-en@sha256:abc", "sha256:flow")
    # Two processes saw the same champion move at generation 1: the first one announces it,
    # the second one's compare-and-set finds generation 2 and announces nothing.
    assert row.bump(LiveState(0, "4"), "registry", expected=1) == 2
    assert row.bump(LiveState(0, "4"), "registry", expected=1) is None
    assert row.read().generation == 2 and row.read().nlu_version == "4"
    # Concurrent unconditional bumps each get a generation of their own.
    got: list[int] = []
    threads = [threading.Thread(target=lambda: got.append(row.bump(LiveState(0), "admin")))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(got) == list(range(3, 11)) and row.read().generation == 10


class FakeProcess:
    """What the watcher drives: a generation, ``follow`` failing ``failures`` times first."""

    def __init__(self, db: Database, failures: int = 0) -> None:
        self.live = LiveRow(db)
        self.registry = object()
        self.generation = 0
        self.failures = failures
        self.attempts: list[tuple[int, float]] = []
        self.registry_checks = 0

    def follow(self, live: LiveState) -> None:
        self.attempts.append((live.generation, time.monotonic()))
        if self.failures:
            self.failures -= 1
            raise FileNotFoundError("faq.yaml")
        self.generation = live.generation

    def follow_registry(self) -> None:
        self.registry_checks += 1


def test_the_watcher_follows_a_new_generation_and_backs_off_a_failing_one(sqlite_db):
    process = FakeProcess(sqlite_db, failures=3)
    watcher = LiveWatcher(process, poll_seconds=0.05, registry_poll_seconds=0.2)
    watcher.start()
    try:
        time.sleep(0.3)
        assert process.attempts == []  # nothing new: the row is read, nothing is loaded
        assert process.registry_checks >= 1  # the registry is asked on its own timer
        bumped = time.monotonic()
        process.live.bump(LiveState(0), "admin reload")
        wait_for(lambda: process.generation == 1, what="generation 1")
        assert [g for g, _ in process.attempts] == [1, 1, 1, 1]
        first = process.attempts[0][1] - bumped
        gaps = [b[1] - a[1] for a, b in zip(process.attempts, process.attempts[1:])]
        assert first < 0.2, first  # noticed within the poll
        assert gaps[-1] > gaps[0], gaps  # failures are retried less and less often
        assert watcher.failures == 0
        time.sleep(0.2)
        assert len(process.attempts) == 4  # caught up: nothing more to load
    finally:
        watcher.stop()
    print(f"\nfirst attempt {first * 1000:.0f} ms after the bump; retry gaps "
          f"{[round(g, 2) for g in gaps]} s")


def decide(url: str, headers: dict, conversation: str) -> str:
    r = httpx.post(f"{url}/v1/decide", headers=headers, timeout=30, json={
        "conversation_id": conversation, "customer": {"id": "c"}, "text": QUESTION})
    assert r.status_code == 200, r.text
    return r.json()["reply"]


def test_a_process_that_cannot_load_a_generation_keeps_serving_and_says_so(
        analyzer, database_url, tmp_path):
    flow = flow_copy(tmp_path / "bot")
    faq = flow.parent / "faq.yaml"
    with serve(analyzer, database_url, flow_path=flow, live_poll_seconds=0.1) as service:
        services, headers = service.services, service.api_headers()
        admin = {"authorization": f"Bearer {create_agent(services.db, 'Root', [], admin=True)}"}
        start = services.generation
        assert OLD_ANSWER in decide(service.url, headers, "before")

        # A broken FAQ: the admin reload is refused and announces nothing.
        faq.write_text("- id: [unclosed\n", encoding="utf-8")
        r = httpx.post(f"{service.url}/v1/admin/reload", headers=admin, timeout=60)
        assert r.status_code == 409 and "still serving the previous models" in r.json()["detail"]
        assert services.live.read().generation == start

        # Another process announces a generation this one cannot load: it keeps serving.
        engine = services.engine
        generation = services.live.bump(LiveState(0), "test: another process's reload")
        wait_for(lambda: (services.reload_failure or {}).get("generation") == generation,
                 what="recorded failure")
        assert services.engine is engine and services.generation == start
        assert OLD_ANSWER in decide(service.url, headers, "during")
        served = httpx.get(f"{service.url}/v1/admin/models", headers=admin).json()
        assert served["generation"] == start and served["live"]["generation"] == generation
        assert served["reload_failure"]["trigger"] == "follow"
        assert "faq.yaml" in served["reload_failure"]["error"], served["reload_failure"]
        metrics = httpx.get(f"{service.url}/metrics").text
        assert 'tierline_model_reloads_total{outcome="failed",trigger="follow"}' in metrics
        assert f"tierline_served_generation {float(start)}" in metrics

        # Fixed: the watcher's next try loads it.
        # In one step (the watcher retries every 0.1 s and must not read a half-written file).
        fixed = faq.with_suffix(".tmp")
        fixed.write_text((DEFAULT_FLOW_PATH.parent / "faq.yaml").read_text(encoding="utf-8")
                         .replace(OLD_ANSWER, NEW_ANSWER), encoding="utf-8")
        os.replace(fixed, faq)
        took = wait_for(lambda: services.generation == generation
                        and services.reload_failure is None, what="caught up")
        assert NEW_ANSWER in decide(service.url, headers, "after")
    print(f"\ncaught up {took:.1f}s after the FAQ was fixed")
