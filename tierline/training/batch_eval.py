"""Batch evaluation of chat logs: how the current models would have handled real conversations.

Input (:mod:`tierline.training.chat_logs`): JSON lines, one conversation per line::

    {"conversation_id": "c1", "language": "en", "customer": {"id": "+44...", "tier": "vip"},
     "messages": [{"role": "customer", "text": "hi", "timestamp": "2026-11-24T10:00:00+01:00"},
                  {"role": "bot", "text": "Hi! How can I help?"},
                  {"text": "I WAS CHARGED TWICE", "escalate": true, "intent": "payment_issue"}],
     "expected": {"handoff_by_turn": 2, "team": "billing"}}

or a WhatsApp chat export (``.txt``/``.zip``, Android or iOS), a folder of exported webhook
payloads, or the service's own database. Only customer lines are turns. ``escalate`` and
``intent`` (per customer line) are a person's labels; ``language`` and ``expected`` (per
conversation) label the turn by which a human is needed and the team: the report then gives
recall by that turn, false handoffs, team accuracy and calibration per language, beside keyword
rules (:mod:`tierline.training.expected_handoffs`).

Each conversation runs on the model stack of its language, as in the service: English on the
default pair (``--model``/``--policy``, or registry versions), Italian, Spanish and Portuguese
on the multilingual pair (``--multilingual-model``/``--multilingual-policy``); a bundle named
for a stack whose languages it was not trained on is refused (:func:`engine_for`). Every turn
records the stack and the NLU bundle (name and version) that scored it; the report lists them
per stack and per conversation (``conversations.jsonl``), and says when a conversation labelled
in one language ran on a stack not trained for it (a flow without that language).

The input is streamed in chunks: each chunk's customer lines are scored in one batched model
call, then its conversations are played turn by turn through the real engine
(:func:`score_conversations`), and each conversation's result folds into a
:class:`ReportBuilder`: counters, one float triple per labelled turn, and the transcripts of the
conversations where model and labels disagree most (a bounded heap). Lines that cannot be read
are reported with their line numbers (the CLI's output, ``report.json``, the HTML), never
dropped unsaid. The Ray engine (:func:`evaluate_conversations_ray`) maps the same scoring
function over blocks of a JSONL file on a Ray cluster and folds the same results the same way.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm

from tierline.nlu.bundle import (
    DEFAULT_BUNDLE_DIR,
    DEFAULT_POLICY_DIR,
    MULTILINGUAL_BUNDLE_DIR,
    MULTILINGUAL_LANGUAGES,
    MULTILINGUAL_POLICY_DIR,
    load_bundle_config,
)
from tierline.nlu.engine import DEFAULT_STACK, LanguageRoute, ModelStack, TurnEngine
from tierline.nlu.flow import DEFAULT_FLOW_PATH, BotFlow, load_flow
from tierline.nlu.language import has_words
from tierline.paths import PROJECT_ROOT
from tierline.training.calibration import expected_calibration_error
from tierline.training.chat_logs import (  # noqa: F401  (the readers' names, as before)
    ExportStats,
    InputError,
    LogConversation,
    LogCustomer,
    LogMessage,
    ReadProblem,
    read_conversations,
    read_input,
    read_webhook_folder,
)
from tierline.training.expected_handoffs import (
    ConversationOutcome,
    Expected,
    calibration_of,
    keyword_outcome,
    turn_labels,
)
from tierline.training.expected_handoffs import summarise as summarise_outcomes

log = logging.getLogger(__name__)
CHUNK = 256
#: Conversations whose transcripts the report keeps: those where model and labels disagree most.
DISAGREEMENTS = 25
#: Conversation rows the HTML lists (all of them are in ``conversations.jsonl``).
HTML_ROWS = 2000
#: The turn label and the escalation decision, as the confusion tables write them.
YES_NO = ("yes", "no")


class ModelChoiceError(ValueError):
    """A model named for a stack that serves languages it was not trained on."""


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
    """What the engine did at one customer turn of a logged conversation."""

    conversation_id: str
    turn: int
    intent: str
    p_escalate: float
    decided: bool
    #: The line's own label (``escalate``): should this turn go to a human.
    label: int | None
    handoff_team: str | None = None
    handoff_reasons: list[str] = field(default_factory=list)
    #: The model stack that decided and the NLU bundle that read the line (``name@version``).
    model_stack: str = DEFAULT_STACK
    model: str = ""
    #: The line's intent label, when it has one.
    expected_intent: str | None = None
    #: The conversation's ``expected`` turn label (1 from the expected handoff turn on), for the
    #: turns up to the engine's handoff; None without ``expected`` and after the handoff.
    expected_label: int | None = None
    #: The day the customer wrote (the flow's timezone), for reasons over time.
    day: str | None = None


@dataclass
class ConversationResult:
    """One conversation played through the engine: its turns, where it went, on which models."""

    conversation_id: str
    language: str  # as labelled, else as detected
    labelled_language: str | None
    detected_language: str
    tier: str
    stacks: dict[str, int]  # customer turns per model stack
    models: list[str]  # NLU bundles (name@version) that read its lines
    handoff_turn: int | None
    handoff_team: str | None
    records: list[TurnRecord]
    outcome: ConversationOutcome | None
    #: Every line (customer, bot, agent) with its time; customer lines carry their turn number.
    transcript: list[dict]
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        data = asdict(self)
        if self.outcome is not None:
            data["outcome"]["expected"] = self.outcome.expected.model_dump()
        return json.dumps(data, ensure_ascii=False, default=str)

    @classmethod
    def from_json(cls, raw: str) -> ConversationResult:
        data = json.loads(raw)
        data["records"] = [TurnRecord(**r) for r in data["records"]]
        if data["outcome"] is not None:
            o = data["outcome"]
            data["outcome"] = ConversationOutcome(**{
                **o, "expected": Expected.model_validate(o["expected"]),
                "turns": [tuple(t) for t in o["turns"]]})
        return cls(**data)


@dataclass
class Chunk:
    """A chunk of conversations played: their results, the model's time and the texts it read."""

    results: list[ConversationResult]
    model_seconds: float
    unique_texts: int


