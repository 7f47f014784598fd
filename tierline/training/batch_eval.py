"""Batch evaluation of chat logs: how the current models would have handled real conversations.

Input: JSON lines, one conversation per line::

    {"conversation_id": "c1", "customer": {"id": "+44...", "tier": "vip"},
     "messages": [{"text": "hi", "at": "2026-11-24T10:00:00+01:00"},
                  {"text": "I WAS CHARGED TWICE", "escalate": true}]}

``escalate`` (optional, per message) is an agent's label: should this turn have gone to a human.
``language`` and ``expected`` (optional, per conversation: ``{"handoff_by_turn": 3, "team":
"billing"}``) label the turn by which a human is needed; the report then gives recall by that
turn, false handoffs, team accuracy and calibration per language, beside keyword rules
(:mod:`tierline.training.expected_handoffs`; the local engine only).
Or a folder of exported WhatsApp webhook payloads (``*.json``), grouped into conversations.

The JSONL file is streamed in chunks: each chunk's messages are scored in one batched model
call, then its conversations are played turn by turn through the real engine
(:func:`score_conversations`), and the turn records fold into a :class:`ReportBuilder`. Memory
stays bounded by the chunk size plus one float triple per labelled turn. Bad lines fail with
their line number. The Ray engine (:func:`evaluate_conversations_ray`) maps the same scoring
function over blocks of the file on a Ray cluster and folds the same records the same way.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm

from tierline.nlu.engine import TurnEngine
from tierline.training.calibration import expected_calibration_error
from tierline.training.expected_handoffs import (
    ConversationOutcome,
    Expected,
    keyword_outcome,
    reliability_png,
    turn_labels,
)
from tierline.training.expected_handoffs import format_table as expected_table
from tierline.training.expected_handoffs import summarise as summarise_outcomes

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
    #: The conversation's language as labelled (reports group by it; the engine still detects).
    language: str | None = None
    #: The turn by which a human is needed and the team (``tierline.training.expected_handoffs``).
    expected: Expected | None = None


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


@dataclass
class TurnRecord:
    """What the engine did at one turn of a logged conversation (the unit both engines emit)."""

    conversation_id: str
    turn: int
    intent: str
    p_escalate: float
    decided: bool
    label: int | None
    handoff_team: str | None = None
    handoff_reasons: list[str] = field(default_factory=list)


def score_conversations(engine: TurnEngine, conversations: list[LogConversation]
                        ) -> tuple[list[TurnRecord], float, int, list[ConversationOutcome]]:
    """Play a chunk of conversations: one batched model call for its unique texts, then each
    conversation turn by turn. Returns (records, model seconds, unique texts, the outcomes of
    the conversations labelled with an expected handoff)."""
    texts = sorted({m.text for c in conversations for m in c.messages})
    t0 = time.perf_counter()
    analyses = dict(zip(texts, engine.analyze_texts(texts)))
    model_seconds = time.perf_counter() - t0
    records, outcomes = [], []
    for conv in conversations:
        state = engine.new_state(conv.conversation_id, customer_id=conv.customer.id,
                                 tier=conv.customer.tier)
        escalated, handoff_turn, handoff_team, p_seen, failed = False, None, None, [], []
        for n, msg in enumerate(conv.messages):
            result = engine.turn(state, msg.text, now=msg.at, button_id=msg.button_id,
                                 analysis=analyses[msg.text], act=not escalated)
            state = result.state
            failed.append(result.bot_failed)
            record = TurnRecord(conv.conversation_id, n, result.analysis.intent,
                                result.decision.p_escalate, result.decision.escalate,
                                None if msg.escalate is None else int(msg.escalate))
            if not escalated:
                p_seen.append(result.decision.p_escalate)
            if result.handoff and not escalated:
                escalated = True
                handoff_turn, handoff_team = n + 1, result.handoff.team
                record.handoff_team = result.handoff.team
                record.handoff_reasons = [r.split(" (")[0] for r in result.handoff.reasons[:3]]
            records.append(record)
        if conv.expected is not None:
            keyword_turn, keyword_team = keyword_outcome(
                engine.flow, [m.text or (m.button_id or "") for m in conv.messages], failed)
            outcomes.append(ConversationOutcome(
                conv.language or state.language, conv.expected, handoff_turn, handoff_team,
                keyword_turn, keyword_team,
                list(zip(p_seen, turn_labels(conv.expected, len(p_seen))))))
    return records, model_seconds, len(texts), outcomes


class ReportBuilder:
    """Aggregates turn records into the report; memory grows only with labelled turns."""

    def __init__(self) -> None:
        self.turns = 0
        self.conversations: set[str] = set()
        self.escalated: set[str] = set()
        self.turn_of_handoff: Counter = Counter()
        self.reasons: Counter = Counter()
        self.intents: Counter = Counter()
        self.teams: Counter = Counter()
        self.labelled: list[tuple[float, int, int]] = []
        self.outcomes: list[ConversationOutcome] = []
        self.model_seconds = 0.0
        self.unique_texts = 0

    def add(self, records: list[TurnRecord]) -> None:
        for r in records:
            self.turns += 1
            self.conversations.add(r.conversation_id)
            self.intents[r.intent] += 1
            if r.label is not None:
                self.labelled.append((r.p_escalate, r.label, int(r.decided)))
            if r.handoff_team is not None:
                self.escalated.add(r.conversation_id)
                self.turn_of_handoff[r.turn + 1] += 1
                self.teams[r.handoff_team] += 1
                self.reasons.update(r.handoff_reasons)

    def report(self, source: str, elapsed: float, engine_name: str) -> dict:
        n_conv = len(self.conversations)
        p, y, decided = (np.array(col) for col in zip(*self.labelled)) if self.labelled else \
            (np.array([]), np.array([]), np.array([]))
        report = {
            "input": source, "engine": engine_name, "conversations": n_conv, "turns": self.turns,
            "escalation_rate_conversations": len(self.escalated) / n_conv,
            "containment_rate": 1 - len(self.escalated) / n_conv,
            "handoff_at_turn": dict(sorted(self.turn_of_handoff.items())),
            "handoff_reasons": dict(self.reasons.most_common()),
            "handoff_teams": dict(self.teams.most_common()),
            "intent_distribution": dict(self.intents.most_common()),
            "throughput": {"messages_per_s": self.turns / elapsed, "seconds": elapsed,
                           "model_seconds": self.model_seconds,
                           "unique_texts_scored": self.unique_texts,
                           # The model's own batched speed in this run, for comparison.
                           "model_messages_per_s": (self.unique_texts / self.model_seconds
                                                    if self.model_seconds else None)},
            "agreement_with_labels": agreement(p, y.astype(int), decided.astype(bool)),
        }
        if self.outcomes:
            report["expected_handoffs"] = summarise_outcomes(self.outcomes)
        return report


def read_input(path: Path) -> Iterator[LogConversation]:
    """A JSONL chat log, or a folder of exported WhatsApp webhook payloads."""
    if path.is_dir():
        return read_webhook_folder(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    return read_conversations(path)


def read_webhook_folder(folder: Path) -> Iterator[LogConversation]:
    """Conversations from exported webhook bodies (``*.json``, one delivery per file).

    Text, button and interactive messages are grouped by (business number, customer) and
    ordered by their WhatsApp timestamp; redeliveries (same message id) count once. Unlike the
    JSONL path this holds the folder's texts in memory: export large logs as JSONL.
    """
    from tierline.serving.channels.whatsapp.payload import PayloadError, parse_webhook

    files = sorted(folder.glob("*.json"))
    if not files:
        raise InputError(f"{folder}: no webhook payloads (*.json)")
    seen: set[str] = set()
    by_conv: dict[str, list] = {}
    for file in files:
        try:
            messages, _ = parse_webhook(json.loads(file.read_bytes()))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{file.name}: not valid JSON ({exc})") from None
        except PayloadError as exc:
            raise InputError(f"{file.name}: not a WhatsApp webhook payload ({exc})") from None
        for m in messages:
            if m.wamid in seen or m.type not in ("text", "button", "interactive"):
                continue
            seen.add(m.wamid)
            by_conv.setdefault(m.conversation_id, []).append(m)
    for conv_id, messages in by_conv.items():
        messages.sort(key=lambda m: (m.sent_at is None, m.sent_at))
        yield LogConversation(conversation_id=conv_id, customer=LogCustomer(id=messages[0].customer_id),
                              messages=[LogMessage(text=m.text[:50_000], at=m.sent_at,
                                                   button_id=m.button_id) for m in messages])


def engine_for(nlu_dir: Path | None, policy_dir: Path | None, threads: int) -> TurnEngine:
    """The engine a batch job scores with, routed by language like the service: English on the
    English pair (a named model or policy, e.g. a registry champion, replaces it), Italian,
    Spanish and Portuguese on the shipped multilingual pair. A named English pair never
    scores it/es/pt conversations (it did, and precision on Italian fell from 0.86 to 0.46)."""
    return TurnEngine.shipped(nlu_dir=nlu_dir, policy_dir=policy_dir, threads=threads)


def evaluate_conversations(path: Path, engine: TurnEngine | None = None,
                           out_dir: Path = Path("reports/conversations"),
                           database_url: str | None = None,
                           kpi_days: tuple[date, date] | None = None) -> dict:
    """Play every conversation of the log on this machine; write ``report.json`` and
    ``report.html``. With ``database_url``, the service's KPIs join the report."""
    engine = engine or TurnEngine.shipped()
    started = time.perf_counter()
    builder = ReportBuilder()
    bar = tqdm(desc="conversations", unit="conv", mininterval=2)
    for chunk in chunks(read_input(path), CHUNK):
        records, seconds, unique, outcomes = score_conversations(engine, chunk)
        builder.add(records)
        builder.outcomes += outcomes
        builder.model_seconds += seconds
        builder.unique_texts += unique
        bar.update(len(chunk))
    bar.close()
    report = builder.report(str(path), time.perf_counter() - started, "local")
    return finish_report(report, out_dir, database_url, kpi_days)


