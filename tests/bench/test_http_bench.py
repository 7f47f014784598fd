"""``tierline bench http``'s report and its comparison with a baseline tree (``--baseline``).

The tables are built from small hand-made reports (pure functions); one real run, on
PostgreSQL (``TIERLINE_TEST_POSTGRES_URL``, as ``.ci/run`` sets it), starts the service twice
over real HTTP, once as the baseline (this very tree, through ``PYTHONPATH`` and its working
directory, and its own ``tierline api-keys add``) and once as the current tree, at tiny sizes.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from tierline.bench.http import comparison_log_lines, comparison_rows, http_bench_markdown, run_http_bench
from tierline.bench.profiler import summarise_profile

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("TIERLINE_TEST_POSTGRES_URL")
MACHINE = {"cpu": "Test CPU", "cores": "2", "python": "3.11.7"}


def webhook(rate: float | None, accepted: float, *, round_: int | None = None, statuses: bool = False,
            p99: float = 20.0, cpu: float = 4.0) -> dict:
    """A webhook step as ``webhook_step`` reports it (closed loop when ``rate`` is None)."""
    mode = "open loop" if rate else "closed loop, concurrency 64"
    step = {"processes": 1, "mode": mode + (" + 3 statuses a reply" if statuses else ""),
            "status_deliveries": {"acknowledged": 30} if statuses else {},
            "offered_per_s": rate, "messages": 100, "accepted_per_s": accepted,
            "processed_per_s": accepted - 1, "webhook_p50_ms": 5.0, "webhook_p99_ms": p99,
            "reply_p50_ms": 80.0, "reply_p99_ms": 200.0, "answered": 100, "duplicated_replies": 0,
            "connection_errors_retried": 0, "cpu_s_per_1000_service": cpu,
            "cpu_s_per_1000_postgres": 1.0, "cpu_s_per_1000_loadgen": 0.3}
    return step if round_ is None else {"round": round_, **step}


def api(path: str, concurrency: int, per_s: float, *, round_: int | None = None) -> dict:
    step = {"processes": 1, "path": path, "concurrency": concurrency, "requests": 100,
            "per_s": per_s, "p50_ms": 2.0, "p99_ms": 9.0, "cpu_s_per_1000_service": 3.0,
            "cpu_s_per_1000_postgres": 0.5, "cpu_s_per_1000_loadgen": 0.2}
    return step if round_ is None else {"round": round_, **step}


def tree(closed: tuple[float, float], at_100: tuple[float, float], decide: tuple[float, float],
         cpu: tuple[float, float]) -> dict:
    """Two rounds of one tree's steps."""
    return {"scale_out": [webhook(None, closed[r], round_=r + 1) for r in range(2)],
            "webhook": [s for r in range(2) for s in (
                webhook(100, at_100[r], round_=r + 1, cpu=cpu[r]),
                webhook(100, 100, round_=r + 1, statuses=True, p99=60.0))],
            "api": [api("/v1/decide", 64, decide[r], round_=r + 1) for r in range(2)],
            "profile": []}


def compared_report() -> dict:
    report = {"machine": MACHINE, "load_at_start": ["0.5", "0.6", "0.7"], "load_at_end": ["1.0", "1.1", "1.2"],
              "send_rate": 1000.0, "closed_messages": 2000, "rounds": 2,
              "source": {"path": "/src/current", "commit": "fee5566"},
              **tree(closed=(848, 987), at_100=(99, 101), decide=(330, 357), cpu=(6.6, 7.3)),
              "baseline": {"source": {"path": "/tmp/before", "commit": "32e4c99"},
                           **tree(closed=(1696, 1880), at_100=(100, 100), decide=(377, 337),
                                  cpu=(6.8, 7.5))}}
    report["profile"] = [{"kind": "self", "function": "encode (json/encoder.py)", "pct": 3.0}]
    return report


def test_the_comparison_takes_each_trees_median_over_rounds_and_their_ratio():
    rows = {(r["step"], r["metric"]): r for r in comparison_rows(compared_report())}
    closed = rows[("closed loop", "accepted_per_s")]
    assert closed["baseline"] == {"rounds": [1696, 1880], "median": 1788}
    assert closed["current"] == {"rounds": [848, 987], "median": 917.5}
    assert closed["ratio"] == pytest.approx(917.5 / 1788)
    cpu = rows[("100 msg/s", "cpu_s_per_1000_service")]
    assert cpu["current"]["median"] == pytest.approx(6.95) and cpu["ratio"] == pytest.approx(6.95 / 7.15)
    # The step with statuses at the same rate is a step of its own, not a third round.
    assert rows[("100 msg/s + statuses", "webhook_p99_ms")]["current"]["rounds"] == [60.0, 60.0]
    assert rows[("/v1/decide c=64", "per_s")]["baseline"]["rounds"] == [377, 337]
    # Every metric the brief asks for, for each webhook step and each API step.
    assert {m for s, m in rows if s == "closed loop"} >= {
        "accepted_per_s", "processed_per_s", "webhook_p50_ms", "webhook_p99_ms", "reply_p50_ms",
        "reply_p99_ms", "cpu_s_per_1000_service"}
    assert {m for s, m in rows if s == "/v1/decide c=64"} >= {"per_s", "p50_ms", "p99_ms", "cpu_s_per_1000_service"}
    # The steps in the order they ran: closed loop, open loop, with statuses, then the APIs.
    assert list(dict.fromkeys(s for s, _ in rows)) == [
        "closed loop", "100 msg/s", "100 msg/s + statuses", "/v1/decide c=64"]


