"""``tierline bench http`` (part of ``make bench``): the end-to-end figure.

The service as ``make run`` starts it (``tierline serve``, its own processes, N uvicorn
workers) on a fresh PostgreSQL database, replies going out to a fake Graph API (its own
process); for each number of processes (one vs two): a closed-loop ceiling, open-loop signed
deliveries at increasing rates (accepted msg/s, webhook p50/p99, delivery-to-reply p50/p99
measured at the fake Graph API), ``/v1/analyze`` and ``/v1/decide`` at concurrency 1, 16 and
64, CPU seconds per 1,000 messages (service, PostgreSQL, load generator, from /proc); and a
py-spy profile of the service (first process count, highest rate, an extra step after the others).

``--baseline PATH`` compares another checkout of the project (an older commit's worktree) with
this tree in one sitting: its service is the same interpreter running PATH's code (PATH first
on ``PYTHONPATH``, and the working directory), driven by this tree's load generator, fake Graph
API and meters; the whole step sequence runs ``--rounds`` times per tree, alternately baseline,
current, ..., each on a fresh database, and the report shows each tree's medians over rounds,
every round's value and the ratio current / baseline (``comparison_rows``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import statistics
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

    def __init__(self, database_url: str, graph_url: str, workers: int,
                 source: Path | None = None) -> None:
        """``source``: another checkout of the project whose code the service runs (the
        baseline of ``--baseline``): the same interpreter, with ``source`` first on
        ``PYTHONPATH`` and as the working directory. None: this tree, as today."""
        self.source = source
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "TIERLINE_DATABASE_URL": database_url, "TIERLINE_PORT": str(self.port),
               "TIERLINE_WORKERS": str(workers), "TIERLINE_LOG_LEVEL": "WARNING",
               "TIERLINE_WHATSAPP_APP_SECRET": SECRET, "TIERLINE_WHATSAPP_VERIFY_TOKEN": "bench",
               "TIERLINE_WHATSAPP_ACCESS_TOKEN": "bench-token",
               "TIERLINE_WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
               "TIERLINE_WHATSAPP_API_BASE": graph_url,
               "TIERLINE_WHATSAPP_SEND_RATE": str(BENCH_SEND_RATE)}
        if source is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(source), *filter(None, [env.get("PYTHONPATH")])])
        self.env = env
        # Its own process group, stopped with its workers when the bench ends or is stopped.
        self.proc = children.start([sys.executable, "-m", "tierline", "serve"], env=env,
                                   cwd=source, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_ready(self.url)
            if workers > 1:  # /readyz answers as soon as the first worker process is ready
                time.sleep(5.0)
        except RuntimeError:
            children.stop(self.proc, grace=0)
            raise RuntimeError(self.proc.stderr.read().decode(errors="replace")[-2000:]) from None
        # The inference APIs need a key, made as `tierline api-keys add` makes one.
        self.api_key = self._api_key(database_url) if source is None else self._baseline_api_key()

    @staticmethod
    def _api_key(database_url: str) -> str:
        db = Database(database_url)
        try:
            return create_api_key(db, "bench", ["analyze", "decide"])[1]
        finally:
            db.dispose()

    def _baseline_api_key(self) -> str:
        """The baseline's key, made by its own ``tierline api-keys add`` (on its own schema:
        the ``api_keys`` table and the CLI command exist since migration 0005)."""
        done = subprocess.run([sys.executable, "-m", "tierline", "api-keys", "add", "--name", "bench",
                               "--scopes", "analyze,decide"], env=self.env, cwd=self.source,
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0 or not done.stdout.strip():
            self.close()
            raise RuntimeError(f"tierline api-keys add in {self.source}: {done.stderr[-2000:]}")
        return done.stdout.strip().splitlines()[-1]

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
                   status_rates: tuple[float, ...] = (), closed_messages: int = 2000,
                   baseline: Path | None = None, rounds: int | None = None) -> dict:
    """The whole end-to-end benchmark; writes ``http_bench.json`` / ``.md`` to ``out_dir``.

    With ``baseline`` (another checkout of the project) the whole step sequence runs
    ``rounds`` times (default 2) for each tree, alternately baseline, current, baseline, ...,
    each time on a fresh database, with this tree's load generator, fake Graph API and meters;
    the report then compares the medians over rounds (``comparison_rows``)."""
    import multiprocessing

    rounds = rounds or (2 if baseline is not None else 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request costs CPU here
    graph_port = free_port()
    graph_url = f"http://127.0.0.1:{graph_port}"
    graph = multiprocessing.get_context("spawn").Process(target=serve_fake_graph, args=(graph_port,),
                                                         daemon=True)
    graph.start()
    report: dict = {"machine": machine_info(), "load_at_start": Path("/proc/loadavg").read_text().split()[:3],
                    "send_rate": BENCH_SEND_RATE, "closed_messages": closed_messages,
                    "rounds": rounds, "source": _tree(Path(__file__).resolve().parents[2]),
                    "webhook": [], "api": [], "scale_out": [], "profile": []}
    trees: list[tuple[str, Path | None, dict]] = [("current", None, report)]
    if baseline is not None:
        report["baseline"] = {"source": _tree(baseline), "webhook": [], "api": [], "scale_out": [],
                              "profile": []}
        trees.insert(0, ("baseline", baseline, report["baseline"]))
    multi = baseline is not None or rounds > 1
    sequence = _Sequence(graph_url, rates, seconds, status_rates, api_requests, closed_messages)
    try:
        wait_ready_port(graph_port)
        for round_ in range(1, rounds + 1):
            for name, source, into in trees:
                tag = f"[{name} {round_}/{rounds}] " if multi else ""
                for n_workers in workers:
                    with fresh_postgres_database(admin_url) as database_url:
                        service = BenchService(database_url, graph_url, n_workers, source)
                        meter = CpuMeter(service.proc.pid, database_url.rsplit("/", 1)[1])
                        try:
                            steps = sequence.run(service, meter, n_workers, tag)
                            for kind in ("scale_out", "webhook", "api"):
                                into[kind] += [{"round": round_, **s} if multi else s for s in steps[kind]]
                            if profile and n_workers == workers[0] and round_ == 1:
                                suffix = "" if name == "current" else f"_{name}"
                                into["profile"] = sequence.profile(
                                    service, meter, out_dir / f"http_bench_profile{suffix}.txt")
                        finally:
                            service.close()
    finally:
        graph.kill()
    report["load_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    if multi:
        report["comparison"] = comparison_rows(report)
        for line in comparison_log_lines(report["comparison"]):
            log.info("%s", line)
    (out_dir / "http_bench.json").write_text(json.dumps(report, indent=2))
    (out_dir / "http_bench.md").write_text(http_bench_markdown(report))
    return report


def _tree(path: Path) -> dict:
    """A source tree: its path and, when it is a git checkout, its commit."""
    try:
        commit = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=30).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"path": str(path), "commit": commit}


class _Sequence:
    """The step sequence run against one service (one tree, one process count, one round),
    message ids counting on across every run (replies are matched at the fake Graph API by
    message id)."""

    def __init__(self, graph_url: str, rates: list[float], seconds: float,
                 status_rates: tuple[float, ...], api_requests: int, closed_messages: int) -> None:
        self.graph_url, self.rates, self.seconds = graph_url, rates, seconds
        self.status_rates, self.api_requests = status_rates, api_requests
        self.closed_messages = closed_messages
        self.offset = 0

    def _webhook(self, service: BenchService, meter: CpuMeter, *, rate: float | None, n: int,
                 statuses: bool = False) -> dict:
        step = webhook_step(service, self.graph_url, meter, rate=rate, n=n, offset=self.offset,
                            statuses=statuses)
        self.offset += n
        return step

    def run(self, service: BenchService, meter: CpuMeter, n_workers: int, tag: str = "") -> dict:
        """Warm-up, closed loop, each open-loop rate, each rate with statuses, the APIs."""
        steps: dict = {"scale_out": [], "webhook": [], "api": []}
        self._webhook(service, meter, rate=50, n=100)  # warm-up
        closed = self._webhook(service, meter, rate=None, n=self.closed_messages)
        steps["scale_out"].append({"processes": n_workers, **closed})
        log.info("%s%d process(es), closed loop: %s", tag, n_workers, _short(closed))
        for rate in self.rates:
            step = self._webhook(service, meter, rate=rate, n=int(rate * self.seconds))
            steps["webhook"].append({"processes": n_workers, **step})
            log.info("%s%s msg/s: %s", tag, rate, _short(step))
        for rate in self.status_rates:
            step = self._webhook(service, meter, rate=rate, n=int(rate * self.seconds), statuses=True)
            steps["webhook"].append({"processes": n_workers, **step})
            log.info("%s%s msg/s + statuses: %s %s", tag, rate, _short(step), step["status_deliveries"])
        for path in ("/v1/analyze", "/v1/decide"):
            for concurrency in (1, 16, 64):
                n = self.api_requests // 4 if concurrency == 1 else self.api_requests
                step = api_step(service, meter, path, concurrency, n)
                steps["api"].append({"processes": n_workers, **step})
                log.info("%s%s c=%d: %.0f/s p99 %.1f ms", tag, path, concurrency,
                         step["per_s"], step["p99_ms"])
        return steps

    def profile(self, service: BenchService, meter: CpuMeter, out: Path) -> list[dict]:
        """One more step at the highest rate, under py-spy, after the measured ones: where the
        time goes where it matters most, without the profiler's cost in the figures."""
        spy = profile_service(service.proc.pid, self.seconds, out)
        if spy is None:
            return []
        self._webhook(service, meter, rate=max(self.rates), n=int(max(self.rates) * self.seconds))
        spy.wait(self.seconds * 3)
        return summarise_profile(out)


