"""``tierline serve --workers 2``: every worker process logs like a single-process service
(formatted lines, INFO and access logs, phone numbers masked), and the workers die with their
parent when it is killed with ``kill -9`` (they used to live on as orphans).

Real processes on a free port of 127.0.0.1, SQLite, a fake Graph API; every process started is
stopped by its PID.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.net import free_port, wait_ready
from tests.serving.conftest import alive, process_env, stop_service as stop
from tests.serving.fakes import CUSTOMER, FakeGraphAPI, envelope, message, sign

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: ")
DEFAULT_FORMATS = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)[: ]")


def workers_of(parent: int) -> set[int]:
    """The uvicorn worker processes (spawned children) of ``parent``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"multiprocessing" in cmdline and b"resource_tracker" not in cmdline:
            found.add(int(entry.name))
    return found


def start(tmp_path: Path, graph: FakeGraphAPI, log_path: Path) -> tuple[subprocess.Popen, str]:
    """``tierline serve --workers 2``; returns the process and its URL once both workers run."""
    port = free_port()
    env = process_env(f"sqlite:///{tmp_path / 'tierline.db'}", graph.url, TIERLINE_PORT=str(port),
                      TIERLINE_LOG_LEVEL="INFO", TIERLINE_WHATSAPP_RETRY_BASE_SECONDS="0.05",
                      TIERLINE_CONSOLE_SECRET="test-console-secret",
                      # Not a temporary folder: the kill -9 test leaves its parent no time to
                      # remove one.
                      TIERLINE_METRICS_DIR=str(tmp_path / "metrics"))
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "tierline", "serve", "--workers", "2"],
                                env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, timeout=120)
    deadline = time.monotonic() + 120
    while len(workers_of(proc.pid)) < 2:
        assert time.monotonic() < deadline, "two workers did not start"
        time.sleep(0.2)
    time.sleep(5.0)  # /readyz answers once the first worker is ready: give the other time
    return proc, url


def test_every_worker_logs_formatted_masked_info_and_access_lines(tmp_path):
    graph = FakeGraphAPI()
    # Meta's error messages can quote the recipient: the first reply fails with one.
    graph.script = [{"status": 500, "code": 131000,
                     "message": f"Recipient {CUSTOMER} temporarily unreachable"}]
    log_path = tmp_path / "service.log"
    proc, url = start(tmp_path, graph, log_path)
    workers = workers_of(proc.pid)
    try:
        raw = httpx.Request("POST", url, json=envelope([message(text="hello")])).content
        for _ in range(4):  # keep-alive off: the deliveries spread over both workers
            r = httpx.get(f"{url}/healthz", headers={"connection": "close"})
            assert r.status_code == 200
        r = httpx.post(f"{url}/webhooks/whatsapp", content=raw, timeout=15,
                       headers={"x-hub-signature-256": sign(raw), "content-type": "application/json"})
        assert r.status_code == 200
        graph.wait_to(CUSTOMER, 1, timeout=30)
    finally:
        stop(proc, workers)
        graph.close()
    logs = log_path.read_text(errors="replace")
    lines = [line for line in logs.splitlines() if line.strip()]
    # A record's message may span lines (alembic's revision titles); a record in another
    # format (logging's "INFO:name:..." or uvicorn's "INFO:     ...") may not appear at all.
    unformatted = [line for line in lines if DEFAULT_FORMATS.match(line)]
    assert LINE.match(lines[0]) and not unformatted, unformatted[:5]
    started = set(re.findall(r"INFO uvicorn.error: Started server process \[(\d+)\]", logs))
    assert started == {str(pid) for pid in workers}, (started, workers)
    assert re.search(r"INFO tierline\.serving\.queue\.sender: outbound \d+: retry in .*Recipient 44770\*+ ", logs)
    assert re.search(r'INFO uvicorn\.access: 127\.0\.0\.1:\d+ - "POST /webhooks/whatsapp '
                     r'HTTP/1\.1" 200', logs)
    assert CUSTOMER not in logs
    print(f"\n{len(lines)} log lines from the parent and workers {sorted(workers)}, all formatted")


def test_workers_die_with_their_parent_on_kill_9(tmp_path):
    graph = FakeGraphAPI()
    proc, _ = start(tmp_path, graph, tmp_path / "service.log")
    workers = workers_of(proc.pid)
    try:
        assert len(workers) == 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        killed = time.monotonic()
        while any(alive(pid) for pid in workers) and time.monotonic() - killed < 30:
            time.sleep(0.1)
        gone_after = time.monotonic() - killed
        left = [pid for pid in workers if alive(pid)]
        assert not left, f"workers {left} outlived their parent by {gone_after:.1f}s"
        print(f"\nparent killed with SIGKILL; both workers gone {gone_after:.2f}s later")
    finally:
        stop(proc, workers)
        graph.close()
