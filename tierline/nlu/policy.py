"""The escalation policy at run time: features -> calibrated P(escalate) -> decision + reasons.

The learned part is a logistic regression whose weights on "more reason to escalate" features
(frustration, failed replies, VIP tier, sensitive topic...) are constrained non-negative, then
an isotonic calibration; both are monotone, so more frustration, more failures or a higher tier
never lower ``p_escalate``. It is fitted in ``tierline.training.policy_fit`` (scikit-learn) and shipped as
plain numbers in ``models/policy/policy.json``, so run time needs only numpy.

Hard guarantees stay rules on top of the model: an explicit request for a human always
escalates (WhatsApp requires a clear path to one), and so does the bot failing
``max_failed_attempts`` times. Off hours change the handoff, not the decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from tierline.nlu.analyzer import AnalysisResult
from tierline.nlu.bundle import read_policy_json
from tierline.nlu.flow import EscalationConfig
from tierline.nlu.labels import OUT_OF_SCOPE, SMALL_TALK_INTENTS
from tierline.nlu.reasons import ESCALATION_CUES, Reason

#: Feature order of the policy model, and whether each is constrained monotone (weight >= 0).
FEATURES: tuple[tuple[str, bool], ...] = (
    ("frustration", True),
    ("max_frustration", True),
    ("frustrated_turns", True),
    ("failed_attempts", True),
    ("explicit_request", True),
    ("p_contact_human", True),
    ("p_sensitive_billing", True),
    ("p_sensitive_other", True),
    ("p_complaint", True),
    ("premium", True),
    ("vip", True),
    ("repeated_intent", True),
    ("turns", True),
    ("cue_count", True),
    ("vip_x_frustration", True),
    ("vip_x_sensitive", True),
    ("p_out_of_scope", False),
    ("p_small_talk", False),
    ("intent_confidence", False),
)
FEATURE_NAMES: tuple[str, ...] = tuple(name for name, _ in FEATURES)
MONOTONE: tuple[bool, ...] = tuple(mono for _, mono in FEATURES)
TIER_RANK = {"standard": 0, "premium": 1, "vip": 2}


@dataclass
class PolicyContext:
    """What the policy knows of the conversation *before* the current message."""

    tier: str = "standard"
    turns: int = 0
    failed_attempts: int = 0
    max_frustration: float = 0.0
    frustrated_turns: int = 0
    recent_intents: list[str] = field(default_factory=list)


@dataclass
class Decision:
    """The policy's answer for one customer message. ``reason_codes`` are the reasons, most
    important first (:mod:`tierline.nlu.reasons`); ``reasons`` their English phrases."""

    p_escalate: float
    escalate: bool
    reason_codes: list[Reason]
    team: str
    priority: str
    features: dict[str, float]
    #: A hard rule decided it (asked for a human, failed replies, a cue, a sensitive intent
    #: said confidently), not the score alone.
    by_rule: bool = False

    @property
    def reasons(self) -> list[str]:
        """The English phrases of :attr:`reason_codes` (``/v1/decide``, ``tierline chat``)."""
        return [r.text for r in self.reason_codes]

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return {"p_escalate": self.p_escalate, "escalate": self.escalate, "reasons": self.reasons,
                "reason_codes": [r.to_dict() for r in self.reason_codes],
                "team": self.team, "priority": self.priority, "features": self.features}


class PolicyArtifact(BaseModel):
    """``policy.json``: the fitted weights and isotonic calibration as plain numbers."""

    format_version: int = 1
    feature_names: list[str]
    coef: list[float]
    intercept: float
    calibration_x: list[float]
    calibration_y: list[float]
    frustrated_at: float = 0.5
    metrics: dict[str, float] = {}

    @classmethod
    def untrained(cls) -> PolicyArtifact:
        """Zero weights, p = 0.5 everywhere: lets the simulator record features before a fit."""
        return cls(feature_names=list(FEATURE_NAMES), coef=[0.0] * len(FEATURE_NAMES),
                   intercept=0.0, calibration_x=[-1.0, 1.0], calibration_y=[0.5, 0.5])


def policy_features(analysis: AnalysisResult, context: PolicyContext, explicit: bool,
                    config: EscalationConfig, frustrated_at: float = 0.5) -> dict[str, float]:
    """The feature vector (as a dict in FEATURE_NAMES order) for one customer message."""
    intents = analysis.intents
    substantive = analysis.intent not in SMALL_TALK_INTENTS + (OUT_OF_SCOPE,)
    frustrated_now = analysis.frustration >= frustrated_at
    # Split by the team that handles them, so agents' labels can move one without the other.
    billing_intents, other_intents = config.sensitive_split
    billing = sum(intents.get(i, 0.0) for i in billing_intents)
    other = sum(intents.get(i, 0.0) for i in other_intents)
    vip = float(TIER_RANK.get(context.tier, 0) >= 2)
    return {
        "frustration": analysis.frustration,
        "max_frustration": max(context.max_frustration, analysis.frustration),
        "frustrated_turns": min(context.frustrated_turns + int(frustrated_now), 3) / 3,
        "failed_attempts": min(context.failed_attempts, 5) / 5,
        "explicit_request": float(explicit),
        "p_contact_human": intents.get("contact_human_agent", 0.0),
        "p_sensitive_billing": min(1.0, billing),
        "p_sensitive_other": min(1.0, other),
        "p_complaint": intents.get("complaint", 0.0),
        "premium": float(TIER_RANK.get(context.tier, 0) >= 1),
        "vip": vip,
        "repeated_intent": float(substantive and analysis.intent in context.recent_intents),
        "turns": min(context.turns + 1, 10) / 10,
        "cue_count": min(len(analysis.cues), 4) / 4,
        # A VIP's reasons weigh more: interactions let a linear model say so.
        "vip_x_frustration": vip * analysis.frustration,
        "vip_x_sensitive": vip * min(1.0, billing + other),
        "p_out_of_scope": intents.get(OUT_OF_SCOPE, 0.0),
        "p_small_talk": sum(intents.get(i, 0.0) for i in SMALL_TALK_INTENTS),
        "intent_confidence": analysis.intent_confidence,
    }


class EscalationPolicy:
    """Run-time policy: calibrated probability, tier thresholds, hard rules, reasons, routing."""

    def __init__(self, artifact: PolicyArtifact, config: EscalationConfig) -> None:
        if artifact.feature_names != list(FEATURE_NAMES):
            raise ValueError("policy artefact was fitted on another feature set")
        self.artifact = artifact
        self.config = config
        self._coef = np.asarray(artifact.coef, dtype=float)
        self._cal_x = np.asarray(artifact.calibration_x, dtype=float)
        self._cal_y = np.asarray(artifact.calibration_y, dtype=float)

    @classmethod
    def load(cls, config: EscalationConfig, path: str | Path | None = None) -> EscalationPolicy:
        """Load ``policy.json`` from a folder (default: the shipped ``models/policy``)."""
        return cls(PolicyArtifact.model_validate(read_policy_json(path)), config)

    def probability(self, features: dict[str, float]) -> float:
        """Calibrated P(escalate) for one feature dict."""
        x = np.array([features[name] for name in FEATURE_NAMES], dtype=float)
        score = float(x @ self._coef + self.artifact.intercept)
        return float(np.interp(score, self._cal_x, self._cal_y))

    def decide(self, analysis: AnalysisResult, context: PolicyContext, explicit: bool,
               routing: tuple[str, list[str]] | None = None) -> Decision:
        """Decide for one customer message; ``explicit`` = asked for a human (words or menu)."""
        features = policy_features(analysis, context, explicit, self.config,
                                   self.artifact.frustrated_at)
        p = self.probability(features)
        rules: list[Reason] = []
        if explicit:
            rules.append(Reason("asked_for_human"))
        failed = self.failed_replies_rule(context.failed_attempts, context.tier)
        if failed:
            rules.append(failed)
        rules += self.cue_rules(analysis)
        if analysis.problem and context.tier in self.config.problem_reports_escalate_for:
            rules.append(Reason("problem_report", {"tier": context.tier}))
        if (analysis.intent in self.config.always_escalate_intents
                and analysis.intent_confidence >= self.config.always_min_confidence
                and not analysis.nothing_to_settle):
            rules.append(Reason("sensitive_topic", {"intent": analysis.intent}))
        threshold = self.config.threshold_for(context.tier)
        # "se annullo prima che parta mi ridate tutto? chiedo solo per sapere": a refund or a
        # cancellation asked about only to know is the bot's (the FAQ), not a score's handoff;
        # nor is "ya me llegó el reembolso, gracias!!", settled already.
        escalate = bool(rules) or (p >= threshold
                                   and not analysis.nothing_to_settle)
        reasons = rules + [r for r in self.explain(features, analysis, context) if r not in rules]
        if escalate and not reasons:
            # No single feature explains it: say so, with the strongest contributions, rather
            # than hand a conversation to an agent with no reason at all.
            top = sorted(FEATURE_NAMES, key=lambda n: features[n] * self._coef[
                FEATURE_NAMES.index(n)], reverse=True)[:2]
            reasons = [Reason("score", {"p": p, "tier": context.tier, "threshold": threshold,
                                        "features": top})]
        return Decision(p_escalate=p, escalate=escalate, reason_codes=reasons,
                        team=self._team(analysis, *(routing or (None, []))),
                        priority=self.priority(context.tier, analysis.frustration),
                        features=features, by_rule=bool(rules))

    def _team(self, analysis: AnalysisResult, intent_for_routing: str | None,
              earlier_topics: list[str] | None = None) -> str:
        """The team for this message: by its intent (or the conversation's earlier one) and
        cues; the message's own topics decide whether a topic team fits, unless the intent
        came from an earlier message ("agent please" after a refund question stays billing).
        With nothing to route by, the topic may name the team (``routing.topic_teams``): the
        message's own, else ``earlier_topics``, the conversation's latest."""
        intent = intent_for_routing or analysis.intent
        topics = analysis.topics if intent in (analysis.intent, OUT_OF_SCOPE) else None
        if intent == OUT_OF_SCOPE and not topics and earlier_topics:
            topics = earlier_topics
        return self.config.routing.team_for(intent, analysis.cues, topics,
                                            cue_topics=analysis.topics)

    def failed_replies_rule(self, failed_attempts: int, tier: str) -> Reason | None:
        """The "N failed bot replies" rule, the one place it lives: a reason once ``tier``'s
        limit is reached. The engine applies it again after the bot's reply, when this message's
        failure is known."""
        if failed_attempts >= self.config.max_failed_for(tier):
            return Reason("failed_replies", {"count": failed_attempts})
        return None

    def cue_rules(self, analysis: AnalysisResult) -> list[Reason]:
        """The flow's ``escalate_on_cues`` that fired on this message, as reasons. The cues
        already leave out happy shouting ("GRAZIE MILLE!!!") and laughter."""
        wanted = set(self.config.escalate_on_cues)
        reasons = []
        if "all_caps" in wanted and "all_caps" in analysis.cues:
            reasons.append(Reason("shouting"))
        swears = [c.split(":", 1)[1] for c in analysis.cues if c.startswith("profanity:")]
        if "profanity" in wanted and swears:
            reasons.append(Reason("swearing", {"word": swears[0]}))
        reasons += [Reason(cue) for cue in ESCALATION_CUES
                    if cue in wanted and cue in analysis.cues]
        return reasons

    def priority(self, tier: str, frustration: float) -> str:
        """Tier priority, raised to ``high`` for a strongly frustrated customer."""
        rules = self.config.priority
        if frustration >= rules.frustration_high:
            return "high"
        return {"vip": rules.vip, "premium": rules.premium}.get(tier, rules.standard)

    def explain(self, features: dict[str, float], analysis: AnalysisResult,
                context: PolicyContext) -> list[Reason]:
        """The reasons the score has, the largest contribution to it first."""
        contributions = {name: features[name] * w for name, w in zip(FEATURE_NAMES, self._coef)
                         if features[name] * w > 0.05}
        reasons: list[Reason] = []
        for name in sorted(contributions, key=contributions.get, reverse=True):
            reason = self._reason(name, features, analysis, context)
            if reason and reason not in reasons:
                reasons.append(reason)
        return reasons

    def _reason(self, name: str, f: dict[str, float], analysis: AnalysisResult,
                context: PolicyContext) -> Reason | None:
        if name in ("frustration", "cue_count", "frustrated_turns") and \
                analysis.frustration >= self.artifact.frustrated_at:
            return Reason("frustrated", {"score": analysis.frustration,
                                         "cues": list(analysis.cues)})
        if name == "max_frustration" and context.max_frustration >= self.artifact.frustrated_at:
            return Reason("frustrated_earlier", {"score": context.max_frustration})
        if name == "failed_attempts" and context.failed_attempts:
            return Reason("failed_replies", {"count": context.failed_attempts})
        if name in ("explicit_request", "p_contact_human") and \
                (f["explicit_request"] or analysis.intent == "contact_human_agent"):
            return Reason("asked_for_human")
        if name in ("p_sensitive_billing", "p_sensitive_other") and \
                analysis.intent in self.config.sensitive_intents:
            return Reason("sensitive_topic", {"intent": analysis.intent})
        if name == "p_complaint" and analysis.intent == "complaint":
            return Reason("sensitive_topic", {"intent": "complaint"})
        if name in ("vip", "vip_x_frustration", "vip_x_sensitive") and f["vip"]:
            return Reason("vip")
        if name == "premium" and f["premium"] and not f["vip"]:
            return Reason("premium")
        if name == "repeated_intent" and f["repeated_intent"]:
            return Reason("repeated_request", {"intent": analysis.intent})
        if name == "turns" and context.turns >= 4:
            return Reason("long_conversation", {"messages": context.turns + 1})
        return None