#: What the comparison shows of each step: (key, label, format).
WEBHOOK_METRICS = (("accepted_per_s", "accepted msg/s", "{:.0f}"),
                   ("processed_per_s", "answered msg/s", "{:.0f}"),
                   ("webhook_p50_ms", "webhook p50 ms", "{:.1f}"),
                   ("webhook_p99_ms", "webhook p99 ms", "{:.1f}"),
                   ("reply_p50_ms", "delivery→reply p50 ms", "{:.0f}"),
                   ("reply_p99_ms", "delivery→reply p99 ms", "{:.0f}"),
                   ("cpu_s_per_1000_service", "service CPU s per 1,000", "{:.2f}"),
                   ("cpu_s_per_1000_postgres", "PostgreSQL CPU s per 1,000", "{:.2f}"))
API_METRICS = (("per_s", "req/s", "{:.0f}"),
               ("p50_ms", "p50 ms", "{:.1f}"),
               ("p99_ms", "p99 ms", "{:.1f}"),
               ("cpu_s_per_1000_service", "service CPU s per 1,000", "{:.2f}"),
               ("cpu_s_per_1000_postgres", "PostgreSQL CPU s per 1,000", "{:.2f}"))


def _step_name(step: dict) -> str:
    """Which step of the sequence: the same name in every round and tree."""
    if "path" in step:
        return f"{step['path']} c={step['concurrency']}"
    if step["offered_per_s"] is None:
        return "closed loop"
    return f"{step['offered_per_s']:g} msg/s" + (" + statuses" if "statuses" in step["mode"] else "")


