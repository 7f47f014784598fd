"""One customer turn end to end: NLU -> escalation policy -> menu bot (or handoff).

``TurnEngine.turn(state, text)`` is the one call every channel uses (WhatsApp worker, terminal
chat, HTTP ``/v1/decide``, the simulator): it returns what to send, the policy's decision with
its reasons, and the new conversation state. No I/O happens here.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from nlu.analyzer import AnalysisResult, Analyzer
from nlu.bot import MENU_AGENT, MENU_DIGITS, ConversationState, MenuBot, Reply
from nlu.directory import (
    CsvCustomerDirectory,
    CsvOrderLookup,
    CustomerDirectory,
    OrderLookup,
)
from nlu.faq import FaqIndex
from nlu.flow import BotFlow, load_flow
from nlu.labels import OUT_OF_SCOPE, SMALL_TALK_INTENTS
from nlu.language import guess_language
from nlu.policy import (
    Decision,
    EscalationPolicy,
    PolicyArtifact,
    PolicyContext,
    asks_for_human,
)

RECENT_INTENTS = 5


@dataclass
class Handoff:
    """The conversation goes to a human: which team, how urgent, why, and whether off hours."""

    team: str
    priority: str
    reasons: list[str]
    p_escalate: float
    off_hours: bool
    back_at: str | None = None


@dataclass
class TurnResult:
    """Everything one turn produced."""

    replies: list[Reply]
    decision: Decision
    analysis: AnalysisResult
    state: ConversationState
    handoff: Handoff | None = None
    bot_failed: bool = False

    def to_dict(self) -> dict:
        """The per-turn JSON of ``tierline chat`` and ``/v1/decide``."""
        return {
            "reply": "\n".join(r.text for r in self.replies),
            "buttons": [list(b) for r in self.replies for b in r.buttons],
            "intent": self.analysis.intent,
            "intent_confidence": round(self.analysis.intent_confidence, 4),
            "frustration": round(self.analysis.frustration, 4),
            "cues": self.analysis.cues,
            "p_escalate": round(self.decision.p_escalate, 4),
            "escalate": self.decision.escalate,
            "reasons": self.decision.reasons,
            "team": self.decision.team,
            "priority": self.decision.priority,
            "off_hours": self.handoff.off_hours if self.handoff else False,
        }


class TurnEngine:
    """Analyzer + policy + bot, configured by one flow file."""

    def __init__(self, flow: BotFlow, analyzer: Analyzer, policy: EscalationPolicy,
                 bot: MenuBot, customers: CustomerDirectory) -> None:
        self.flow = flow
        self.analyzer = analyzer
        self.policy = policy
        self.bot = bot
        self.customers = customers

    @classmethod
    def load(cls, flow_path: str | Path | None = None, nlu_dir: str | Path | None = None,
             policy_dir: str | Path | None = None, analyzer: Analyzer | None = None,
             orders: OrderLookup | None = None, customers: CustomerDirectory | None = None,
             policy_artifact: PolicyArtifact | None = None) -> TurnEngine:
        """Build from the flow file and model folders (defaults: the shipped ones).

        ``policy_artifact`` replaces the policy folder (the simulator passes an untrained one).
        """
        flow = load_flow(flow_path)
        analyzer = analyzer or Analyzer.load(nlu_dir)
        policy = (EscalationPolicy(policy_artifact, flow.escalation) if policy_artifact
                  else EscalationPolicy.load(flow.escalation, policy_dir))
        faq = FaqIndex.load(flow.path(flow.faq.file), analyzer, flow.faq.min_similarity)
        bot = MenuBot(flow, orders or CsvOrderLookup(flow.path(flow.orders.file)), faq)
        return cls(flow, analyzer, policy, bot,
                   customers or CsvCustomerDirectory(flow.path(flow.customers.file)))

    def new_state(self, conversation_id: str, customer_id: str = "", tier: str | None = None,
                  language: str | None = None) -> ConversationState:
        """A fresh conversation; the tier comes from the directory unless given."""
        return ConversationState(
            conversation_id=conversation_id, customer_id=customer_id,
            tier=tier or self.customers.tier_of(customer_id),
            language=language or self.flow.default_language, language_locked=language is not None)

    def context_of(self, state: ConversationState) -> PolicyContext:
        """What the policy may know of the conversation before the new message."""
        return PolicyContext(tier=state.tier, turns=state.turns,
                             failed_attempts=state.failed_attempts,
                             max_frustration=state.max_frustration,
                             frustrated_turns=state.frustrated_turns,
                             recent_intents=list(state.recent_intents))

    def is_explicit(self, text: str, analysis: AnalysisResult, button_id: str | None) -> bool:
        """Asked for a human: the menu option, a keyword, or the intent said confidently."""
        choice = button_id or MENU_DIGITS.get(text.strip())
        return (choice == MENU_AGENT
                or asks_for_human(text, self.flow.escalation.explicit_keywords)
                or (analysis.intent == "contact_human_agent" and analysis.intent_confidence >= 0.7))

    def analyze_turns(self, states: Sequence[ConversationState], texts: Sequence[str]
                      ) -> list[AnalysisResult]:
        """Analyse several customers' messages in one model call (the worker's batches).

        Pass each result to ``turn(..., analysis=...)`` with the same state and text.
        """
        if len(states) != len(texts):
            raise ValueError("one state per text")
        return self.analyzer.analyze(list(texts))

    def turn(self, state: ConversationState, text: str, now: datetime | None = None,
             button_id: str | None = None, analysis: AnalysisResult | None = None,
             act: bool = True) -> TurnResult:
        """Process one customer message and return the replies, decision and new state.

        ``analysis`` may be passed when it was computed in a batch (the simulator does).
        With ``act=False`` the decision is computed but not carried out: the bot answers as if
        the policy had said no (used to record features along simulated conversations).
        """
        now = now or datetime.now(timezone.utc)
        state = copy.deepcopy(state)
        analysis = analysis or self.analyzer.analyze([text])[0]
        if not state.language_locked and not analysis.empty:
            state.language = guess_language(text, self.flow.languages, state.language)
        state.remember("customer", text, now.isoformat())

        if state.step == "with_agent":
            # The agent has the conversation: the bot stays quiet and the decision stands.
            decision = self.policy.decide(analysis, self.context_of(state), explicit=False,
                                          intent_for_routing=self._routing_intent(state, analysis))
            decision.escalate = True
            decision.reasons = ["conversation is already with an agent"] + decision.reasons
            self._update_counters(state, analysis, failed=False)
            return TurnResult([], decision, analysis, state)

        explicit = self.is_explicit(text, analysis, button_id)
        decision = self.policy.decide(analysis, self.context_of(state), explicit,
                                      intent_for_routing=self._routing_intent(state, analysis))
        response = None
        if not (decision.escalate and act):
            response = self.bot.respond(state, text, analysis, button_id)
            if act and response.failed and \
                    state.failed_attempts + 1 >= self.flow.escalation.max_failed_attempts:
                decision.escalate = True
                reason = f"{state.failed_attempts + 1} failed bot replies"
                decision.reasons = [reason] + [r for r in decision.reasons if r != reason]
        failed = bool(response and response.failed)
        self._update_counters(state, analysis, failed)
        if decision.escalate and act:
            return self._hand_off(state, decision, analysis, now, failed)
        for reply in response.replies:
            state.remember("bot", reply.text, now.isoformat())
        return TurnResult(response.replies, decision, analysis, state, bot_failed=failed)

    def _hand_off(self, state: ConversationState, decision: Decision, analysis: AnalysisResult,
                  now: datetime, failed: bool) -> TurnResult:
        hours = self.flow.business_hours
        off_hours = not hours.is_open(now)
        back_at = hours.next_opening(now).strftime("%a %d %b %H:%M") if off_hours else None
        text = (self.flow.text("off_hours", state.language, back_at=back_at) if off_hours
                else self.flow.text("handoff", state.language))
        state.step = "with_agent"
        state.escalated = True
        state.remember("bot", text, now.isoformat())
        handoff = Handoff(team=decision.team, priority=decision.priority,
                          reasons=decision.reasons, p_escalate=decision.p_escalate,
                          off_hours=off_hours, back_at=back_at)
        return TurnResult([Reply(text)], decision, analysis, state, handoff=handoff,
                          bot_failed=failed)

    @staticmethod
    def _routing_intent(state: ConversationState, analysis: AnalysisResult) -> str:
        """Route by the latest substantive intent: "agent please" after a refund goes to billing."""
        generic = SMALL_TALK_INTENTS + (OUT_OF_SCOPE, "contact_human_agent", "contact_customer_service")
        if analysis.intent not in generic and analysis.intent_confidence >= 0.5:
            return analysis.intent
        for intent in reversed(state.recent_intents):
            if intent not in generic:
                return intent
        return OUT_OF_SCOPE  # nothing confident to route by: the default team

    def _update_counters(self, state: ConversationState, analysis: AnalysisResult, failed: bool
                         ) -> None:
        state.turns += 1
        state.failed_attempts += int(failed)
        if not analysis.empty:
            state.recent_intents = (state.recent_intents + [analysis.intent])[-RECENT_INTENTS:]
            state.max_frustration = max(state.max_frustration, analysis.frustration)
            state.frustrated_turns += int(analysis.frustration >= self.policy.artifact.frustrated_at)
