"""One customer turn end to end: NLU -> escalation policy -> menu bot (or handoff).

``TurnEngine.turn(state, text)`` is the one call every channel uses (WhatsApp worker, terminal
chat, HTTP ``/v1/decide``, the simulator): it returns what to send, the policy's decision with
its reasons, and the new conversation state. No I/O happens here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tierline.nlu.analyzer import AnalysisResult, BundleAnalyzer
from tierline.nlu.bundle import MULTILINGUAL_BUNDLE_DIR, MULTILINGUAL_LANGUAGES, MULTILINGUAL_POLICY_DIR
from tierline.nlu.bot import (
    MENU_AGENT,
    TITLE_CHOICES,
    announces_a_question,
    ConversationState,
    MenuBot,
    Reply,
    menu_choice,
    presence_check,
    small_talk_of,
)
from tierline.nlu.directory import (
    CsvCustomerDirectory,
    CsvOrderLookup,
    CustomerDirectory,
    OrderLookup,
)
from tierline.nlu.faq import FaqIndex
from tierline.nlu.flow import BotFlow, load_flow
from tierline.nlu.human_request import HumanRequests
from tierline.nlu.labels import OUT_OF_SCOPE, SMALL_TALK_INTENTS
from tierline.nlu.language import guess_language, has_words
from tierline.nlu.order_numbers import remember
from tierline.nlu.policy import (
    Decision,
    EscalationPolicy,
    PolicyArtifact,
    PolicyContext,
)
from tierline.nlu.reasons import Reason
from tierline.nlu.routing import Analyzer, Lazy, LazyBundle

RECENT_INTENTS = 5
#: The name of the primary model stack (``models/nlu`` + ``models/policy`` by default).
DEFAULT_STACK = "default"


@dataclass
class Handoff:
    """The conversation goes to a human: which team, how urgent, why, and whether off hours."""

    team: str
    priority: str
    reason_codes: list[Reason]
    p_escalate: float
    off_hours: bool
    back_at: str | None = None

    @property
    def reasons(self) -> list[str]:
        """The English phrases of :attr:`reason_codes`."""
        return [r.text for r in self.reason_codes]


@dataclass
class TurnResult:
    """Everything one turn produced."""

    replies: list[Reply]
    decision: Decision
    analysis: AnalysisResult
    state: ConversationState
    handoff: Handoff | None = None
    bot_failed: bool = False
    #: Which model stack decided ("default", or the language route's name): a policy retrains
    #: only on decisions its own stack made (stored with each decision).
    model_stack: str = DEFAULT_STACK

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
            "reason_codes": [r.to_dict() for r in self.decision.reason_codes],
            "team": self.decision.team,
            "priority": self.decision.priority,
            "off_hours": self.handoff.off_hours if self.handoff else False,
            "language": self.state.language,
            "model": self.analysis.model.to_dict() if self.analysis.model else None,
        }


@dataclass
class ModelStack:
    """One NLU bundle with the policy fitted on its outputs and a bot whose FAQ index holds that
    encoder's embeddings: the three must never be mixed across bundles. ``name`` is recorded
    with each decision the stack makes."""

    analyzer: BundleAnalyzer
    policy: EscalationPolicy
    bot: MenuBot
    #: The flow's example requests for a human, embedded with this stack's encoder.
    requests: HumanRequests
    name: str = DEFAULT_STACK


@dataclass(frozen=True)
class LanguageRoute:
    """Conversations in ``languages`` go to this NLU bundle and the policy fitted on it.

    The shipped service routes Italian, Spanish and Portuguese to the multilingual pair and
    keeps English on the English one (measured better and 3x faster on English; models/README.md).
    """

    languages: tuple[str, ...]
    nlu_dir: Path
    policy_dir: Path
    name: str = "multilingual"


class LazyStack(Lazy[ModelStack]):
    """The model stack of a :class:`LanguageRoute`, loaded on first use (an English-only
    deployment never loads the second encoder); thread-safe, loaded once."""

    def __init__(self, route: LanguageRoute, load: Callable[[], ModelStack]) -> None:
        super().__init__(load)
        self.route = route


#: Intents that name no topic to route by.
_GENERIC = SMALL_TALK_INTENTS + (OUT_OF_SCOPE, "contact_human_agent", "contact_customer_service",
                                  "complaint")
#: How sure the intent model must be of a message's intent for a handoff to route by it.
ROUTING_CONFIDENCE = 0.5


def _routes(analysis: AnalysisResult) -> bool:
    """The message names a topic a handoff may route by."""
    return analysis.intent not in _GENERIC and analysis.intent_confidence >= ROUTING_CONFIDENCE


class TurnEngine:
    """Analyzer + policy + bot, configured by one flow file.

    With a :class:`LanguageRoute`, each turn runs on the model stack of the conversation's
    language (detected from the message before the analysis, see :mod:`tierline.nlu.language`).
    """

    def __init__(self, flow: BotFlow, primary: ModelStack, customers: CustomerDirectory,
                 routed: LazyStack | None = None) -> None:
        self.flow = flow
        self.primary = primary
        self.routed = routed
        self.customers = customers
        routes = {}
        if routed is not None:
            bundle = LazyBundle(lambda: routed.get().analyzer)
            routes = {language: bundle for language in routed.route.languages}
        #: The analysis entry point over this engine's bundles (the same objects its stacks
        #: use): what ``/v1/analyze``, the worker's batches and batch evaluation call.
        self.nlu = Analyzer(LazyBundle.of(primary.analyzer), routes, languages=flow.languages,
                            default_language=flow.default_language)

    @property
    def analyzer(self) -> BundleAnalyzer:
        """The primary (default-language) bundle."""
        return self.primary.analyzer

    @property
    def policy(self) -> EscalationPolicy:
        """The primary (default-language) policy."""
        return self.primary.policy

    @property
    def bot(self) -> MenuBot:
        return self.primary.bot

    @classmethod
    def load(cls, flow_path: str | Path | None = None, nlu_dir: str | Path | None = None,
             policy_dir: str | Path | None = None, analyzer: BundleAnalyzer | None = None,
             orders: OrderLookup | None = None, customers: CustomerDirectory | None = None,
             policy_artifact: PolicyArtifact | None = None, route: LanguageRoute | None = None,
             threads: int = 1, route_analyzer: BundleAnalyzer | None = None) -> TurnEngine:
        """Build from the flow file and model folders (defaults: the shipped English pair), one
        pair for every language unless a ``route`` is given: :meth:`shipped` is what serves
        Italian, Spanish and Portuguese on the multilingual pair.

        ``policy_artifact`` replaces the policy folder (the simulator passes an untrained one).
        ``route`` sends some languages to another bundle and its policy, loaded on first use
        (:meth:`shipped` builds the service's default routing); ``route_analyzer`` is that
        bundle when already loaded.
        """
        flow = load_flow(flow_path)
        orders = orders or CsvOrderLookup(flow.path(flow.orders.file))
        analyzer = analyzer or BundleAnalyzer.load(nlu_dir, threads=threads)
        policy = (EscalationPolicy(policy_artifact, flow.escalation) if policy_artifact
                  else EscalationPolicy.load(flow.escalation, policy_dir))
        routed = None
        if route is not None:
            routed = LazyStack(route, lambda: cls._stack(
                flow, route_analyzer or BundleAnalyzer.load(route.nlu_dir, threads=threads),
                EscalationPolicy.load(flow.escalation, route.policy_dir), orders, route.name))
        return cls(flow, cls._stack(flow, analyzer, policy, orders),
                   customers or CsvCustomerDirectory(flow.path(flow.customers.file)), routed)

    @classmethod
    def shipped(cls, flow_path: str | Path | None = None, **kwargs) -> TurnEngine:
        """The service's default: the English pair, with it/es/pt routed to the multilingual
        bundle and its policy (what ``make run`` serves)."""
        return cls.load(flow_path, route=LanguageRoute(
            MULTILINGUAL_LANGUAGES, MULTILINGUAL_BUNDLE_DIR, MULTILINGUAL_POLICY_DIR), **kwargs)

    @staticmethod
    def _stack(flow: BotFlow, analyzer: BundleAnalyzer, policy: EscalationPolicy, orders: OrderLookup,
               name: str = DEFAULT_STACK) -> ModelStack:
        faq = FaqIndex.load(flow.path(flow.faq.file), analyzer, flow.faq.min_similarity,
                             flow.faq.out_of_scope_similarity)
        escalation = flow.escalation
        # The FAQ's own questions are questions for the bot, not requests for a person.
        faq_questions = [q for e in faq.entries for qs in e.questions.values() for q in qs]
        requests = HumanRequests(
            [t for texts in escalation.explicit_examples.values() for t in texts],
            [t for texts in escalation.explicit_counterexamples.values() for t in texts]
            + faq_questions,
            escalation.explicit_keywords, analyzer, escalation.explicit_similarity)
        return ModelStack(analyzer, policy, MenuBot(flow, orders, faq), requests, name)

    def stack_for(self, language: str) -> ModelStack:
        """The model stack that serves conversations in ``language``."""
        if self.routed is not None and language in self.routed.route.languages:
            return self.routed.get()
        return self.primary

    def language_of(self, state: ConversationState, text: str) -> str:
        """The conversation's language after ``text``: a locked conversation or flow keeps its
        language; the first message sets it; later ones change it only on a confident
        detection of substantial text (:mod:`tierline.nlu.language`). "Sets" means the first message with
        words: an opening "3" or "ND-123456" leaves the next message to choose."""
        if state.language_locked or self.flow.language_mode == "lock":
            return state.language if state.language_locked else self.flow.default_language
        typed = self.flow.typed_title(text)
        if typed is not None:  # "Estado del pedido" is a Spanish speaker's choice
            return state.language if state.language in typed[1] else typed[1][0]
        established = any(has_words(h["text"]) for h in state.history if h["role"] == "customer")
        return guess_language(text, self.flow.languages, state.language, established=established)

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

    def is_explicit(self, text: str, analysis: AnalysisResult, button_id: str | None,
                    stack: ModelStack | None = None) -> bool:
        """Asked for a human: the menu option, a request in any words (:mod:`tierline.nlu.human_request`),
        or the intent said confidently of a message whose nearest example is a request ("ieri ho
        sentito un vostro operatore e abbiamo risolto tutto" tells of an agent, asks for none)."""
        stack = stack or self.primary
        choice = menu_choice(text, button_id)
        if choice is not None:  # a menu option says what it is: "Estado del pedido" is not a request
            return choice == MENU_AGENT
        if announces_a_question(text):  # "una pregunta" is near "alguien me puede ayudar?"
            return False
        return stack.requests.asks(text, analysis) or (
            analysis.intent == "contact_human_agent" and analysis.intent_confidence >= 0.7
            and stack.requests.nearest(analysis)[0] and not stack.requests.declines(text)
            and not stack.requests.names_someone_else(text))

    def analyze_turns(self, states: Sequence[ConversationState], texts: Sequence[str]
                      ) -> list[AnalysisResult]:
        """Analyse several customers' messages with one model call per model stack (the
        worker's batches). Pass each result to ``turn(..., analysis=...)`` with the same state
        and text."""
        if len(states) != len(texts):
            raise ValueError("one state per text")
        return self.analyze_texts(texts, [self.language_of(s, t) for s, t in zip(states, texts)])

    def analyze_texts(self, texts: Sequence[str], languages: Sequence[str] | None = None
                      ) -> list[AnalysisResult]:
        """Analyse ``texts`` on the bundles of their ``languages`` (default: detected from each
        text alone, falling back to the flow's default language): :attr:`nlu`. For callers
        without conversation state (``/v1/analyze``, the simulator, batch evaluation);
        ``turn`` redoes an analysis that came from another bundle than the conversation's."""
        return self.nlu.analyze(list(texts), None if languages is None else list(languages))

    def turn(self, state: ConversationState, text: str, now: datetime | None = None,
             button_id: str | None = None, analysis: AnalysisResult | None = None,
             act: bool = True) -> TurnResult:
        """Process one customer message and return the replies, decision and new state.

        ``analysis`` may be passed when it was computed in a batch (the simulator does).
        With ``act=False`` the decision is computed but not carried out: the bot answers as if
        the policy had said no (used to record features along simulated conversations).
        """
        now = now or datetime.now(timezone.utc)
        typed = None if button_id else self.flow.typed_title(text)
        if typed is not None:  # a menu title typed, or a tap as a chat export writes it
            button_id = TITLE_CHOICES[typed[0]]
        state = ConversationState.from_dict(state.to_dict())  # the caller's state is left as it was
        state.language = self.language_of(state, text)
        stack = self.stack_for(state.language)
        if analysis is None or analysis.model != stack.analyzer.model_id:
            analysis = stack.analyzer.analyze([text], language=state.language)[0]
        state.remember("customer", text, now.isoformat())
        # An order number the customer writes is context for the agent too, handoff or not.
        written = [found.number for found in stack.bot.order_numbers.find_all(text)]
        if written:
            state.order_number = written[0]
            state.order_numbers = remember(state.order_numbers, written)

        if state.step == "with_agent":
            # The agent has the conversation: the bot stays quiet and the decision stands.
            decision = stack.policy.decide(analysis, self.context_of(state), explicit=False,
                                          routing=self._routing(state, analysis, explicit=False))
            decision.escalate = True
            decision.reason_codes = [Reason("with_agent")] + decision.reason_codes
            self._update_counters(state, analysis, stack.policy, failures=0)
            replies = []
            if not state.told_with_agent:  # once: "an agent has your conversation"
                state.told_with_agent = True
                replies = [Reply(self.flow.text("with_agent", state.language))]
                state.remember("bot", replies[0].text, now.isoformat())
            return TurnResult(replies, decision, analysis, state, model_stack=stack.name)

        # "hay alguien?" opening a conversation is answered with the menu (its last option is
        # a person); later it is read like any other message.
        opening_check = state.turns == 0 and presence_check(text)
        explicit = not opening_check and self.is_explicit(text, analysis, button_id, stack)
        decision = stack.policy.decide(analysis, self.context_of(state), explicit,
                                      routing=self._routing(state, analysis, explicit))
        if not explicit and small_talk_of(text) is not None:
            # "ok grazie", "sorry, wrong chat", "never mind, cancel that question": small talk
            # never hands a conversation to a human by itself, whatever the intent model
            # guessed for it ("perdón, me equivoqué de chat" read as delete_account).
            decision.escalate, decision.reason_codes = False, []
        elif not decision.by_rule and (opening_check or stack.bot.gives_order_number(text)
                                       or stack.requests.declines(text)):
            # "scusa ho sbagliato, è ND-369246", "foi mal, é ND-400922": an answer with an order
            # number is the bot's to look up (the intent model read both as payment_issue); "ieri
            # ho parlato con un operatore, tutto a posto" tells of an agent and asks for none.
            # The score alone does not hand these over.
            decision.escalate = False
        response = None
        if not (decision.escalate and act):
            response = stack.bot.respond(state, text, analysis, button_id)
            reason = stack.policy.failed_replies_rule(state.failed_attempts + response.failures,
                                                      state.tier)
            if act and response.failed and reason:
                decision.escalate = True
                decision.reason_codes = [reason] + [r for r in decision.reason_codes
                                                    if r.code != "failed_replies"]
        failed = bool(response and response.failed)
        self._update_counters(state, analysis, stack.policy, response.failures if response else 0)
        if decision.escalate and act:
            return self._hand_off(state, decision, analysis, now, failed, stack.name)
        for reply in response.replies:
            state.remember("bot", reply.text, now.isoformat())
        return TurnResult(response.replies, decision, analysis, state, bot_failed=failed,
                          model_stack=stack.name)

    def _hand_off(self, state: ConversationState, decision: Decision, analysis: AnalysisResult,
                  now: datetime, failed: bool, stack_name: str) -> TurnResult:
        hours = self.flow.business_hours
        off_hours = not hours.is_open(now)
        opening = hours.next_opening(now) if off_hours else None
        back_at = opening.strftime("%a %d %b %H:%M") if opening else None  # the agents' view
        text = (self.flow.text("off_hours", state.language,
                               back_at=self.flow.when(opening, state.language)) if opening
                else self.flow.text("handoff", state.language))
        state.step = "with_agent"
        state.escalated = True
        state.told_with_agent = False
        state.remember("bot", text, now.isoformat())
        handoff = Handoff(team=decision.team, priority=decision.priority,
                          reason_codes=decision.reason_codes, p_escalate=decision.p_escalate,
                          off_hours=off_hours, back_at=back_at)
        return TurnResult([Reply(text)], decision, analysis, state, handoff=handoff,
                          bot_failed=failed, model_stack=stack_name)

    @staticmethod
    def _routing(state: ConversationState, analysis: AnalysisResult,
                 explicit: bool) -> tuple[str, list[str]]:
        """What a handoff now routes by: an intent, and topics for when the intent names no
        team. The message's own confident intent first. A problem reported without one
        continues an earlier problem's intent ("sito ridicolo!!!" after a password reset that
        never came is technical's), or else is routed by its own words and the account topic
        the conversation carries ("sta app è una ciofeca" after the app logs the customer out
        is technical's; a parcel stuck in customs after a question about payment methods is not
        billing's: money is not carried). A request for a
        person, or anything else, follows the conversation: its latest confident intent
        ("agent please" after a refund question goes to billing), else the latest topics it
        named."""
        if _routes(analysis):
            return analysis.intent, []
        if analysis.problem and not explicit:
            if state.problem_intent:
                return state.problem_intent, []
            return OUT_OF_SCOPE, list(state.routing_topics)
        return state.routing_intent or OUT_OF_SCOPE, list(state.routing_topics)

    @staticmethod
    def _update_counters(state: ConversationState, analysis: AnalysisResult,
                         policy: EscalationPolicy, failures: int) -> None:
        routing = policy.config.routing
        state.turns += 1
        state.failed_attempts += failures
        if not analysis.empty:
            state.recent_intents = (state.recent_intents + [analysis.intent])[-RECENT_INTENTS:]
            if _routes(analysis):
                state.routing_intent = analysis.intent
                if analysis.problem:
                    state.problem_intent = analysis.intent
            carried = [t for t in analysis.topics or () if t in routing.carried_topics]
            if carried:
                state.routing_topics = carried
            state.max_frustration = max(state.max_frustration, analysis.frustration)
            state.frustrated_turns += int(analysis.frustration >= policy.artifact.frustrated_at)