def _median(values: list[float]) -> float:
    return float("nan") if not values or any(math.isnan(v) for v in values) else statistics.median(values)


def comparison_rows(report: dict) -> list[dict]:
    """Per step (process count and step name, in the order they ran) and metric: each tree's
    values, round by round, their median, and the current tree's median over the baseline's."""
    trees = {"current": report} | ({"baseline": report["baseline"]} if "baseline" in report else {})
    rows: list[dict] = []
    for kinds, metrics in ((("scale_out", "webhook"), WEBHOOK_METRICS), (("api",), API_METRICS)):
        steps: dict[tuple[int, str], dict[str, list[dict]]] = {}
        for name, tree in trees.items():
            for kind in kinds:
                for step in tree[kind]:
                    key = (step["processes"], _step_name(step))
                    steps.setdefault(key, {}).setdefault(name, []).append(step)
        for (processes, step_name), by_tree in sorted(steps.items(), key=lambda kv: kv[0][0]):
            for key, label, fmt in metrics:
                row: dict = {"processes": processes, "step": step_name, "metric": key,
                             "label": label, "format": fmt}
                for name in trees:
                    values = [s[key] for s in sorted(by_tree.get(name, []), key=lambda s: s.get("round", 1))]
                    row[name] = {"rounds": values, "median": _median(values)}
                if "baseline" in trees:
                    base, cur = row["baseline"]["median"], row["current"]["median"]
                    row["ratio"] = cur / base if base and not math.isnan(base) else float("nan")
                rows.append(row)
    return rows