def _day(at: datetime | None, flow: BotFlow) -> str | None:
    if at is None:
        return None
    at = at if at.tzinfo else at.replace(tzinfo=timezone.utc)
    return at.astimezone(ZoneInfo(flow.business_hours.timezone)).date().isoformat()


def _stack_named(engine: TurnEngine, name: str) -> ModelStack:
    if engine.routed is not None and name == engine.routed.route.name:
        return engine.routed.get()
    return engine.primary


def score_conversations(engine: TurnEngine, conversations: list[LogConversation]) -> Chunk:
    """Play a chunk of conversations: one batched model call for its unique customer lines, then
    each conversation turn by turn (bot and agent lines are context, kept for the transcript)."""
    texts = sorted({m.text for c in conversations for m in c.turns})
    t0 = time.perf_counter()
    analyses = dict(zip(texts, engine.analyze_texts(texts)))
    model_seconds = time.perf_counter() - t0
    return Chunk([play(engine, conv, analyses) for conv in conversations], model_seconds, len(texts))


def play(engine: TurnEngine, conv: LogConversation, analyses: dict | None = None) -> ConversationResult:
    """One conversation through ``engine``, turn by turn, as the service would have played it."""
    analyses = analyses or {}
    state = engine.new_state(conv.conversation_id, customer_id=conv.customer.id,
                             tier=conv.customer.tier)
    tier = state.tier
    turns = conv.turns
    expected = turn_labels(conv.expected, len(turns)) if conv.expected is not None else None
    escalated, handoff_turn, handoff_team, p_seen, failed = False, None, None, [], []
    records: list[TurnRecord] = []
    transcript: list[dict] = []
    stacks: Counter = Counter()
    worded: Counter = Counter()  # turns with words, per stack (a "3" or "ND-123456" says little)
    models: dict[str, None] = {}
    for msg in conv.messages:
        line = {"role": msg.role, "text": msg.text,
                "at": msg.at.isoformat() if msg.at else None}
        transcript.append(line)
        if msg.role != "customer":
            continue
        n = len(records)
        line["turn"] = n + 1
        if msg.button_id:
            line["button_id"] = msg.button_id
        result = engine.turn(state, msg.text, now=msg.at, button_id=msg.button_id,
                             analysis=analyses.get(msg.text), act=not escalated)
        state = result.state
        failed.append(result.bot_failed)
        model = str(result.analysis.model) if result.analysis.model else ""
        stacks[result.model_stack] += 1
        worded[result.model_stack] += has_words(msg.text)
        models[model] = None
        record = TurnRecord(conv.conversation_id, n, result.analysis.intent,
                            result.decision.p_escalate, result.decision.escalate,
                            None if msg.escalate is None else int(msg.escalate),
                            model_stack=result.model_stack, model=model,
                            expected_intent=msg.intent,
                            expected_label=None if expected is None or escalated else expected[n],
                            day=_day(msg.at, engine.flow))
        if not escalated:
            p_seen.append(result.decision.p_escalate)
        if result.handoff and not escalated:
            escalated = True
            handoff_turn, handoff_team = n + 1, result.handoff.team
            record.handoff_team = result.handoff.team
            record.handoff_reasons = [r.split(" (")[0] for r in result.handoff.reasons[:3]]
        records.append(record)
    outcome = None
    language = conv.language or state.language
    if conv.expected is not None:
        keyword_turn, keyword_team = keyword_outcome(
            engine.flow, [m.text or (m.button_id or "") for m in turns], failed)
        outcome = ConversationOutcome(language, conv.expected, handoff_turn, handoff_team,
                                      keyword_turn, keyword_team,
                                      list(zip(p_seen, turn_labels(conv.expected, len(p_seen)))))
    return ConversationResult(
        conv.conversation_id, language, conv.language, state.language, tier, dict(stacks),
        list(models), handoff_turn, handoff_team, records, outcome, transcript,
        _language_warnings(engine, conv.language, +worded))


