"""``tierline bench http`` (part of ``make bench``): the end-to-end figure.

The service as ``make run`` starts it (``tierline serve``, its own processes, N uvicorn
workers) on a fresh PostgreSQL database, replies going out to a fake Graph API (its own
process); for each number of processes (one vs two): a closed-loop ceiling, open-loop signed
deliveries at increasing rates (accepted msg/s, webhook p50/p99, delivery-to-reply p50/p99
measured at the fake Graph API), ``/v1/analyze`` and ``/v1/decide`` at concurrency 1, 16 and
64, CPU seconds per 1,000 messages (service, PostgreSQL, load generator, from /proc); and a
py-spy profile of the service (first process count, highest rate).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tierline import children
from tierline.bench.fake_graph import STATUS_SEQUENCE, serve_fake_graph
from tierline.bench.load import (
    PHONE_NUMBER_ID,
    SECRET,
    TRANSPORT_ERRORS,
    RawPool,
    fire,
    fire_at_rate,
    free_port,
    run_async,
    wait_ready,
    wait_ready_port,
)
from tierline.bench.meters import CpuMeter
from tierline.bench.postgres import fresh_postgres_database
from tierline.bench.profiler import profile_service, summarise_profile
from tierline.serving.api_keys import create_api_key
from tierline.serving.storage.db import Database
from tierline.training.timing import machine_info, percentile

log = logging.getLogger(__name__)

#: Meta allows up to 1,000 messages/s per number after upgrades (80 by default): the bench
#: sends at the upgraded rate, so the send rate limit does not cap delivery-to-reply.
BENCH_SEND_RATE = 1000.0
DECIDE_TEXTS = ("where is my order?", "ND-100000", "I was charged twice", "how long does shipping take?",
                "this is useless, nothing works!!!", "thanks")


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
        # Its own process group, stopped with its workers when the bench ends or is stopped.
        self.proc = children.start([sys.executable, "-m", "tierline", "serve"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_ready(self.url)
            if workers > 1:  # /readyz answers as soon as the first worker process is ready
                time.sleep(5.0)
        except RuntimeError:
            children.stop(self.proc, grace=0)
            raise RuntimeError(self.proc.stderr.read().decode(errors="replace")[-2000:]) from None
        # The inference APIs need a key, made as `tierline api-keys add` makes one.
        db = Database(database_url)
        try:
            self.api_key = create_api_key(db, "bench", ["analyze", "decide"])[1]
        finally:
            db.dispose()

    def close(self) -> None:
        children.stop(self.proc, grace=30)


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
    report: dict = {"machine": machine_info(), "load_at_start": Path("/proc/loadavg").read_text().split()[:3],
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
                        spy = profile_service(service.proc.pid, seconds, out_dir / "http_bench_profile.txt")
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

