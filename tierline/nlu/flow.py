"""The bot flow: one YAML file (``data/bot/bot.yaml``) validated by these pydantic models.

A business changes its bot here, without touching code: brand, languages, every message,
order-number format, FAQ, business hours (timezone-aware, holidays included), escalation
thresholds per customer tier, sensitive topics, team routing and priorities. A mistake in the
file fails at load time with the path of the bad field.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from functools import cached_property
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from tierline.paths import DATA_DIR
from tierline.nlu.labels import INTENT_LABELS
from tierline.nlu.reasons import ESCALATION_CUES
from tierline.nlu.text import words_of

DEFAULT_FLOW_PATH = DATA_DIR / "bot" / "bot.yaml"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class FlowError(ValueError):
    """The flow file is missing or invalid; the message names the bad field."""


#: WhatsApp Cloud API limits on what the bot sends: a reply button's title, a list row's title,
#: a message body. Over the limit, Meta refuses the send or cuts the text ("Parla con un
#: operatore" came out "Parla con un operato"), so the flow is refused at load time instead.
MAX_BUTTON_TITLE = 20
MAX_LIST_ROW_TITLE = 24
MAX_BODY = 1024
#: Message keys used as reply-button titles (``menu_button`` labels the menu's list button).
BUTTON_TITLES = ("menu_button", "menu_order_status", "menu_faq", "menu_agent", "csat_button")


class Messages(BaseModel):
    """Every text the bot can send, in one language."""

    welcome: str
    menu_button: str
    menu_order_status: str
    menu_faq: str
    menu_agent: str
    ask_order_number: str
    invalid_order_number: str
    order_not_found: str
    order_status: str
    faq_prompt: str
    fallback: str
    handoff: str
    off_hours: str
    goodbye: str
    thanks: str
    unsupported_message: str
    with_agent: str
    #: Sent when an agent takes the conversation (claims its ticket).
    agent_joined: str
    #: After an agent resolved the ticket: the 1-5 question, its list button, and the thanks.
    csat_question: str
    csat_button: str
    csat_thanks: str
    #: How ``{back_at}`` in ``off_hours`` is written: ``{weekday} {day} {month} {time}`` filled
    #: from the names below (English by default, so older flow files still load).
    back_at: str = "{weekday} {day} {month} {time}"
    weekdays: list[str] = Field(default=["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
                                min_length=7, max_length=7)
    months: list[str] = Field(default=["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"], min_length=12, max_length=12)
    #: Order status names as the customer reads them, by the status code the order system
    #: gives (``demo_orders.csv``: processing, shipped, in transit, ...); a code without a name
    #: is shown as it is.
    order_statuses: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _whatsapp_limits(self) -> Messages:
        too_long = [f"{key} ({len(getattr(self, key))} > {MAX_BUTTON_TITLE} characters)"
                    for key in BUTTON_TITLES if len(getattr(self, key)) > MAX_BUTTON_TITLE]
        too_long += [f"{key} ({len(value)} > {MAX_BODY} characters)"
                     for key, value in self.__dict__.items()
                     if isinstance(value, str) and len(value) > MAX_BODY]
        if too_long:
            raise ValueError("over WhatsApp's limits: " + ", ".join(too_long))
        return self


class OrdersConfig(BaseModel):
    """Order numbers: their format and the demo lookup file (relative to the flow file)."""

    number_pattern: str
    file: str = "demo_orders.csv"

    @field_validator("number_pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return v


class CustomersConfig(BaseModel):
    """The default file-backed customer directory."""

    file: str = "customers.csv"


class FaqConfig(BaseModel):
    """FAQ file and the cosine similarity a question needs to match an entry by embedding."""

    file: str = "faq.yaml"
    min_similarity: float = Field(0.85, ge=0, le=1)
    #: A message the intent model calls out of scope needs a closer question: off-topic chat
    #: ("whats the capital of france") sits 0.85 from some shipping question, paraphrases of a
    #: real FAQ question ("do you ship to germany") 0.93 and above.
    out_of_scope_similarity: float = Field(0.92, ge=0, le=1)


class BusinessHours(BaseModel):
    """Opening hours per weekday in a timezone, and closed dates."""

    timezone: str
    weekly: dict[str, list[tuple[time, time]]]
    holidays: list[date] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {v!r}") from None
        return v

    @field_validator("weekly")
    @classmethod
    def _weekdays(cls, v: dict[str, list[tuple[time, time]]]) -> dict:
        unknown = set(v) - set(WEEKDAYS)
        if unknown:
            raise ValueError(f"unknown weekday(s) {sorted(unknown)}; use {list(WEEKDAYS)}")
        for day, spans in v.items():
            for start, end in spans:
                if end <= start:
                    raise ValueError(f"{day}: closing time {end} is not after opening {start}")
        return v

    def is_open(self, at: datetime) -> bool:
        """True when ``at`` (timezone-aware; naive means UTC) falls inside opening hours."""
        local = self._local(at)
        if local.date() in self.holidays:
            return False
        spans = self.weekly.get(WEEKDAYS[local.weekday()], [])
        return any(start <= local.time() < end for start, end in spans)

    def next_opening(self, at: datetime) -> datetime:
        """The next moment the team is back (local time), searching up to 30 days ahead."""
        local = self._local(at)
        for offset in range(31):
            day = local.date() + timedelta(days=offset)
            if day in self.holidays:
                continue
            for start, _ in sorted(self.weekly.get(WEEKDAYS[day.weekday()], [])):
                candidate = datetime.combine(day, start, tzinfo=local.tzinfo)
                if candidate > local:
                    return candidate
        raise FlowError("business_hours: no opening time in the next 30 days")

    def _local(self, at: datetime) -> datetime:
        if at.tzinfo is None:
            at = at.replace(tzinfo=ZoneInfo("UTC"))
        return at.astimezone(ZoneInfo(self.timezone))


class Routing(BaseModel):
    """Which team gets which intents; everything else goes to ``default_team``."""

    default_team: str = "general"
    teams: dict[str, list[str]] = Field(default_factory=dict)
    #: Cues that name the team whatever the intent model read ("charged twice" is billing's
    #: even when read as ``cancel_order``): cue name -> team.
    cues: dict[str, str] = Field(default_factory=dict)
    #: Teams that only take messages about a topic (:data:`tierline.nlu.cues.TOPICS`): team ->
    #: topic. A message routed to such a team without its topic goes to ``default_team``: the
    #: intent model's ``payment_issue`` for "the mug came with a scratch", a lawyer threatened
    #: about a late parcel. Applies when the message's topics are known.
    needs_topic: dict[str, str] = Field(default_factory=dict)
    #: With no intent to route by, the team of the message's topic: topic -> team ("I'd rather
    #: discuss a charge with someone" is billing's).
    topic_teams: dict[str, str] = Field(default_factory=dict)
    #: Topics a conversation carries to a later request with no topic of its own ("changed my
    #: email and can't log in", then "can someone call me?" is technical's). Money words are in
    #: most shopping questions (price, discount, card), so by default only an account carries.
    carried_topics: list[str] = Field(default_factory=lambda: ["account"])

    def team_for(self, intent: str, cues: Sequence[str] = (),
                 topics: Sequence[str] | None = None,
                 cue_topics: Sequence[str] | None = None) -> str:
        """The team that handles ``intent``, or the team of a routed cue among ``cues``;
        given the message's ``topics``, a team whose topic is missing is not chosen.
        ``cue_topics`` are the topics of the message the cues came from (default ``topics``):
        a lawyer threatened about a late parcel is no billing matter, even when an earlier
        message's intent is the one routed by."""
        def fits(team: str, among: Sequence[str] | None) -> bool:
            needed = self.needs_topic.get(team)
            return among is None or needed is None or needed in among

        cue_topics = topics if cue_topics is None else cue_topics
        for cue in cues:
            if cue in self.cues and fits(self.cues[cue], cue_topics):
                return self.cues[cue]
        for team, intents in self.teams.items():
            if intent in intents:
                return team if fits(team, topics) else self.default_team
        for topic in topics or ():
            if topic in self.topic_teams:
                return self.topic_teams[topic]
        return self.default_team