def _language_warnings(engine: TurnEngine, labelled: str | None, stacks: Counter) -> list[str]:
    """A conversation labelled in a language whose worded lines ran on a stack whose bundle
    was not trained for it (a flow without that language sends them to the default stack; an
    opening "3" stays on the flow's default language, as in the service, and is not counted):
    said, not silent."""
    if not labelled:
        return []
    out = []
    for name in stacks:
        analyzer = _stack_named(engine, name).analyzer
        if labelled not in analyzer.languages:
            out.append(f"labelled {labelled!r} but played on the {name} stack, whose model "
                       f"{analyzer.model_id} is trained for {', '.join(analyzer.languages)}"
                       + ("" if labelled in engine.flow.languages else
                          f" (the flow's languages: {', '.join(engine.flow.languages)})"))
    return out


def disagreement(result: ConversationResult) -> tuple[float, list[str]]:
    """How much the engine and the labels disagree on a conversation, and where.

    1 for a wrong outcome against ``expected`` (missed, late or false handoff; 0.5 for the
    wrong team), plus the largest gap |P(escalate) - label| over its labelled turns (the line's
    ``escalate`` label, else the expected turn's), plus 0.25 for each turn whose intent differs
    from its label (at most 1)."""
    score, why = 0.0, []
    outcome, turn, team = result.outcome, result.handoff_turn, result.handoff_team
    if outcome is not None:
        by, wanted = outcome.expected.handoff_by_turn, outcome.expected.team
        if by is None and turn is not None:
            score += 1
            why.append(f"handed off at turn {turn}; labelled: the bot should keep it")
        elif by is not None and turn is None:
            score += 1
            why.append(f"never handed off; labelled: a human by turn {by}")
        elif by is not None and turn > by:
            score += 1
            why.append(f"handed off at turn {turn}, late; labelled: a human by turn {by}")
        elif by is not None and wanted and team != wanted:
            score += 0.5
            why.append(f"sent to {team}; labelled team {wanted}")
    gap, worst = 0.0, None
    for r in result.records:
        label = r.label if r.label is not None else r.expected_label
        if label is not None and abs(r.p_escalate - label) > gap:
            gap, worst = abs(r.p_escalate - label), r
    if worst is not None and gap >= 0.5:
        label = worst.label if worst.label is not None else worst.expected_label
        why.append(f"turn {worst.turn + 1}: P(escalate) {worst.p_escalate:.2f}, labelled "
                   f"{'escalate' if label else 'keep'}")
    score += gap
    wrong = [r for r in result.records if r.expected_intent and r.intent != r.expected_intent]
    score += min(1.0, 0.25 * len(wrong))
    why += [f"turn {r.turn + 1}: read as {r.intent}, labelled {r.expected_intent}" for r in wrong[:3]]
    return round(score, 4), why


def anchor(conversation_id: str) -> str:
    """The HTML id of a conversation's transcript: readable, unique, safe in a URL fragment."""
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in conversation_id)[:40]
    return f"conv-{safe}-{hashlib.sha1(conversation_id.encode()).hexdigest()[:6]}"


