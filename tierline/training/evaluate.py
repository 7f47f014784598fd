"""Evaluation of an NLU bundle against two baselines measured in the same run.

Baselines:
- TF-IDF + logistic regression, fitted on the same training split as the model;
- keyword rules as seed products use them (a keyword list per intent, anything else out of
  scope; frustrated = ALL CAPS or a negative word).

Writes ``reports/nlu_eval.json`` plus a confusion matrix and a reliability diagram (PNG).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import classification_report, f1_score, roc_auc_score

from tierline.nlu import Analyzer
from tierline.nlu.analyzer import BundleAnalyzer
from tierline.nlu.bundle import DEFAULT_BUNDLE_DIR, load_bundle_config
from tierline.nlu.cues import NEGATIVE_WORDS
from tierline.nlu.labels import INTENT_LABELS, OUT_OF_SCOPE
from tierline.training.calibration import expected_calibration_error, plot_reliability, reliability_curve
from tierline.training.data import (
    HANDCHECKED_SETS,
    XLMT_LANGUAGES,
    load_frustration_data,
    load_intent_data,
    read_handchecked,
)

log = logging.getLogger(__name__)

#: Keyword rules in the style of menu-bot products: first match wins, else out of scope.
KEYWORD_RULES: tuple[tuple[str, str], ...] = (
    (r"\b(agent|human|person|representative|operator|operatore)\b", "contact_human_agent"),
    (r"\brefund", "get_refund"),
    (r"\bcancel", "cancel_order"),
    (r"\b(track|where is my (order|package|parcel))", "track_order"),
    (r"\binvoice", "get_invoice"),
    (r"\bpassword", "recover_password"),
    (r"\b(charged|payment)", "payment_issue"),
    (r"\bcomplain", "complaint"),
    (r"\b(deliver|shipping)", "delivery_options"),
    (r"\baddress", "change_shipping_address"),
    (r"\baccount", "create_account"),
    (r"\bnewsletter", "newsletter_subscription"),
    (r"^\s*(hi|hello|hey|good (morning|afternoon|evening))\b", "greeting"),
    (r"\b(bye|goodbye|see you)\b", "goodbye"),
    (r"\b(thanks|thank you)\b", "thanks"),
)


def keyword_intent(text: str) -> str:
    """The seed-product keyword baseline for intent."""
    lowered = text.lower()
    for pattern, label in KEYWORD_RULES:
        if re.search(pattern, lowered):
            return label
    return OUT_OF_SCOPE


def keyword_frustration(text: str) -> float:
    """The seed-product keyword baseline for frustration: 1 if ALL CAPS (at least two words,
    half of them capitals: the rule's own, not the model's happy-aware cue) or a negative word."""
    long_words = re.findall(r"[^\W\d_]{2,}", text)
    capitals = [w for w in long_words if w.isupper()]
    shouting = len(capitals) >= 2 and len(capitals) >= len(long_words) / 2
    words = set(re.findall(r"\w+", text.lower()))
    return float(shouting or bool(words & NEGATIVE_WORDS))


def intent_metrics(y_true: list[str], y_pred: list[str], confidence: np.ndarray | None = None
                   ) -> dict:
    """Accuracy, in-scope accuracy, macro-F1, out-of-scope recall/false rate, optional ECE."""
    yt, yp = np.array(y_true), np.array(y_pred)
    in_scope = yt != OUT_OF_SCOPE
    out = {
        "accuracy": float((yt == yp).mean()),
        "in_scope_accuracy": float((yt[in_scope] == yp[in_scope]).mean()),
        "macro_f1": float(f1_score(yt, yp, average="macro", labels=sorted(set(yt)))),
        "oos_recall": float((yp[~in_scope] == OUT_OF_SCOPE).mean()) if (~in_scope).any() else None,
        "in_scope_false_oos_rate": float((yp[in_scope] == OUT_OF_SCOPE).mean()),
    }
    if confidence is not None:
        out["ece"] = expected_calibration_error(confidence, yt == yp)
    return out


def frustration_metrics(y: np.ndarray, score: np.ndarray, threshold: float, sources: list[str]
                        ) -> dict:
    """ROC-AUC (overall and per source) and F1 at ``threshold``."""
    out = {"roc_auc": float(roc_auc_score(y, score)),
           "f1_at_threshold": float(f1_score(y, score >= threshold)), "threshold": threshold,
           "roc_auc_by_source": {}}
    src = np.array(sources)
    for s in sorted(set(sources)):
        sel = src == s
        if len(set(y[sel])) == 2:
            out["roc_auc_by_source"][s] = float(roc_auc_score(y[sel], score[sel]))
    return out


def tfidf_baseline(train_texts: list[str], train_labels: list, test_texts: list[str]
                   ) -> tuple[np.ndarray, list]:
    """Fit TF-IDF (word 1-2 grams + char 3-5 grams would be stronger; this is the common one)."""
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    clf = LogisticRegression(max_iter=2000, C=10.0)
    clf.fit(vec.fit_transform(train_texts), train_labels)
    proba = clf.predict_proba(vec.transform(test_texts))
    return proba, list(clf.classes_)


def per_language_figures(analyzer: Analyzer, split: str) -> dict[str, dict]:
    """Each language through the one analysis entry point, as a caller gets it: each text's
    language detected from the text alone, then that language's bundle.

    Frustration: the XLM-T tweets of ``split`` per language (``test`` is the 20 % of XLM-T
    train that no model trained on; ``validation`` is XLM-T val, used for calibration), ROC-AUC
    and F1 of the ``frustrated`` flag at each bundle's own threshold. Intent: the English intent
    split, and the two hand-checked it/es/pt sets. Also: the share of texts detected as their
    language, and which models served them.
    """
    xlmt = [r for r in load_frustration_data(xlmt_languages=tuple(XLMT_LANGUAGES))[split]
            if r["source"].startswith("xlmt_") and not r["source"].endswith("shouted")]
    intents = load_intent_data()[split]
    checked = [r for path in HANDCHECKED_SETS.values() for r in read_handchecked(path)
               if r["intent"]]
    out: dict[str, dict] = {}
    for code in XLMT_LANGUAGES.values():
        tweets = [r for r in xlmt if r["source"] == f"xlmt_{code}"]
        results = analyzer.analyze([r["text"] for r in tweets])
        y = np.array([r["label"] for r in tweets])
        score = np.array([r.frustration for r in results])
        flags = np.array([r.frustrated for r in results])
        if code == "en":
            intent_texts, intent_labels = list(intents["text"]), list(intents["label"])
            intent_set = f"intent {split} split"
        else:
            rows = [r for r in checked if r["language"] == code]
            intent_texts, intent_labels = [r["text"] for r in rows], [r["intent"] for r in rows]
            intent_set = "hand-checked (both sets)"
        intent_results = analyzer.analyze(intent_texts)
        models = sorted({str(r.model.name) for r in results + intent_results if r.model})
        out[code] = {
            "frustration_rows": len(tweets),
            "frustration_roc_auc": round(float(roc_auc_score(y, score)), 4),
            "frustration_f1": round(float(f1_score(y, flags)), 4),
            "intent_rows": len(intent_texts), "intent_set": intent_set,
            "intent_accuracy": round(float(np.mean([r.intent == y for r, y in
                                                    zip(intent_results, intent_labels)])), 4),
            "detected_as_language": round(float(np.mean(
                [r.language == code for r in results + intent_results])), 4),
            "models": models,
        }
    return out


def format_per_language(figures: dict[str, dict]) -> str:
    """The per-language figures as a Markdown table."""
    lines = ["| language | frustration ROC-AUC | frustration F1 | rows | intent accuracy | "
             "intent rows (set) | detected as the language | models |",
             "|---|---|---|---|---|---|---|---|"]
    for code, f in figures.items():
        lines.append(f"| {code} | {f['frustration_roc_auc']:.4f} | {f['frustration_f1']:.4f} | "
                     f"{f['frustration_rows']} | {f['intent_accuracy']:.4f} | "
                     f"{f['intent_rows']} ({f['intent_set']}) | {f['detected_as_language']:.1%} | "
                     f"{', '.join(f['models'])} |")
    return "\n".join(lines)


def evaluate_nlu(model_dir: Path | None = None, split: str = "test", out_dir: Path = Path("reports")
                 ) -> dict:
    """Evaluate the bundle at ``model_dir`` (default: the shipped English one) on ``split`` with
    both baselines, and every language through the entry point (the shipped routing, or
    ``model_dir`` for every language); write the report."""
    model_dir = Path(model_dir) if model_dir else DEFAULT_BUNDLE_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    config = load_bundle_config(model_dir)
    analyzer = BundleAnalyzer.load(model_dir)
    intents, frustration = load_intent_data(), load_frustration_data()
    texts, labels = intents[split]["text"], intents[split]["label"]

    results = analyzer.analyze(texts)
    pred = [r.intent for r in results]
    conf = np.array([r.intent_confidence for r in results])
    report: dict = {"model_dir": str(model_dir), "split": split, "rows": {"intent": len(texts)}}
    report["intent"] = {"model": intent_metrics(labels, pred, conf)}
    report["intent"]["model"]["per_intent"] = classification_report(
        labels, pred, labels=list(INTENT_LABELS), output_dict=True, zero_division=0)

    proba, classes = tfidf_baseline(intents["train"]["text"], intents["train"]["label"], texts)
    tf_pred = [classes[i] for i in proba.argmax(1)]
    report["intent"]["tfidf_logreg"] = intent_metrics(labels, tf_pred, proba.max(1))
    report["intent"]["keyword_rules"] = intent_metrics(labels, [keyword_intent(t) for t in texts])

    f_texts = frustration[split]["text"]
    f_y = np.array(frustration[split]["label"])
    f_src = frustration[split]["source"]
    report["rows"]["frustration"] = len(f_texts)
    f_score = np.array([r.frustration for r in analyzer.analyze(f_texts)])
    report["frustration"] = {"model": frustration_metrics(f_y, f_score, config.frustration_threshold, f_src)}
    f_proba, f_classes = tfidf_baseline(frustration["train"]["text"], frustration["train"]["label"],
                                        f_texts)
    tf_score = f_proba[:, f_classes.index(1)]
    report["frustration"]["tfidf_logreg"] = frustration_metrics(f_y, tf_score, 0.5, f_src)
    kw_score = np.array([keyword_frustration(t) for t in f_texts])
    report["frustration"]["keyword_rules"] = frustration_metrics(f_y, kw_score, 0.5, f_src)

    report["summary"] = summarise(report)
    report["per_language"] = per_language_figures(Analyzer.load(
        None if model_dir == DEFAULT_BUNDLE_DIR else model_dir), split)
    (out_dir / "nlu_eval.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_confusion(labels, pred, out_dir / "nlu_confusion.png")
    plot_intent_reliability(conf, np.array(labels) == np.array(pred),
                            out_dir / "nlu_reliability.png")
    log.info("wrote %s", out_dir / "nlu_eval.json")
    return report


def summarise(report: dict) -> dict:
    """The headline figures of each system, side by side."""
    summary = {}
    for system in ("model", "tfidf_logreg", "keyword_rules"):
        i, f = report["intent"][system], report["frustration"][system]
        summary[system] = {
            "intent_accuracy": round(i["accuracy"], 4),
            "in_scope_accuracy": round(i["in_scope_accuracy"], 4),
            "intent_macro_f1": round(i["macro_f1"], 4),
            "oos_recall": round(i["oos_recall"], 4),
            "in_scope_false_oos_rate": round(i["in_scope_false_oos_rate"], 4),
            "intent_ece": round(i["ece"], 4) if "ece" in i else None,
            "frustration_roc_auc": round(f["roc_auc"], 4),
            "frustration_f1": round(f["f1_at_threshold"], 4),
            "frustration_roc_auc_by_source": {k: round(v, 4) for k, v in f["roc_auc_by_source"].items()},
        }
    return summary


def plot_confusion(y_true: list[str], y_pred: list[str], path: Path) -> None:
    """Row-normalised confusion matrix over the full label set."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    index = {label: i for i, label in enumerate(INTENT_LABELS)}
    m = np.zeros((len(INTENT_LABELS), len(INTENT_LABELS)))
    for t, p in zip(y_true, y_pred):
        m[index[t], index[p]] += 1
    m = m / np.clip(m.sum(1, keepdims=True), 1, None)
    fig, ax = plt.subplots(figsize=(11, 10))
    ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(INTENT_LABELS)), INTENT_LABELS, rotation=90, fontsize=7)
    ax.set_yticks(range(len(INTENT_LABELS)), INTENT_LABELS, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Intent confusion (row-normalised)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_intent_reliability(confidence: np.ndarray, correct: np.ndarray, path: Path) -> None:
    """Reliability diagram of the top-1 intent confidence."""
    ece = expected_calibration_error(confidence, correct)
    plot_reliability(*reliability_curve(confidence, correct), path=path,
                     title=f"Intent reliability (ECE {ece:.3f})", xlabel="confidence",
                     ylabel="accuracy", label="model")