def finish_report(report: dict, out_dir: Path, database_url: str | None,
                  kpi_days: tuple[date, date] | None) -> dict:
    """Add the service KPIs (when a database is given) and write JSON + HTML."""
    if database_url:
        report["service_kpis"] = service_kpis(database_url, kpi_days)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out_dir / "report.html").write_text(render_html(report), encoding="utf-8")
    log.info("evaluated %d conversations (%d turns) in %.1fs with the %s engine",
             report["conversations"], report["turns"], report["throughput"]["seconds"],
             report["engine"])
    return report


def service_kpis(database_url: str, days: tuple[date, date] | None) -> dict:
    """The service's own KPIs (escalation rate, containment, time to first agent reply,
    resolution time, CSAT), total and per team, over ``days`` (default: the last 30)."""
    from tierline.serving.kpis import compute_kpis
    from tierline.serving.storage.db import Database

    end = days[1] if days else datetime.now(timezone.utc).date()
    start = days[0] if days else end - timedelta(days=29)
    db = Database(database_url)
    try:
        kpis = compute_kpis(db, start, end)
    finally:
        db.dispose()
    return {"start": str(start), "end": str(end), "total": asdict(kpis.total),
            "by_team": [asdict(r) for r in kpis.by_team]}


def evaluate_conversations_ray(path: Path, out_dir: Path = Path("reports/conversations"),
                               nlu_dir: Path | None = None, policy_dir: Path | None = None,
                               address: str | None = None, database_url: str | None = None,
                               kpi_days: tuple[date, date] | None = None, threads: int = 1) -> dict:
    """The same job on Ray Data: the JSONL log is read in blocks, each block's conversations
    are played by actors that load the ONNX engine once, and the records stream back into the
    same report builder. ``address`` joins a running cluster (default: a local instance)."""
    import ray

    if path.is_dir():
        raise InputError("the Ray engine reads JSONL logs; convert webhook folders with the local engine")
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    started = time.perf_counter()
    builder = ReportBuilder()
    ds = ray.data.read_text(str(path.resolve()))
    scored = ds.map_batches(_RayScorer, fn_constructor_kwargs={"nlu_dir": nlu_dir,
                                                               "policy_dir": policy_dir,
                                                               "threads": threads},
                            batch_size=CHUNK, batch_format="pandas", concurrency=1)
    for batch in tqdm(scored.iter_batches(batch_format="pandas", batch_size=1024),
                      desc="record batches", mininterval=2):
        for row in batch.to_dict("records"):
            if row["kind"] == "stats":
                builder.model_seconds += row["model_seconds"]
                builder.unique_texts += int(row["unique_texts"])
                continue
            label = row["label"]
            builder.add([TurnRecord(row["conversation_id"], int(row["turn"]), row["intent"],
                                    float(row["p_escalate"]), bool(row["decided"]),
                                    None if label is None or label != label else int(label),
                                    row["handoff_team"] or None,
                                    json.loads(row["handoff_reasons"]))])
    report = builder.report(str(path), time.perf_counter() - started, "ray")
    return finish_report(report, out_dir, database_url, kpi_days)