class ReportBuilder:
    """Aggregates conversation results into the report. Memory grows with labelled turns (a
    float triple each), the distinct days and labels, and a bounded list of transcripts."""

    def __init__(self, rows_path: Path | None = None) -> None:
        self.turns = 0
        self.conversations = 0
        self.escalated = 0
        self.turn_of_handoff: Counter = Counter()
        self.reasons: Counter = Counter()
        self.intents: Counter = Counter()
        self.teams: Counter = Counter()
        self.labelled: list[tuple[float, int, int]] = []
        self.outcomes: list[ConversationOutcome] = []
        self.model_seconds = 0.0
        self.unique_texts = 0
        self.by_language: dict[str, Counter] = defaultdict(Counter)
        self.stack_of_language: dict[str, Counter] = defaultdict(Counter)
        self.by_stack: dict[str, Counter] = defaultdict(Counter)
        self.models_of_stack: dict[str, Counter] = defaultdict(Counter)
        self.languages_of_stack: dict[str, Counter] = defaultdict(Counter)
        self.intent_pairs: Counter = Counter()
        self.escalation_pairs: Counter = Counter()
        self.reasons_by_day: Counter = Counter()
        self.warnings = 0
        self.warning_examples: list[dict] = []
        self.rows: list[dict] = []
        self._worst: list[tuple[float, int, dict]] = []
        self._handed_off: list[dict] = []
        self._rows_file = open(rows_path, "w", encoding="utf-8") if rows_path else None  # noqa: SIM115

    def add_chunk(self, chunk: Chunk) -> None:
        self.model_seconds += chunk.model_seconds
        self.unique_texts += chunk.unique_texts
        for result in chunk.results:
            self.add(result)

    def add(self, result: ConversationResult) -> None:
        self.conversations += 1
        lang = result.language
        language = self.by_language[lang]
        language["conversations"] += 1
        language["turns"] += len(result.records)
        language["escalated"] += result.handoff_turn is not None
        for name, turns in result.stacks.items():
            self.stack_of_language[lang][name] += 1
            self.by_stack[name]["conversations"] += 1
            self.by_stack[name]["turns"] += turns
            self.languages_of_stack[name][lang] += 1
        if result.handoff_turn is not None:
            self.escalated += 1
        for r in result.records:
            self.turns += 1
            self.intents[r.intent] += 1
            self.models_of_stack[r.model_stack][r.model] += 1
            if r.label is not None:
                self.labelled.append((r.p_escalate, r.label, int(r.decided)))
            label = r.label if r.label is not None else r.expected_label
            if label is not None:
                self.escalation_pairs[(YES_NO[1 - label], YES_NO[1 - int(r.decided)])] += 1
            if r.expected_intent:
                self.intent_pairs[(r.expected_intent, r.intent)] += 1
            if r.handoff_team is not None:
                self.turn_of_handoff[r.turn + 1] += 1
                self.teams[r.handoff_team] += 1
                self.reasons.update(r.handoff_reasons)
                for reason in r.handoff_reasons[:1]:  # the first reason: why it went
                    self.reasons_by_day[(r.day or "undated", reason)] += 1
        if result.outcome is not None:
            self.outcomes.append(result.outcome)
        if result.warnings:
            self.warnings += 1
            if len(self.warning_examples) < 20:
                self.warning_examples.append({"conversation_id": result.conversation_id,
                                              "warnings": result.warnings})
        score, why = disagreement(result)
        row = {"conversation_id": result.conversation_id, "anchor": anchor(result.conversation_id),
               "language": result.language, "labelled_language": result.labelled_language,
               "detected_language": result.detected_language, "tier": result.tier,
               "turns": len(result.records), "stacks": result.stacks, "models": result.models,
               "handoff_turn": result.handoff_turn, "handoff_team": result.handoff_team,
               "expected": result.outcome.expected.model_dump(exclude_defaults=True)
               if result.outcome else None,
               "disagreement": score, "why": why, "warnings": result.warnings}
        if self._rows_file is not None:
            self._rows_file.write(json.dumps(row, ensure_ascii=False) + "\n")
        if len(self.rows) < HTML_ROWS:
            self.rows.append(row)
        if why:
            item = (score, -self.conversations, self._with_transcript(row, result))
            if len(self._worst) < DISAGREEMENTS:
                heapq.heappush(self._worst, item)
            elif item[:2] > self._worst[0][:2]:
                heapq.heapreplace(self._worst, item)
        elif result.handoff_turn is not None and len(self._handed_off) < DISAGREEMENTS:
            # Unlabelled logs (a chat export) have nothing to disagree with: the report shows
            # the first handoffs' transcripts instead.
            self._handed_off.append(self._with_transcript(row, result))

    @staticmethod
    def _with_transcript(row: dict, result: ConversationResult) -> dict:
        return {**row, "transcript": result.transcript,
                "turn_records": [asdict(r) for r in result.records]}

    def close(self) -> None:
        if self._rows_file is not None:
            self._rows_file.close()
            self._rows_file = None

    def report(self, source: str, elapsed: float, engine_name: str, stacks: dict) -> dict:
        self.close()
        n_conv = self.conversations
        p, y, decided = (np.array(col) for col in zip(*self.labelled)) if self.labelled else \
            (np.array([]), np.array([]), np.array([]))
        report = {
            "input": source, "engine": engine_name, "conversations": n_conv, "turns": self.turns,
            "escalation_rate_conversations": self.escalated / n_conv,
            "containment_rate": 1 - self.escalated / n_conv,
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
            "models": self._models(stacks),
            "languages": {lang: {"conversations": c["conversations"], "turns": c["turns"],
                                 "escalated": c["escalated"],
                                 "escalation_rate": c["escalated"] / c["conversations"],
                                 "stacks": dict(self.stack_of_language[lang])}
                          for lang, c in sorted(self.by_language.items())},
            "language_warnings": {"conversations": self.warnings,
                                  "examples": self.warning_examples},
            "reasons_by_day": self._reasons_by_day(),
            "intent_confusion": self._intent_confusion(),
            "escalation_confusion": self._escalation_confusion(),
            "reliability_agent_labels": calibration_of(p, y) if len(y) else None,
            "disagreements": [item[2] for item in sorted(self._worst, reverse=True)],
            "handoffs_without_labels": [] if self._worst else self._handed_off,
            "conversation_rows": self.rows,
        }
        if self.outcomes:
            report["expected_handoffs"] = summarise_outcomes(self.outcomes)
        return report

    def _models(self, stacks: dict) -> dict:
        """Per stack: what it is (configured) and what it did in this run."""
        out = {}
        for name in sorted(set(stacks) | set(self.by_stack), key=lambda n: n != DEFAULT_STACK):
            out[name] = {**stacks.get(name, {}),
                         "conversations": self.by_stack[name]["conversations"],
                         "turns": self.by_stack[name]["turns"],
                         "languages_played": dict(self.languages_of_stack[name].most_common()),
                         "models_that_ran": dict(self.models_of_stack[name].most_common())}
        return out

    def _reasons_by_day(self) -> dict:
        days: dict[str, dict[str, int]] = {}
        for (day, reason), n in sorted(self.reasons_by_day.items()):
            days.setdefault(day, {})[reason] = n
        return days

    def _intent_confusion(self) -> dict | None:
        if not self.intent_pairs:
            return None
        total = sum(self.intent_pairs.values())
        matrix: dict[str, dict[str, int]] = {}
        for (labelled, read), n in sorted(self.intent_pairs.items()):
            matrix.setdefault(labelled, {})[read] = n
        return {"labelled_turns": total,
                "accuracy": sum(row.get(label, 0) for label, row in matrix.items()) / total,
                "labels": sorted(set(matrix) | {read for _, read in self.intent_pairs}),
                "matrix": matrix}

    def _escalation_confusion(self) -> dict | None:
        if not self.escalation_pairs:
            return None
        return {"labelled_turns": sum(self.escalation_pairs.values()),
                "matrix": {label: {said: self.escalation_pairs.get((label, said), 0)
                                   for said in YES_NO} for label in YES_NO}}