def _values(row: dict, tree: str) -> str:
    """'412 (412 / 431)': the median, then each round's value."""
    fmt, side = row["format"], row[tree]
    rounds = " / ".join(fmt.format(v) for v in side["rounds"])
    return fmt.format(side["median"]) + (f" ({rounds})" if len(side["rounds"]) > 1 else "")


def comparison_log_lines(rows: list[dict]) -> list[str]:
    """A line per step: each metric's medians (baseline → current, ratio)."""
    by_step: dict[tuple[int, str], list[str]] = {}
    for row in rows:
        if "baseline" in row:
            text = (f"{row['label']} {_values(row, 'baseline')} → {_values(row, 'current')} "
                    f"(×{row['ratio']:.2f})")
        else:
            text = f"{row['label']} {_values(row, 'current')}"
        by_step.setdefault((row["processes"], row["step"]), []).append(text)
    return [f"{p} process(es), {step}: " + "; ".join(texts) for (p, step), texts in by_step.items()]


def _comparison_markdown(report: dict) -> list[str]:
    rows = comparison_rows(report)
    if "baseline" in report:
        b, c = report["baseline"]["source"], report["source"]
        lines = [f"## Baseline vs current: medians over {report['rounds']} round(s)\n",
                 f"Baseline `{b['path']}` ({b['commit'] or 'not a git checkout'}), current "
                 f"`{c['path']}` ({c['commit'] or 'not a git checkout'}): the whole step sequence "
                 "ran alternately baseline, current, baseline, ..., each on a fresh database, with "
                 "this tree's load generator, fake Graph API and meters. Each cell: the median, "
                 "then every round's value in the order run.\n",
                 "| processes | step | metric | baseline | current | current / baseline |",
                 "|---|---|---|---|---|---|"]
        lines += [f"| {r['processes']} | {r['step']} | {r['label']} | {_values(r, 'baseline')} | "
                  f"{_values(r, 'current')} | {r['ratio']:.2f} |" for r in rows]
    else:
        lines = [f"## Medians over {report['rounds']} rounds\n",
                 "| processes | step | metric | median (each round) |", "|---|---|---|---|"]
        lines += [f"| {r['processes']} | {r['step']} | {r['label']} | {_values(r, 'current')} |"
                  for r in rows]
    return lines


def _short(step: dict) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in step.items()
                     if isinstance(v, float) and not k.startswith("cpu"))


