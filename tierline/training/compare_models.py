"""Side-by-side report of NLU bundles: which one ships is decided from this, in one run.

For each bundle: English intent and frustration metrics on our test split, frustration ROC-AUC
(negative vs rest) on the XLM-T validation tweets of each language, batch-1 latency on one
thread, and model size. Beside it, the language detectors (``tierline.nlu.language``) on the same XLM-T
validation texts.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from tierline.nlu.analyzer import BundleAnalyzer
from tierline.nlu.bundle import MULTILINGUAL_BUNDLE_DIR, MULTILINGUAL_POLICY_DIR, load_bundle_config
from tierline.nlu.engine import TurnEngine, TurnResult
from tierline.nlu.labels import OUT_OF_SCOPE
from tierline.nlu.language import guess_language, lingua_scores, stopword_guess
from tierline.training.data import (
    HANDCHECKED_SETS,
    OUT_OF_SCOPE_TEST_FILE,
    XLMT_LANGUAGES,
    load_frustration_data,
    load_intent_data,
    read_handchecked,
    read_intents_test,
    sample_messages,
    xlmt_validation,
)
from tierline.training.evaluate import frustration_metrics, intent_metrics
from tierline.training.timing import latency_ms, machine_info

log = logging.getLogger(__name__)

#: Tuesday 10:00 in Rome: inside business hours, so a handoff is a handoff, not off-hours.
OPEN = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)


def bundle_figures(model_dir: Path, split: str, latency_messages: list[str]) -> dict:
    """The headline figures of one bundle."""
    config = load_bundle_config(model_dir)
    analyzer = BundleAnalyzer.load(model_dir, threads=1)
    intents, frustration = load_intent_data(), load_frustration_data()
    texts, labels = intents[split]["text"], intents[split]["label"]
    results = analyzer.analyze(texts)
    intent = intent_metrics(labels, [r.intent for r in results],
                            np.array([r.intent_confidence for r in results]))
    f_texts, f_y = frustration[split]["text"], np.array(frustration[split]["label"])
    f_score = np.array([r.frustration for r in analyzer.analyze(f_texts)])
    frus = frustration_metrics(f_y, f_score, config.frustration_threshold,
                               frustration[split]["source"])
    by_language = {}
    for code, (x_texts, x_y) in xlmt_validation().items():
        _, logit = analyzer.raw_logits(x_texts)
        by_language[code] = round(float(roc_auc_score(x_y, logit)), 4)
    handchecked = {}
    for name, path in HANDCHECKED_SETS.items():
        checked = [r for r in read_handchecked(path) if r["intent"]]
        right = defaultdict(list)
        for row, result in zip(checked, analyzer.analyze([r["text"] for r in checked])):
            right[row["language"]].append(result.intent == row["intent"])
        handchecked[name] = {lang: round(float(np.mean(v)), 4) for lang, v in sorted(right.items())}
    latency = latency_ms(lambda batch: analyzer.analyze(batch), latency_messages)
    size_mb = (Path(model_dir) / config.model_file).stat().st_size / 2**20
    return {
        "base_encoder": config.base_encoder,
        "model_mb": round(size_mb, 1),
        "english_intent_accuracy": round(intent["accuracy"], 4),
        "english_intent_macro_f1": round(intent["macro_f1"], 4),
        "english_oos_recall": round(intent["oos_recall"], 4),
        "english_intent_ece": round(intent["ece"], 4),
        "english_frustration_roc_auc": round(frus["roc_auc"], 4),
        "english_frustration_f1": round(frus["f1_at_threshold"], 4),
        "xlmt_val_frustration_roc_auc": by_language,
        "handchecked_it_es_pt_intent_accuracy": handchecked,
        "it_es_pt_intents_test": intents_test_figures(analyzer),
        "latency_batch1_1thread_ms": {k: round(v, 2) for k, v in latency.items()},
    }


def intents_test_figures(analyzer: BundleAnalyzer) -> dict:
    """Intent accuracy per language on the it/es/pt intent test set (``read_intents_test``), and
    out-of-scope recall on its out-of-scope rows with the out-of-scope test set's: a shop's
    question the model calls a supported intent is answered by the FAQ instead of counting as
    a failed bot reply."""
    rows = read_intents_test()
    extra = read_intents_test(OUT_OF_SCOPE_TEST_FILE)
    results = analyzer.analyze([r["text"] for r in rows + extra])
    right, oos, in_scope_called_oos = defaultdict(list), defaultdict(list), defaultdict(list)
    for i, (row, result) in enumerate(zip(rows + extra, results)):
        lang, called_oos = row["language"], result.intent == OUT_OF_SCOPE
        if i < len(rows):
            right[lang].append(result.intent == row["label"])
        (oos if row["label"] == OUT_OF_SCOPE else in_scope_called_oos)[lang].append(called_oos)
    return {lang: {"accuracy": round(float(np.mean(right[lang])), 4), "rows": len(right[lang]),
                   "out_of_scope_recall": f"{sum(oos[lang])}/{len(oos[lang])}",
                   "in_scope_called_out_of_scope": f"{sum(in_scope_called_oos[lang])}/"
                                                   f"{len(in_scope_called_oos[lang])}"}
            for lang in sorted(right)}


def first_turn(engine: TurnEngine, text: str) -> TurnResult:
    """``text`` as the first message of a conversation, during business hours."""
    return engine.turn(engine.new_state("c1", "+390000000001"), text, now=OPEN)


def engine_scores(engine: TurnEngine, rows: list[dict[str, str]]) -> dict[str, tuple[int, int]]:
    """Hand-checked rows through the turn engine, each opening a conversation: ``(right, asked)``
    for intents and for escalation decisions (rows with a blank label are not asked)."""
    results = [first_turn(engine, r["text"]) for r in rows]
    intents = [res.analysis.intent == r["intent"] for r, res in zip(rows, results) if r["intent"]]
    escalations = [res.decision.escalate == (r["escalate"] == "yes")
                   for r, res in zip(rows, results) if r["escalate"]]
    return {"intents": (sum(intents), len(intents)),
            "escalations": (sum(escalations), len(escalations))}


def engine_figures(engine: TurnEngine) -> dict:
    """:func:`engine_scores` of each hand-checked set, as ``"right/asked"``."""
    return {name: {k: f"{right}/{asked}" for k, (right, asked) in
                   engine_scores(engine, read_handchecked(path)).items()}
            for name, path in HANDCHECKED_SETS.items()}


def failed_reply_figures(engine: TurnEngine) -> dict[str, str]:
    """Per language, how many of the out-of-scope test messages the bot counts as a failed
    reply when one opens a conversation (the "N failed replies" trigger needs them counted)."""
    rows = read_intents_test(OUT_OF_SCOPE_TEST_FILE)
    failed = defaultdict(list)
    for row in rows:
        failed[row["language"]].append(first_turn(engine, row["text"]).bot_failed)
    return {lang: f"{sum(v)}/{len(v)}" for lang, v in sorted(failed.items())}


def language_detection_figures(allowed: list[str]) -> dict:
    """Accuracy of each detector on XLM-T validation (per language and overall) and on the
    short hand-checked support messages."""
    detectors = {
        "stopwords": lambda t: stopword_guess(t, allowed, "none"),
        "lingua": lambda t: max((s := lingua_scores(t, allowed)), key=s.__getitem__),
        "combined (shipped)": lambda t: guess_language(t, allowed, "none"),
    }
    data = xlmt_validation()
    short = read_handchecked()
    out = {}
    for name, detect in detectors.items():
        per = {code: float(np.mean([detect(t) == code for t in texts]))
               for code, (texts, _) in data.items()}
        per["all"] = float(np.mean(list(per.values())))
        per["handchecked_short_messages"] = float(np.mean([detect(r["text"]) == r["language"]
                                                           for r in short]))
        out[name] = {k: round(v, 4) for k, v in per.items()}
    return out


def compare_bundles(model_dirs: dict[str, Path], split: str = "test", latency_n: int = 300,
                    out_dir: Path = Path("reports")) -> dict:
    """Evaluate every bundle in ``model_dirs`` (name -> folder) and the language detectors."""
    messages = sample_messages(latency_n)
    report = {
        "split": split, "machine": machine_info(), "latency_messages": len(messages),
        "models": {name: bundle_figures(Path(d), split, messages) for name, d in model_dirs.items()},
        "language_detection_xlmt_val": language_detection_figures(list(XLMT_LANGUAGES.values())),
        "turn_engine_handchecked": {
            "english pair": engine_figures(TurnEngine.load()),
            "multilingual pair": engine_figures(TurnEngine.load(
                nlu_dir=MULTILINGUAL_BUNDLE_DIR, policy_dir=MULTILINGUAL_POLICY_DIR)),
            "shipped (en -> english, it/es/pt -> multilingual)": engine_figures(TurnEngine.shipped()),
        },
        "shipped_engine_out_of_scope_test_failed_replies": failed_reply_figures(TurnEngine.shipped()),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "nlu_compare.json").write_text(json.dumps(report, indent=2) + "\n")
    log.info("wrote %s", out_dir / "nlu_compare.json")
    return report