def policy_version(policy) -> str:
    """A content version of a policy artefact (its fitted numbers, not the file's layout)."""
    raw = json.dumps(policy.artifact.model_dump(), sort_keys=True).encode()
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:12]


def describe_stacks(engine: TurnEngine, sources: dict | None = None) -> dict:
    """Each model stack of ``engine``: the languages it serves in its flow, its NLU bundle
    (name, version, trained languages) and policy (content version), once loaded, and where
    each came from (``sources``: folders or registry versions, by stack)."""
    sources = sources or {}
    routed = engine.routed.route.languages if engine.routed is not None else ()
    stacks = {engine.primary.name: ([lang for lang in engine.flow.languages if lang not in routed],
                                    engine.primary)}
    if engine.routed is not None:
        stacks[engine.routed.route.name] = (
            [lang for lang in engine.flow.languages if lang in routed],
            engine.routed.get() if engine.routed.loaded else None)
    if engine.routed is not None and engine.routed.route.name not in sources:
        route = engine.routed.route
        sources = {**sources, route.name: {"nlu": _shown(route.nlu_dir),
                                           "policy": _shown(route.policy_dir)}}
    out = {}
    for name, (languages, stack) in stacks.items():
        entry: dict = {"serves": languages, "source": sources.get(name, {})}
        if stack is None:
            entry["loaded"] = False
        else:
            entry.update(loaded=True, nlu=str(stack.analyzer.model_id),
                         nlu_languages=list(stack.analyzer.languages),
                         policy=policy_version(stack.policy))
        out[name] = entry
    return out