def http_bench_markdown(report: dict) -> str:
    """The report as Markdown tables (with a baseline or several rounds: the medians first,
    side by side, then every run's figures)."""
    m = report["machine"]
    multi = "baseline" in report or report.get("rounds", 1) > 1
    closed = report.get("closed_messages")
    lines = [f"# tierline end-to-end HTTP benchmark\n\n{m['cpu']}, {m['cores']} cores, Python "
             f"{m['python']}; load average at start {' '.join(report['load_at_start'])}, at end "
             f"{' '.join(report['load_at_end'])}. Service: `tierline serve` (PostgreSQL, sending "
             f"at up to {report['send_rate']:.0f} msg/s to a fake Graph API process); the load "
             "generator runs on the same cores" +
             (f"; the closed loop sends {closed} messages" if closed else "") + ".\n"]
    if multi:
        lines += _comparison_markdown(report)
    # Every run's figures: the baseline's first (it ran first in every round).
    trees = ([("baseline", report["baseline"])] if "baseline" in report else []) + [("current", report)]

    def run(name: str, s: dict) -> str:
        return f"| {name} {s.get('round', 1)} " if multi else ""

    head = "| run " if multi else ""
    lines += [("\n" if multi else "") + "## Webhook: signed deliveries, open loop\n",
              head + "| processes | offered msg/s | accepted msg/s | processed msg/s | "
              "webhook p50 / p99 ms | delivery→reply p50 / p99 ms | answered | duplicated | "
              "connection errors (retried) | "
              "CPU s per 1,000 msgs (service / PostgreSQL / load generator) |",
              ("|---" if multi else "") + "|---|---|---|---|---|---|---|---|---|---|"]
    for name, tree in trees:
        for s in tree["webhook"] + tree["scale_out"]:
            offered = s["mode"] if s["offered_per_s"] is None else f"{s['offered_per_s']:.0f}" + (
                " + statuses" if s.get("status_deliveries") else "")
            lines.append(run(name, s) +
                         f"| {s['processes']} | {offered} | {s['accepted_per_s']:.0f} | "
                         f"{s['processed_per_s']:.0f} | "
                         f"{s['webhook_p50_ms']:.1f} / {s['webhook_p99_ms']:.1f} | "
                         f"{s['reply_p50_ms']:.0f} / {s['reply_p99_ms']:.0f} | "
                         f"{s['answered']}/{s['messages']} | "
                         f"{s['duplicated_replies']} | {s.get('connection_errors_retried', 0)} | "
                         f"{s['cpu_s_per_1000_service']:.1f} / "
                         f"{s['cpu_s_per_1000_postgres']:.1f} / {s['cpu_s_per_1000_loadgen']:.1f} |")
    with_statuses = [(name, s) for name, tree in trees for s in tree["webhook"] if s.get("status_deliveries")]
    if with_statuses:
        lines += ["\n\"+ statuses\": after each reply the fake Graph API posts Meta's sent, "
                  "delivered and read statuses, each a signed delivery of its own (answers: " +
                  "; ".join((f"{name} {s.get('round', 1)}, " if multi else "") +
                            f"{s['processes']} process(es) at {s['offered_per_s']:.0f} msg/s: " +
                            ", ".join(f"{n} {k}" for k, n in s["status_deliveries"].items())
                            for name, s in with_statuses) + ")."]
    lines += ["\n## /v1/analyze and /v1/decide, closed loop\n",
              head + "| processes | route | concurrency | requests | req/s | p50 / p99 ms | CPU s per 1,000 "
              "(service / PostgreSQL / load generator) |",
              ("|---" if multi else "") + "|---|---|---|---|---|---|---|"]
    for name, tree in trees:
        for s in tree["api"]:
            lines.append(run(name, s) +
                         f"| {s['processes']} | `{s['path']}` | {s['concurrency']} | {s['requests']} | "
                         f"{s['per_s']:.0f} | {s['p50_ms']:.1f} / {s['p99_ms']:.1f} | "
                         f"{s['cpu_s_per_1000_service']:.1f} / {s['cpu_s_per_1000_postgres']:.1f} / "
                         f"{s['cpu_s_per_1000_loadgen']:.1f} |")
    for name, tree in trees:
        if tree.get("profile"):
            lines += [f"\n## Where the {'baseline ' if name == 'baseline' else ''}service's CPU goes "
                      "(py-spy --gil, an extra step at the highest open-loop rate after the others, "
                      "not in the figures above)\n",
                      "| | function | % of samples |", "|---|---|---|"]
            lines += [f"| {p['kind']} | `{p['function'][:110]}` | {p['pct']:.1f} |" for p in tree["profile"]]
    return "\n".join(lines) + "\n"
