"""Latency and throughput of the NLU model: ONNX int8 vs ONNX fp32 vs torch eager, one run.

Every engine does the same work per call: clean the text, tokenise with ``tokenizers``, compute
the cues, run both heads. The shipped int8 bundle is timed as it ships. The fp32 ONNX graphs
(plain and fused) and torch eager use the same architecture built from the base encoder
weights: their speed does not depend on the weight values, so ``make bench`` runs on a fresh
clone without a training run (accuracy of int8 vs fp32 is measured by the training pipeline).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from nlu.analyzer import Analyzer, make_tokenizer
from nlu.bundle import (
    DEFAULT_BUNDLE_DIR,
    FP32_MODEL_FILE,
    TOKENIZER_FILE,
    load_bundle_config,
)
from nlu.cues import CUE_NAMES
from nlu.labels import INTENT_LABELS
from training.data import load_frustration_data, load_intent_data
from training.export_onnx import export_fp32, fuse_transformer_ops
from training.modeling import (
    DEFAULT_ENCODER_NAME,
    IntentFrustrationModel,
    default_encoder_path,
)
from training.trainer import encode_batch

log = logging.getLogger(__name__)

FUSED_FILE = "model.fused.fp32.onnx"


def sample_messages(n: int, seed: int = 7) -> list[str]:
    """``n`` real messages (intent and frustration test texts, so real length spread)."""
    texts = list(load_intent_data()["test"]["text"]) + list(load_frustration_data()["test"]["text"])
    rng = np.random.default_rng(seed)
    return [texts[i] for i in rng.choice(len(texts), size=min(n, len(texts)), replace=False)]


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
            "onnxruntime": ort.__version__, "torch": torch.__version__,
            "platform": platform.platform()}


def latency_ms(run: Callable[[list[str]], object], messages: list[str], warmup: int = 20
               ) -> dict[str, float]:
    """Batch-1 latency over every message: median, p99, mean (milliseconds)."""
    for m in messages[:warmup]:
        run([m])
    samples = []
    for m in messages:
        t0 = time.perf_counter()
        run([m])
        samples.append((time.perf_counter() - t0) * 1000)
    return {"p50": statistics.median(samples), "p99": float(np.percentile(samples, 99)),
            "mean": statistics.fmean(samples)}


def throughput(run: Callable[[list[str]], object], messages: list[str], batch: int) -> float:
    """Messages per second when scoring ``messages`` in batches of ``batch``.

    Messages are sorted by length first, as ``Analyzer.analyze`` does for a batch job, so a
    batch is padded to similar lengths; every engine gets the same batches.
    """
    messages = sorted(messages, key=len)
    run(messages[:batch])
    t0 = time.perf_counter()
    for i in range(0, len(messages), batch):
        run(messages[i : i + batch])
    return len(messages) / (time.perf_counter() - t0)


def encoder_of(model_dir: Path) -> Path:
    """The encoder folder a bundle was trained from, for the torch and fp32 engines of the same
    architecture: the MiniLM package's when the bundle names it as its base encoder, else the
    folder its ``training.json`` recorded (e.g. ``runs/encoders/e5-small-pruned``)."""
    base = load_bundle_config(model_dir).base_encoder
    if base == DEFAULT_ENCODER_NAME:
        return default_encoder_path()
    info = model_dir / "training.json"
    recorded = json.loads(info.read_text()).get("encoder_path") if info.exists() else None
    if recorded and Path(recorded).is_dir():
        return Path(recorded)
    raise FileNotFoundError(f"{model_dir} was trained from {base} at {recorded}: build it (e5: "
                            "`tierline train encoder-e5`) or pass --encoder")


def build_engines(model_dir: Path, work: Path, threads: int, encoder: Path | None = None
                  ) -> dict[str, Callable[[list[str]], object]]:
    """The four engines, each a ``texts -> logits`` callable using ``threads`` threads.

    The torch and fp32 engines have the bundle's architecture with the encoder's weights and
    fresh heads: their speed, not their outputs, is compared."""
    torch.set_num_threads(threads)
    model = IntentFrustrationModel.from_pretrained(encoder or encoder_of(model_dir),
                                                   len(INTENT_LABELS), len(CUE_NAMES)).eval()
    if not (work / FUSED_FILE).exists():
        export_fp32(model, work / FP32_MODEL_FILE, len(CUE_NAMES))
        fuse_transformer_ops(work / FP32_MODEL_FILE, work / FUSED_FILE,
                             model.encoder.config.num_attention_heads,
                             model.encoder.config.hidden_size)
        for name in (TOKENIZER_FILE, "config.json"):
            (work / name).write_bytes((model_dir / name).read_bytes())
    max_length = load_bundle_config(model_dir).max_length
    tokenizer = make_tokenizer(model_dir / TOKENIZER_FILE, max_length)

    @torch.inference_mode()
    def torch_eager(texts: list[str]) -> object:
        return model(**encode_batch(tokenizer, texts))

    def onnx(bundle: Path, file: str | None) -> Callable[[list[str]], object]:
        return Analyzer.load(bundle, model_file=file, threads=threads, batch_size=1024).raw_logits

    return {
        "onnx_int8_fused (shipped)": onnx(model_dir, None),
        "onnx_fp32_fused": onnx(work, FUSED_FILE),
        "onnx_fp32": onnx(work, FP32_MODEL_FILE),
        "torch_eager_fp32": torch_eager,
    }


def bench_nlu(model_dir: Path | None = None, n_messages: int = 1000,
              out_dir: Path = Path("reports"), threads_list: tuple[int, ...] = (1, 2),
              encoder: Path | None = None) -> dict:
    """Run the benchmark, print the table, write ``reports/nlu_bench.json``."""
    model_dir = Path(model_dir or DEFAULT_BUNDLE_DIR)
    out_dir.mkdir(parents=True, exist_ok=True)
    messages = sample_messages(n_messages)
    lengths = [len(m) for m in messages]
    result: dict = {"machine": machine_info(), "messages": len(messages),
                    "chars_p50": statistics.median(lengths), "chars_max": max(lengths), "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        for threads in threads_list:
            engines = build_engines(model_dir, Path(tmp), threads, encoder)
            for name, run in engines.items():
                lat = latency_ms(run, messages)
                row = {"engine": name, "threads": threads, **{f"{k}_ms": v for k, v in lat.items()},
                       "msgs_per_s_b32": throughput(run, messages, 32),
                       "msgs_per_s_b64": throughput(run, messages, 64)}
                log.info("%s", row)
                result["rows"].append(row)
    for row in result["rows"]:
        ref = next(r for r in result["rows"]
                   if r["engine"] == "torch_eager_fp32" and r["threads"] == row["threads"])
        row["speedup_p50_vs_torch"] = ref["p50_ms"] / row["p50_ms"]
        row["speedup_b64_vs_torch"] = row["msgs_per_s_b64"] / ref["msgs_per_s_b64"]
    (out_dir / "nlu_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    table = format_table(result)
    (out_dir / "nlu_bench.md").write_text(table + "\n")
    print(table)  # the benchmark's product is this table on stdout
    return result


def format_table(result: dict) -> str:
    """A Markdown table of the benchmark with the machine it ran on."""
    m = result["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, onnxruntime "
             f"{m['onnxruntime']}, torch {m['torch']}. {result['messages']} real messages "
             f"(median {result['chars_p50']} chars, max {result['chars_max']}).", "",
             "| engine | threads | p50 ms | p99 ms | msgs/s b32 | msgs/s b64 | p50 speed-up vs torch | b64 speed-up vs torch |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['engine']} | {r['threads']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{r['msgs_per_s_b32']:.0f} | {r['msgs_per_s_b64']:.0f} | "
                     f"{r['speedup_p50_vs_torch']:.2f}x | {r['speedup_b64_vs_torch']:.2f}x |")
    return "\n".join(lines)


def bench_turns(n_messages: int = 1000, out_dir: Path = Path("reports")) -> dict:
    """Latency of whole turns (NLU + policy + bot, one thread) over real messages.

    Messages are played as conversations of four turns each, so states carry history,
    counters and FAQ/order look-ups as they do in production.
    """
    from datetime import datetime, timezone

    from nlu.engine import TurnEngine

    out_dir.mkdir(parents=True, exist_ok=True)
    engine = TurnEngine.load(analyzer=Analyzer.load(threads=1))
    messages = sample_messages(n_messages, seed=11)
    now = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)
    for m in messages[:20]:  # warm-up
        engine.turn(engine.new_state("warm"), m, now=now)
    samples = []
    state = engine.new_state("bench-0")
    for i, m in enumerate(messages):
        if i % 4 == 0:
            state = engine.new_state(f"bench-{i}", tier=("standard", "premium", "vip")[i % 3])
        t0 = time.perf_counter()
        state = engine.turn(state, m, now=now).state
        samples.append((time.perf_counter() - t0) * 1000)
    result = {"machine": machine_info(), "turns": len(samples),
              "p50_ms": statistics.median(samples), "p99_ms": float(np.percentile(samples, 99)),
              "mean_ms": statistics.fmean(samples), "max_ms": max(samples)}
    (out_dir / "turn_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    line = (f"whole turn (NLU + policy + bot), 1 thread, {len(samples)} real messages on "
            f"{result['machine']['cpu']}: p50 {result['p50_ms']:.2f} ms, "
            f"p99 {result['p99_ms']:.2f} ms, max {result['max_ms']:.2f} ms")
    (out_dir / "turn_bench.md").write_text(line + "\n")
    print(line)  # the benchmark's product is this line on stdout
    return result