def test_the_markdown_puts_medians_rounds_and_ratios_side_by_side():
    md = http_bench_markdown(compared_report())
    assert "load average at start 0.5 0.6 0.7" in md and "Test CPU, 2 cores" in md
    assert "`/tmp/before` (32e4c99)" in md and "`/src/current` (fee5566)" in md
    assert "| processes | step | metric | baseline | current | current / baseline |" in md
    assert "| 1 | closed loop | accepted msg/s | 1788 (1696 / 1880) | 918 (848 / 987) | 0.51 |" in md
    assert "| 1 | /v1/decide c=64 | req/s | 357 (377 / 337) | 344 (330 / 357) | 0.96 |" in md
    assert "| 1 | 100 msg/s | service CPU s per 1,000 | 7.15 (6.80 / 7.50) | 6.95 (6.60 / 7.30) | 0.97 |" in md
    # Every run's own figures follow, each row naming its tree and round.
    assert "| baseline 2 | 1 | closed loop, concurrency 64 | 1880 |" in md
    assert "| current 1 | 1 | `/v1/decide` | 64 | 100 | 330 |" in md
    lines = comparison_log_lines(comparison_rows(compared_report()))
    assert lines[0].startswith("1 process(es), closed loop: accepted msg/s 1788 (1696 / 1880) → "
                               "918 (848 / 987) (×0.51); answered msg/s")


def test_a_ratio_over_a_missing_baseline_figure_is_nan_not_an_error():
    report = compared_report()
    for step in report["baseline"]["scale_out"]:
        step["reply_p99_ms"] = float("nan")  # no reply at all in that step
    row = next(r for r in comparison_rows(report) if r["step"] == "closed loop" and r["metric"] == "reply_p99_ms")
    assert math.isnan(row["baseline"]["median"]) and math.isnan(row["ratio"])
    assert "| nan (nan / nan) | 200 (200 / 200) | nan |" in http_bench_markdown(report)


def test_without_a_baseline_one_rounds_report_has_todays_tables():
    report = {"machine": MACHINE, "load_at_start": ["0.5", "0.6", "0.7"], "load_at_end": ["1.0", "1.1", "1.2"],
              "send_rate": 1000.0, "closed_messages": 2000, "rounds": 1,
              "source": {"path": "/src/current", "commit": "fee5566"},
              "scale_out": [webhook(None, 900)], "webhook": [webhook(100, 100)],
              "api": [api("/v1/analyze", 1, 300)], "profile": []}
    md = http_bench_markdown(report)
    assert "Baseline" not in md and "Medians" not in md and "| run " not in md
    assert "the closed loop sends 2000 messages" in md
    assert "| 1 | 100 | 100 | 99 | 5.0 / 20.0 | 80 / 200 | 100/100 | 0 | 0 | 4.0 / 1.0 / 0.3 |" in md
    assert "| 1 | closed loop, concurrency 64 | 900 | 899 |" in md
    assert "| 1 | `/v1/analyze` | 1 | 100 | 300 | 2.0 / 9.0 | 3.0 / 0.5 / 0.2 |" in md


@pytest.mark.skipif(not POSTGRES_URL, reason="needs PostgreSQL: TIERLINE_TEST_POSTGRES_URL")
def test_a_real_run_against_a_baseline_tree_runs_both_services_and_compares_them(tmp_path):
    report = run_http_bench(POSTGRES_URL, [20.0], 1.0, [1], 8, tmp_path, profile=False,
                            closed_messages=40, baseline=ROOT, rounds=1)
    assert report["baseline"]["source"]["path"] == str(ROOT) and report["rounds"] == 1
    for side in (report["baseline"], report):
        [closed] = side["scale_out"]
        assert closed["messages"] == 40 and closed["answered"] == 40 and closed["round"] == 1
        [open_loop] = side["webhook"]
        assert open_loop["offered_per_s"] == 20.0 and open_loop["answered"] == 20
        assert [(s["path"], s["concurrency"]) for s in side["api"]] == [
            (p, c) for p in ("/v1/analyze", "/v1/decide") for c in (1, 16, 64)]
    rows = report["comparison"]
    assert {r["step"] for r in rows} == {"closed loop", "20 msg/s", *(
        f"{p} c={c}" for p in ("/v1/analyze", "/v1/decide") for c in (1, 16, 64))}
    assert all(r["ratio"] > 0 for r in rows if r["metric"] in ("accepted_per_s", "per_s"))
    assert json.loads((tmp_path / "http_bench.json").read_text())["comparison"]
    md = (tmp_path / "http_bench.md").read_text()
    assert "| processes | step | metric | baseline | current | current / baseline |" in md
    assert "| baseline 1 | 1 | closed loop" in md and "| current 1 | 1 | closed loop" in md


def test_the_profile_summary_finds_tierlines_own_functions_in_old_and_new_trees(tmp_path):
    """A baseline before the ``tierline`` package had top-level ``serving/``; now it is
    ``tierline/serving/``: both count as tierline's own functions."""
    raw = tmp_path / "profile.txt"
    raw.write_text("run (uvicorn/main.py:1);JobWorker.step (tierline/serving/queue/worker.py:10);"
                   "encode (json/encoder.py:3) 3\n"
                   "run (uvicorn/main.py:1);JobWorker.step (serving/worker.py:235) 1\n")
    own = [p["function"] for p in summarise_profile(raw) if p["kind"] == "tierline, inclusive"]
    assert own == ["JobWorker.step (tierline/serving/queue/worker.py:10)", "JobWorker.step (serving/worker.py:235)"]