class _RayScorer:
    """A Ray Data actor: one engine per actor, a block of JSONL lines in, turn records out."""

    def __init__(self, nlu_dir: Path | None, policy_dir: Path | None, threads: int) -> None:
        self.engine = engine_for(nlu_dir, policy_dir, threads)

    def __call__(self, batch):
        import pandas as pd

        conversations = []
        for line in batch["text"]:
            if line.strip():
                try:
                    conversations.append(LogConversation.model_validate_json(line))
                except ValidationError as exc:
                    raise InputError(f"bad line {line[:80]!r}: {exc.errors()[0]['msg']}") from None
        records, seconds, unique, _ = score_conversations(self.engine, conversations)
        rows = [{"kind": "turn", **{k: v for k, v in asdict(r).items() if k != "handoff_reasons"},
                 "handoff_team": r.handoff_team or "", "label": r.label,
                 "handoff_reasons": json.dumps(r.handoff_reasons),
                 "model_seconds": 0.0, "unique_texts": 0} for r in records]
        rows.append({"kind": "stats", "conversation_id": "", "turn": -1, "intent": "",
                     "p_escalate": 0.0, "decided": False, "label": None, "handoff_team": "",
                     "handoff_reasons": "[]", "model_seconds": seconds, "unique_texts": unique})
        return pd.DataFrame(rows)


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
    if report.get("expected_handoffs"):
        plots = (f"<h2>Expected handoffs, per language (engine / keyword rules)</h2>"
                 f"<pre>{html.escape(expected_table(report['expected_handoffs']))}</pre>"
                 f'<h2>Calibration of P(escalate)</h2><img alt="reliability" '
                 f'src="data:image/png;base64,{reliability_png(report["expected_handoffs"])}">'
                 + plots)
    summary = {k: report[k] for k in ("conversations", "turns", "escalation_rate_conversations",
                                      "containment_rate", "throughput", "agreement_with_labels",
                                      "service_kpis") if k in report}
    return ("<!doctype html><meta charset='utf-8'><title>tierline: conversation evaluation</title>"
            f"<h1>Conversation evaluation</h1><pre>{html.escape(json.dumps(summary, indent=2, default=str))}"
            f"</pre>{plots}")