def _check_bundle(bundle_dir: Path, languages: list[str], stack: str, option: str) -> None:
    """Refuse a bundle for a stack that serves a language it was not trained on."""
    config = load_bundle_config(bundle_dir)
    missing = [lang for lang in languages if lang not in config.languages]
    if missing:
        raise ModelChoiceError(
            f"{option} {bundle_dir} is trained for {', '.join(config.languages)}, but the "
            f"{stack} stack plays this flow's {', '.join(missing)} conversations: name a bundle "
            f"for the stack of its languages (--model/--nlu-version: the default stack, every "
            f"flow language but {', '.join(MULTILINGUAL_LANGUAGES)}; --multilingual-model/"
            f"--multilingual-nlu-version: {', '.join(MULTILINGUAL_LANGUAGES)})")


def language_route(flow: BotFlow, nlu_dir: Path | None = None,
                   multilingual_nlu_dir: Path | None = None,
                   multilingual_policy_dir: Path | None = None,
                   check_default: bool = True) -> LanguageRoute:
    """The service's language route (it/es/pt to the multilingual pair, or the pair named),
    after checking that each stack's bundle is trained for the flow languages it will play
    (:class:`ModelChoiceError` otherwise)."""
    route = LanguageRoute(MULTILINGUAL_LANGUAGES, multilingual_nlu_dir or MULTILINGUAL_BUNDLE_DIR,
                          multilingual_policy_dir or MULTILINGUAL_POLICY_DIR)
    if check_default:
        _check_bundle(nlu_dir or DEFAULT_BUNDLE_DIR,
                      [lang for lang in flow.languages if lang not in route.languages],
                      DEFAULT_STACK, "--model" if nlu_dir else "the shipped bundle")
    routed = [lang for lang in flow.languages if lang in route.languages]
    if routed:
        _check_bundle(route.nlu_dir, routed, route.name,
                      "--multilingual-model" if multilingual_nlu_dir else "the shipped bundle")
    return route


def engine_for(nlu_dir: Path | None = None, policy_dir: Path | None = None, threads: int = 1, *,
               flow_path: Path | None = None, multilingual_nlu_dir: Path | None = None,
               multilingual_policy_dir: Path | None = None, analyzer=None) -> TurnEngine:
    """The engine a batch job scores with, routed by language like the service: English (and
    any flow language not routed) on the default pair, Italian, Spanish and Portuguese on the
    multilingual pair. ``nlu_dir``/``policy_dir`` name the default pair (a registry champion
    serves there too), ``multilingual_*`` the other; each named bundle must be trained for
    every language its stack serves in the flow (``flow_path``, default the demo flow), or
    :class:`ModelChoiceError` says so. A named English pair never scores it/es/pt
    conversations (it did once, and precision on Italian fell from 0.86 to 0.46)."""
    route = language_route(load_flow(flow_path), nlu_dir, multilingual_nlu_dir,
                           multilingual_policy_dir, check_default=analyzer is None)
    return TurnEngine.load(flow_path, nlu_dir=nlu_dir, policy_dir=policy_dir, analyzer=analyzer,
                           route=route, threads=threads)


