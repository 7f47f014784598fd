"""Latency and throughput of in-process engines (callables that score a list of texts), and
the machine the figures were measured on.

Used by the bundle comparison (``compare_models``) and by the benchmarks (package ``bench``,
which imports ``training``, never the other way). Imports no tierline package and no torch.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile of ``values`` (NaN when there are none)."""
    return float(np.percentile(values, q)) if values else float("nan")


def latency_ms(run: Callable[[list[str]], object], messages: list[str], warmup: int = 20
               ) -> dict[str, float]:
    """Batch-1 latency over every message: median, p99, mean (milliseconds)."""
    return interleaved_latency_ms({"run": run}, messages, warmup)["run"]


def interleaved_latency_ms(engines: dict[str, Callable[[list[str]], object]], messages: list[str],
                           warmup: int = 20, seed: int = 3) -> dict[str, dict[str, float]]:
    """Batch-1 latency of several engines measured side by side: each message is timed on every
    engine, in a shuffled order per message, so a slower minute of a shared machine falls on
    all engines alike (the ratios hold even when the absolute figures drift)."""
    rng = np.random.default_rng(seed)
    names = list(engines)
    for m in messages[:warmup]:
        for name in names:
            engines[name]([m])
    samples: dict[str, list[float]] = {name: [] for name in names}
    for m in messages:
        for k in rng.permutation(len(names)):
            t0 = time.perf_counter()
            engines[names[k]]([m])
            samples[names[k]].append((time.perf_counter() - t0) * 1000)
    return {name: {"p50": statistics.median(v), "p99": percentile(v, 99),
                   "mean": statistics.fmean(v)} for name, v in samples.items()}


def interleaved_throughput(engines: dict[str, Callable[[list[str]], object]],
                           messages: list[str], per_message: set[str], rounds: int = 3
                           ) -> dict[str, float]:
    """Median msgs/s of each engine over ``rounds`` rounds, the engines alternating within each
    round (see :func:`throughput`)."""
    runs: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(rounds):
        for name, score in engines.items():
            runs[name].append(throughput(score, messages, 64, sort=name not in per_message))
    return {name: statistics.median(v) for name, v in runs.items()}


def throughput(score: Callable[[list[str]], object], messages: list[str], batch: int = 64,
               sort: bool = True) -> float:
    """Messages per second when ``score`` gets ``messages`` in calls of ``batch``.

    Padded-batch engines get their messages sorted by length first (as the old batched
    Analyzer did), so a batch is padded to similar lengths; per-message engines need not.
    """
    messages = sorted(messages, key=len) if sort else list(messages)
    score(messages[:batch])
    t0 = time.perf_counter()
    for i in range(0, len(messages), batch):
        score(messages[i : i + batch])
    return len(messages) / (time.perf_counter() - t0)


def machine_info() -> dict[str, str]:
    """What the figures were measured on."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": str(os.cpu_count()), "python": platform.python_version(),
            "onnxruntime": ort.__version__,
            "platform": platform.platform()}
