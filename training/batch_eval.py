"""Batch evaluation of chat logs: how the current models would have handled real conversations.

Input: JSON lines, one conversation per line::

    {"conversation_id": "c1", "customer": {"id": "+44...", "tier": "vip"},
     "messages": [{"text": "hi", "at": "2026-11-24T10:00:00+01:00"},
                  {"text": "I WAS CHARGED TWICE", "escalate": true}]}

``escalate`` (optional, per message) is an agent's label: should this turn have gone to a human.
The file is streamed in chunks: each chunk's messages are scored in one batched model call,
then its conversations are played turn by turn through the real engine. Memory stays bounded
by the chunk size plus one float pair per labelled turn. Bad lines fail with their line number.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm

from nlu.engine import TurnEngine
from training.calibration import expected_calibration_error

log = logging.getLogger(__name__)
CHUNK = 256


class InputError(ValueError):
    """A chat log line that cannot be read; the message starts with its line number."""


class LogMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=50_000)
    at: datetime | None = None
    button_id: str | None = None
    escalate: bool | None = None


class LogCustomer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = ""
    tier: str | None = None


class LogConversation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conversation_id: str
    customer: LogCustomer = LogCustomer()
    messages: list[LogMessage] = Field(min_length=1)


def read_conversations(path: Path) -> Iterator[LogConversation]:
    """Stream conversations from a JSONL file, with line numbers in every error."""
    empty = True
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            empty = False
            try:
                yield LogConversation.model_validate_json(line)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                kind = "not valid JSON" if first["type"] == "json_invalid" else first["msg"]
                raise InputError(f"line {number}: {kind}" + (f" (at {where})" if where else "")) from None
    if empty:
        raise InputError(f"{path}: no conversations (empty file)")


def chunks(items: Iterator[LogConversation], size: int) -> Iterator[list[LogConversation]]:
    """Lists of at most ``size`` items."""
    chunk: list[LogConversation] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def evaluate_conversations(path: Path, engine: TurnEngine | None = None,
                           out_dir: Path = Path("reports/conversations")) -> dict:
    """Play every conversation of the log; write ``report.json`` and ``report.html``."""
    engine = engine or TurnEngine.load()
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    model_seconds = 0.0
    n_unique = 0
    n_conv = n_turns = n_escalated_conv = 0
    turn_of_handoff: Counter = Counter()
    reasons: Counter = Counter()
    intents: Counter = Counter()
    teams: Counter = Counter()
    p_labelled, y_labelled, decided_labelled = [], [], []
    bar = tqdm(desc="conversations", unit="conv", mininterval=2)
    for chunk in chunks(read_conversations(path), CHUNK):
        texts = sorted({m.text for c in chunk for m in c.messages})
        n_unique += len(texts)
        t0 = time.perf_counter()
        analyses = dict(zip(texts, engine.analyzer.analyze(texts)))
        model_seconds += time.perf_counter() - t0
        for conv in chunk:
            state = engine.new_state(conv.conversation_id, customer_id=conv.customer.id,
                                     tier=conv.customer.tier)
            escalated = False
            for n, msg in enumerate(conv.messages):
                result = engine.turn(state, msg.text, now=msg.at, button_id=msg.button_id,
                                     analysis=analyses[msg.text], act=not escalated)
                state = result.state
                n_turns += 1
                intents[result.analysis.intent] += 1
                if msg.escalate is not None:
                    p_labelled.append(result.decision.p_escalate)
                    y_labelled.append(int(msg.escalate))
                    decided_labelled.append(int(result.decision.escalate))
                if result.handoff and not escalated:
                    escalated = True
                    turn_of_handoff[n + 1] += 1
                    teams[result.handoff.team] += 1
                    reasons.update(r.split(" (")[0] for r in result.handoff.reasons[:3])
            n_conv += 1
            n_escalated_conv += int(escalated)
        bar.update(len(chunk))
    bar.close()
    elapsed = time.perf_counter() - started
    report = {
        "input": str(path), "conversations": n_conv, "turns": n_turns,
        "escalation_rate_conversations": n_escalated_conv / n_conv,
        "containment_rate": 1 - n_escalated_conv / n_conv,
        "handoff_at_turn": dict(sorted(turn_of_handoff.items())),
        "handoff_reasons": dict(reasons.most_common()),
        "handoff_teams": dict(teams.most_common()),
        "intent_distribution": dict(intents.most_common()),
        "throughput": {"messages_per_s": n_turns / elapsed, "seconds": elapsed,
                       "model_seconds": model_seconds,
                       "unique_texts_scored": n_unique},
        "agreement_with_labels": agreement(np.array(p_labelled), np.array(y_labelled),
                                           np.array(decided_labelled, dtype=bool)),
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "report.html").write_text(render_html(report), encoding="utf-8")
    log.info("evaluated %d conversations (%d turns) in %.1fs", n_conv, n_turns, elapsed)
    return report


def agreement(p: np.ndarray, y: np.ndarray, decided: np.ndarray) -> dict | None:
    """Precision, recall, ROC-AUC and ECE of the decisions against agent labels."""
    if len(y) == 0:
        return None
    out = {"labelled_turns": int(len(y)), "positive_rate": float(y.mean()),
           "precision": float(y[decided].mean()) if decided.any() else None,
           "recall": float(decided[y == 1].mean()) if (y == 1).any() else None,
           "ece": expected_calibration_error(p, y, bins=10)}
    out["roc_auc"] = float(roc_auc_score(y, p)) if len(set(y.tolist())) == 2 else None
    return out


def _bar_png(counts: dict, title: str) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = list(counts.items())[:15]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(items) + 1.2))
    ax.barh([str(k) for k, _ in items][::-1], [v for _, v in items][::-1])
    ax.set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def render_html(report: dict) -> str:
    """A self-contained HTML page (plots inlined as PNG)."""
    plots = "".join(
        f'<h2>{title}</h2><img alt="{title}" src="data:image/png;base64,{_bar_png(report[key], title)}">'
        for key, title in (("handoff_reasons", "Why the policy hands off"),
                           ("handoff_at_turn", "Turn of the handoff"),
                           ("intent_distribution", "Intents"))
        if report[key])
    summary = {k: report[k] for k in ("conversations", "turns", "escalation_rate_conversations",
                                      "containment_rate", "throughput", "agreement_with_labels")}
    return ("<!doctype html><meta charset='utf-8'><title>tierline: conversation evaluation</title>"
            f"<h1>Conversation evaluation</h1><pre>{json.dumps(summary, indent=2)}</pre>{plots}")