def stack_sources(nlu_dir: Path | None = None, policy_dir: Path | None = None,
                  multilingual_nlu_dir: Path | None = None,
                  multilingual_policy_dir: Path | None = None,
                  registry: dict[str, str] | None = None) -> dict:
    """Where each stack's models come from, for the report: folders, or the registry versions
    the options named (``registry``: ``{"nlu": "tierline-nlu version 3", ...}``, keys ``nlu``,
    ``policy``, ``multilingual_nlu``, ``multilingual_policy``)."""
    registry = registry or {}
    folders = {"nlu": (nlu_dir, DEFAULT_BUNDLE_DIR), "policy": (policy_dir, DEFAULT_POLICY_DIR),
               "multilingual_nlu": (multilingual_nlu_dir, MULTILINGUAL_BUNDLE_DIR),
               "multilingual_policy": (multilingual_policy_dir, MULTILINGUAL_POLICY_DIR)}
    where = {key: registry.get(key) or _shown(given or default)
             for key, (given, default) in folders.items()}
    return {DEFAULT_STACK: {"nlu": where["nlu"], "policy": where["policy"]},
            "multilingual": {"nlu": where["multilingual_nlu"],
                             "policy": where["multilingual_policy"]}}


def _shown(path: Path) -> str:
    """A path as the report shows it: relative to the project for its own files."""
    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def describe_flow(flow: BotFlow, flow_path: Path | None) -> dict:
    """The flow the evaluation ran with: its file, content digest, languages and teams."""
    from tierline.serving.live import flow_digest

    path = Path(flow_path) if flow_path else DEFAULT_FLOW_PATH
    routing = flow.escalation.routing
    return {"path": _shown(path), "digest": flow_digest(flow, path), "brand": flow.brand,
            "languages": list(flow.languages), "default_team": routing.default_team,
            "teams": sorted(set(routing.teams) | {routing.default_team} | set(routing.cues.values()))}


def input_format(path: Path | None) -> str:
    if path is None:
        return "service database"
    if path.is_dir():
        return ("WhatsApp chat exports" if any(p.suffix.lower() in (".txt", ".zip")
                                               for p in path.iterdir()) else "webhook payloads")
    return "WhatsApp chat export" if path.suffix.lower() in (".txt", ".zip") else "JSONL"


def evaluate_conversations(path: Path | None, engine: TurnEngine | None = None,
                           out_dir: Path = Path("reports/conversations"),
                           database_url: str | None = None,
                           kpi_days: tuple[date, date] | None = None, *,
                           business_names: tuple[str, ...] = (), date_order: str = "auto",
                           flow_path: Path | None = None, sources: dict | None = None) -> dict:
    """Play every conversation of the log on this machine; write ``report.json``,
    ``report.html`` and ``conversations.jsonl`` (one row per conversation: language, stacks,
    models, outcome). With ``database_url``, the service's KPIs join the report; with it and
    no ``path``, the conversations are the service's own (within ``kpi_days`` when given)."""
    if engine is None:
        engine, sources = TurnEngine.shipped(flow_path), sources or stack_sources()
    started = time.perf_counter()
    problems: list[ReadProblem] = []
    stats = ExportStats()
    out_dir.mkdir(parents=True, exist_ok=True)
    builder = ReportBuilder(out_dir / "conversations.jsonl")
    bar = tqdm(desc="conversations", unit="conv", mininterval=2)
    try:
        for chunk in chunks(read_input(path, problems, business_names=business_names,
                                       tz=ZoneInfo(engine.flow.business_hours.timezone),
                                       date_order=date_order, stats=stats,
                                       database_url=database_url,
                                       days=kpi_days if path is None else None), CHUNK):
            builder.add_chunk(score_conversations(engine, chunk))
            bar.update(len(chunk))
    finally:
        bar.close()
        builder.close()
    if builder.conversations == 0:
        raise InputError(f"{path or 'the database'}: no readable conversations"
                         + "".join(f"\n  {p}" for p in problems[:20]))
    report = builder.report(str(path) if path else "service database",
                            time.perf_counter() - started, "local", describe_stacks(engine, sources))
    report["input_format"] = input_format(path)
    report["flow"] = describe_flow(engine.flow, flow_path)
    add_input_notes(report, problems, stats)
    return finish_report(report, out_dir, database_url, kpi_days)


def add_input_notes(report: dict, problems: list[ReadProblem], stats: ExportStats | None = None
                    ) -> None:
    """The lines, files and rows not read (with where and why), and what an export held
    besides messages."""
    report["unreadable"] = [asdict(p) for p in problems]
    if stats is not None and any((stats.system_lines, stats.media, stats.deleted,
                                  stats.business_only_stretches, stats.notes)):
        report["export_lines_not_played"] = {
            "system_lines": stats.system_lines, "media_without_caption": stats.media,
            "deleted_messages": stats.deleted,
            "business_only_stretches": stats.business_only_stretches, "notes": stats.notes}


