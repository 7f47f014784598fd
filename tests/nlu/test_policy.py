"""The shipped escalation policy: monotone where it must be, rules on top, honest reasons."""

import numpy as np
import pytest

from tierline.nlu.analyzer import AnalysisResult
from tierline.nlu.flow import load_flow
from tierline.nlu.labels import INTENT_LABELS
from tierline.nlu.human_request import names_a_human
from tierline.nlu.policy import FEATURE_NAMES, EscalationPolicy, PolicyContext


@pytest.fixture(scope="module")
def policy():
    return EscalationPolicy.load(load_flow().escalation)


def random_features(rng):
    f = {name: float(rng.random()) for name in FEATURE_NAMES}
    for binary in ("explicit_request", "premium", "vip", "repeated_intent"):
        f[binary] = float(rng.random() < 0.3)
    f["vip"] = f["vip"] * f["premium"]  # a VIP is at least premium
    return f


@pytest.mark.parametrize("feature", ["frustration", "max_frustration", "failed_attempts",
                                     "frustrated_turns", "p_sensitive_billing",
                                     "p_sensitive_other", "explicit_request"])
def test_more_of_a_reason_never_lowers_p(policy, feature):
    rng = np.random.default_rng(0)
    for _ in range(300):
        f = random_features(rng)
        values = np.linspace(0, 1, 6)
        ps = [policy.probability({**f, feature: v}) for v in values]
        assert all(b >= a - 1e-12 for a, b in zip(ps, ps[1:])), (feature, ps)


def test_higher_tier_never_lowers_p(policy):
    rng = np.random.default_rng(1)
    for _ in range(300):
        f = random_features(rng)
        standard = policy.probability({**f, "premium": 0.0, "vip": 0.0})
        premium = policy.probability({**f, "premium": 1.0, "vip": 0.0})
        vip = policy.probability({**f, "premium": 1.0, "vip": 1.0})
        assert standard <= premium <= vip


def analysis(intent="track_order", confidence=0.9, frustration=0.05, cues=()):
    rest = (1 - confidence) / (len(INTENT_LABELS) - 1)
    intents = {label: (confidence if label == intent else rest) for label in INTENT_LABELS}
    return AnalysisResult(intent=intent, intent_confidence=confidence, intents=intents,
                          frustration=frustration, frustrated=frustration >= 0.5,
                          cues=list(cues))


def test_explicit_request_always_escalates(policy):
    d = policy.decide(analysis("greeting"), PolicyContext(), explicit=True)
    assert d.escalate and d.reasons[0] == "customer asked for a human agent"


def test_failed_attempts_rule(policy):
    d = policy.decide(analysis("out_of_scope", 0.9), PolicyContext(failed_attempts=3), explicit=False)
    assert d.escalate and "3 failed bot replies" in d.reasons


def test_routine_question_stays_with_the_bot(policy):
    d = policy.decide(analysis("track_order"), PolicyContext(), explicit=False)
    assert not d.escalate and d.p_escalate < 0.2 and d.team == "general"


def test_frustrated_customer_reason_names_score_and_cues(policy):
    d = policy.decide(analysis("complaint", 0.8, 0.93, ["all_caps", "negative_word:useless"]),
                      PolicyContext(turns=2), explicit=False)
    assert d.escalate
    assert any(r.startswith("customer frustrated (0.93: all caps, 'useless')") for r in d.reasons)
    assert d.priority == "high"


def test_sensitive_topic_routes_to_billing_and_vip_escalates_sooner(policy):
    a = analysis("payment_issue", 0.95, 0.2)
    standard = policy.decide(a, PolicyContext(tier="standard"), explicit=False)
    vip = policy.decide(a, PolicyContext(tier="vip"), explicit=False)
    assert vip.p_escalate >= standard.p_escalate
    assert vip.escalate and vip.team == "billing" and vip.priority == "high"
    assert "sensitive topic: payment_issue" in vip.reasons
    assert "VIP customer" in vip.reasons


def test_human_keywords_in_four_languages_and_as_words_only():
    keywords = load_flow().escalation.explicit_keywords
    for text in ("AGENT please", "voglio un operatore!", "quiero hablar con un humano",
                 "posso falar com um atendente?", "Operatóre"):
        assert names_a_human(text, keywords), text
    assert not names_a_human("the agency sent a humanoid robot", keywords)


def test_every_handoff_names_a_reason(analyzer):
    """Even when no single feature carries the score, an escalation says why."""
    from tierline.nlu.flow import load_flow
    from tierline.nlu.policy import EscalationPolicy, PolicyContext

    flow = load_flow()
    policy = EscalationPolicy.load(flow.escalation)
    [analysis] = analyzer.analyze(["hmm"])
    low = flow.escalation.model_copy(update={"thresholds": {"standard": 0.01}})
    decision = EscalationPolicy(policy.artifact, low).decide(analysis, PolicyContext(), False)
    assert decision.escalate and decision.reasons
    assert all(r.strip() for r in decision.reasons)