class PriorityRules(BaseModel):
    """Priority of a handoff by tier, raised to high for strongly frustrated customers."""

    vip: str = "high"
    premium: str = "normal"
    standard: str = "normal"
    frustration_high: float = Field(0.8, ge=0, le=1)


#: A cue a flow may send to a human whatever the score: shouting, swearing, and the reason codes
#: of :data:`tierline.nlu.reasons.ESCALATION_CUES` (one list of their names).
EscalationCue = Literal[("all_caps", "profanity", *ESCALATION_CUES)]


class EscalationConfig(BaseModel):
    """The policy's configurable part: explicit words, limits, thresholds, topics, routing."""

    explicit_keywords: list[str]
    #: Example requests for a human per language, and messages that are not requests: a
    #: message whose nearest example is a request, at least ``explicit_similarity`` close, is
    #: a request in any words (``nlu/human_request.py``).
    explicit_examples: dict[str, list[str]] = Field(default_factory=dict)
    explicit_counterexamples: dict[str, list[str]] = Field(default_factory=dict)
    explicit_similarity: float = Field(0.6, gt=0, le=1)
    max_failed_attempts: int = Field(3, ge=1)
    #: Fewer failed replies for some tiers ("sooner for VIP": ``{vip: 1}``); others get
    #: ``max_failed_attempts``.
    tier_max_failed_attempts: dict[str, int] = Field(default_factory=dict)
    #: Signs of anger that go to a human whatever the score: ALL CAPS about a problem and
    #: swearing, surface cues of :mod:`tierline.nlu.cues` (happy shouting does not fire them).
    #: Also: writing again about the same thing (``repeat_contact``), "marked delivered, never
    #: came" (``delivered_not_received``), a chargeback or legal threat (``dispute``), a double
    #: charge in so many words (``double_charge``), insults at the bot (``bot_insult``), part of
    #: the order missing (``missing_item``), "fed up" said outright (``fed_up``) and the
    #: self-service tried several times already (``tried_again``).
    escalate_on_cues: list[EscalationCue] = Field(default_factory=list)
    #: Tiers whose problem reports go to a human at once ("sooner for VIP": a VIP writing
    #: "the reset email isnt coming" is not sent the reset instructions again).
    problem_reports_escalate_for: list[str] = Field(default_factory=list)
    thresholds: dict[str, float]
    sensitive_intents: list[str]
    #: Topics that always go to a human when the intent model is at least
    #: ``always_min_confidence`` sure (a business rule, like an explicit request): the mission's
    #: refunds, billing problems, double charges and cancellations. Empty: the policy decides.
    always_escalate_intents: list[str] = Field(default_factory=list)
    always_min_confidence: float = Field(0.7, gt=0, le=1)
    routing: Routing = Routing()

    @cached_property
    def sensitive_split(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The sensitive intents billing handles, and the others (the policy splits their
        probability by team on every message: worked out once)."""
        billing = tuple(i for i in self.sensitive_intents if self.routing.team_for(i) == "billing")
        return billing, tuple(i for i in self.sensitive_intents if i not in billing)
    priority: PriorityRules = PriorityRules()

    @field_validator("thresholds")
    @classmethod
    def _tiers(cls, v: dict[str, float]) -> dict[str, float]:
        if "standard" not in v:
            raise ValueError("a 'standard' tier threshold is required")
        for tier, t in v.items():
            if not 0.0 < t < 1.0:
                raise ValueError(f"threshold for {tier!r} must be between 0 and 1, got {t}")
        return v

    @model_validator(mode="after")
    def _known_intents(self) -> EscalationConfig:
        named = (set(self.sensitive_intents) | set(self.always_escalate_intents)
                 | {i for v in self.routing.teams.values() for i in v})
        unknown = named - set(INTENT_LABELS)
        if unknown:
            raise ValueError(f"unknown intent(s) {sorted(unknown)}")
        return self

    def max_failed_for(self, tier: str) -> int:
        """How many failed bot replies ``tier`` gets before a human takes over."""
        return self.tier_max_failed_attempts.get(tier, self.max_failed_attempts)

    def threshold_for(self, tier: str) -> float:
        """The escalation threshold of ``tier`` (unknown tiers get the standard one)."""
        return self.thresholds.get(tier, self.thresholds["standard"])


class BotFlow(BaseModel):
    """The whole flow file."""

    brand: str
    default_language: str
    languages: list[str]
    #: ``detect``: a conversation starts in the language of its first substantial message and
    #: follows a confident change; ``lock``: every conversation stays in ``default_language``
    #: (a shop that answers only in Italian).
    language_mode: Literal["detect", "lock"] = "detect"
    messages: dict[str, Messages]
    contact_email: str
    orders: OrdersConfig
    customers: CustomersConfig = CustomersConfig()
    faq: FaqConfig = FaqConfig()
    business_hours: BusinessHours
    escalation: EscalationConfig
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _languages_have_messages(self) -> BotFlow:
        if self.default_language not in self.languages:
            raise ValueError(f"default_language {self.default_language!r} not in languages")
        missing = [lang for lang in self.languages if lang not in self.messages]
        if missing:
            raise ValueError(f"messages missing for language(s) {missing}")
        return self

    @cached_property
    def _typed_titles(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        """Folded menu titles -> (message key, languages whose title it is)."""
        titles: dict[str, tuple[str, list[str]]] = {}
        for language in self.languages:
            for key in ("menu_button", "menu_order_status", "menu_faq", "menu_agent"):
                folded = " ".join(words_of(getattr(self.messages[language], key)))
                titles.setdefault(folded, (key, []))[1].append(language)
        return {t: (key, tuple(langs)) for t, (key, langs) in titles.items()}

    def typed_title(self, text: str) -> tuple[str, tuple[str, ...]] | None:
        """The menu title ``text`` repeats, in any of the flow's languages, as (message key,
        the languages whose title it is), or None. A chat export or a customer who types
        "Estado del pedido" or "Opções" means the option, not a question for the models (the
        intent model read "Estado del pedido" as a request for an agent)."""
        return self._typed_titles.get(" ".join(words_of(text))) if len(text) <= 40 else None

    def text(self, key: str, language: str, **values: str) -> str:
        """Message ``key`` in ``language`` (falling back to the default) with values filled in."""
        messages = self.messages.get(language) or self.messages[self.default_language]
        return getattr(messages, key).format(brand=self.brand, email=self.contact_email, **values)

    def order_status(self, status: str, language: str) -> str:
        """An order status code in ``language``'s words (the code itself when unnamed)."""
        messages = self.messages.get(language) or self.messages[self.default_language]
        return messages.order_statuses.get(status, messages.order_statuses.get(
            status.lower(), status))

    def when(self, at: datetime, language: str) -> str:
        """``at`` (local time) the way ``language``'s messages write a day and time."""
        messages = self.messages.get(language) or self.messages[self.default_language]
        return messages.back_at.format(weekday=messages.weekdays[at.weekday()], day=at.day,
                                       month=messages.months[at.month - 1],
                                       time=at.strftime("%H:%M"))

    def path(self, relative: str) -> Path:
        """A file named in the flow, relative to the flow file's folder."""
        return self.base_dir / relative


def load_flow(path: str | Path | None = None) -> BotFlow:
    """Load and validate a flow file (default: ``data/bot/bot.yaml``).

    Raises :class:`FlowError` naming the bad field, e.g.
    ``escalation.thresholds: threshold for 'vip' must be between 0 and 1``.
    """
    path = Path(path) if path is not None else DEFAULT_FLOW_PATH
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FlowError(f"flow file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise FlowError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise FlowError(f"{path}: expected a mapping at the top level")
    try:
        return BotFlow.model_validate({**raw, "base_dir": path.parent})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        raise FlowError(f"{path}: {problems}") from None