def finish_report(report: dict, out_dir: Path, database_url: str | None,
                  kpi_days: tuple[date, date] | None) -> dict:
    """Add the service KPIs (when a database is given) and write JSON + HTML."""
    from tierline.training.eval_report import render_html

    if database_url:
        report["service_kpis"] = service_kpis(database_url, kpi_days)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str,
                                                    ensure_ascii=False) + "\n", encoding="utf-8")
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
                               kpi_days: tuple[date, date] | None = None, threads: int = 1, *,
                               flow_path: Path | None = None,
                               multilingual_nlu_dir: Path | None = None,
                               multilingual_policy_dir: Path | None = None,
                               sources: dict | None = None) -> dict:
    """The same job on Ray Data: the JSONL log is read in blocks, each block's conversations
    are played by actors that load the ONNX engines once, and the results stream back into the
    same report builder. ``address`` joins a running cluster (default: a local instance). The
    file is read once here first, for the line numbers of lines that cannot be read (the
    actors then get only the readable lines)."""
    import ray

    if path is None or path.is_dir() or input_format(path) != "JSONL":
        raise InputError("the Ray engine reads JSONL logs; use the local engine for chat "
                         "exports, webhook folders and the database")
    options = dict(nlu_dir=nlu_dir, policy_dir=policy_dir, threads=threads, flow_path=flow_path,
                   multilingual_nlu_dir=multilingual_nlu_dir,
                   multilingual_policy_dir=multilingual_policy_dir)
    flow = load_flow(flow_path)
    language_route(flow, nlu_dir, multilingual_nlu_dir, multilingual_policy_dir)  # refuse early
    problems: list[ReadProblem] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    source = path
    valid = sum(1 for _ in read_conversations(path, problems))
    if problems:
        source = out_dir / ".readable.jsonl"
        with open(source, "w", encoding="utf-8") as fh:
            for conv in read_conversations(path, []):
                fh.write(conv.model_dump_json(by_alias=False) + "\n")
    if not valid:
        raise InputError(f"{path}: no readable conversations"
                         + "".join(f"\n  {p}" for p in problems[:20]))
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    started = time.perf_counter()
    builder = ReportBuilder(out_dir / "conversations.jsonl")
    stacks: dict = {}
    ds = ray.data.read_text(str(source.resolve()))
    scored = ds.map_batches(_RayScorer, fn_constructor_kwargs={"options": options},
                            batch_size=CHUNK, batch_format="pandas", concurrency=1)
    for batch in tqdm(scored.iter_batches(batch_format="pandas", batch_size=1024),
                      desc="result batches", mininterval=2):
        for row in batch.to_dict("records"):
            if row["kind"] == "stats":
                builder.model_seconds += row["model_seconds"]
                builder.unique_texts += int(row["unique_texts"])
                for name, entry in json.loads(row["payload"]).items():
                    if entry.get("loaded") or name not in stacks:
                        stacks[name] = entry
                continue
            builder.add(ConversationResult.from_json(row["payload"]))
    if source != path:
        source.unlink()
    report = builder.report(str(path), time.perf_counter() - started, "ray",
                            {n: {**e, "source": (sources or {}).get(n, {})} for n, e in stacks.items()})
    report["input_format"] = "JSONL"
    report["flow"] = describe_flow(flow, flow_path)
    add_input_notes(report, problems)
    return finish_report(report, out_dir, database_url, kpi_days)


class _RayScorer:
    """A Ray Data actor: one engine per actor, a block of JSONL lines in, results out."""

    def __init__(self, options: dict) -> None:
        self.engine = engine_for(**options)

    def __call__(self, batch):
        import pandas as pd

        conversations = [LogConversation.model_validate_json(line)
                         for line in batch["text"] if line.strip()]
        chunk = score_conversations(self.engine, conversations)
        rows = [{"kind": "conversation", "payload": r.to_json(), "model_seconds": 0.0,
                 "unique_texts": 0} for r in chunk.results]
        rows.append({"kind": "stats", "payload": json.dumps(describe_stacks(self.engine)),
                     "model_seconds": chunk.model_seconds, "unique_texts": chunk.unique_texts})
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
