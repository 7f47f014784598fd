"""Whole turns (NLU + policy + bot) with the shipped models and flow: every escalation trigger."""

import dataclasses
import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tierline.nlu.bot import MENU_AGENT, MENU_ORDER, ConversationState
from tierline.nlu.engine import TurnEngine

ROME = ZoneInfo("Europe/Rome")
OPEN = datetime(2026, 11, 24, 11, 0, tzinfo=ROME)  # Tuesday 11:00
CLOSED = datetime(2026, 11, 28, 22, 0, tzinfo=ROME)  # Saturday 22:00


@pytest.fixture(scope="module")
def engine(analyzer):
    return TurnEngine.load(analyzer=analyzer)


def talk(engine, messages, tier="standard", at=OPEN, language=None, **kwargs):
    state = engine.new_state("t", tier=tier, language=language)
    results = []
    for text in messages:
        result = engine.turn(state, text, now=at, **kwargs)
        state = result.state
        results.append(result)
    return results


def test_greeting_gets_the_menu_as_buttons(engine):
    [r] = talk(engine, ["hello there"])
    assert not r.decision.escalate
    assert [b[0] for b in r.replies[0].buttons] == ["menu_order", "menu_faq", "menu_agent"]
    assert "Welcome" in r.replies[0].text


def test_keyword_agent_escalates(engine):
    [r] = talk(engine, ["agent"])
    assert r.handoff and r.decision.escalate
    assert r.decision.reasons[0] == "customer asked for a human agent"
    assert "transferring you" in r.replies[0].text
    assert r.state.step == "with_agent"


def test_menu_option_3_escalates_by_digit_and_by_button(engine):
    assert talk(engine, ["hi", "3"])[1].handoff
    state = engine.new_state("b")
    assert engine.turn(state, "Talk to an agent", now=OPEN, button_id=MENU_AGENT).handoff


def test_three_failed_bot_replies_escalate(engine):
    results = talk(engine, ["hello", "what's the weather like in Rome tomorrow?",
                            "give me a recipe for lasagna", "who won the football match?"])
    assert [r.bot_failed for r in results] == [False, True, True, True]
    assert not results[2].handoff
    assert results[3].handoff
    assert results[3].decision.reasons[0] == "3 failed bot replies"


def test_frustrated_customer_escalates_with_reasons(engine):
    [r] = talk(engine, ["THIS IS RIDICULOUS!!! I have been waiting for weeks, useless service"])
    assert r.handoff
    assert any(reason.startswith("customer frustrated") for reason in r.decision.reasons)
    assert r.decision.priority == "high"


def test_sensitive_topic_vip_goes_to_billing(engine):
    [r] = talk(engine, ["I was charged twice for the same order"], tier="vip")
    assert r.handoff and r.decision.team == "billing"
    assert "sensitive topic: payment_issue" in r.decision.reasons
    assert "VIP customer" in r.decision.reasons


def test_vip_escalates_where_standard_does_not(engine):
    text = "the mug arrived with a tiny scratch on the handle"
    [standard] = talk(engine, [text], tier="standard")
    [vip] = talk(engine, [text], tier="vip")
    assert vip.decision.p_escalate >= standard.decision.p_escalate
    assert vip.handoff and not standard.handoff


def test_off_hours_change_the_handoff_not_the_decision(engine):
    [open_] = talk(engine, ["agent please"], at=OPEN)
    [closed] = talk(engine, ["agent please"], at=CLOSED)
    assert open_.decision.escalate and closed.decision.escalate
    assert not open_.handoff.off_hours and closed.handoff.off_hours
    assert "Mon 30 Nov 09:00" in closed.replies[0].text
    assert "offline" in closed.replies[0].text


def test_order_tracking_flow(engine):
    results = talk(engine, ["1", "ND-100000"])
    assert "order number" in results[0].replies[0].text
    assert "ND-100000" in results[1].replies[0].text and "Carrier" in results[1].replies[0].text
    assert results[1].state.order_number == "ND-100000"
    assert not any(r.bot_failed for r in results)


def test_unknown_and_malformed_order_numbers(engine):
    unknown = talk(engine, ["where is my order?", "ND-999998", "ND-999997"])
    assert "couldn't find order ND-999998" in unknown[1].replies[0].text
    assert not unknown[1].bot_failed  # asked again: the first unknown number may be a typo
    assert "couldn't find order ND-999997" in unknown[2].replies[0].text and unknown[2].bot_failed
    bad = talk(engine, ["1", "12345"])
    assert "doesn't look like an order number" in bad[1].replies[0].text and bad[1].bot_failed


def test_order_tracking_by_button_id(engine):
    state = engine.new_state("btn")
    r = engine.turn(state, "Order status", now=OPEN, button_id=MENU_ORDER)
    assert r.state.step == "awaiting_order_number"


def test_faq_by_similarity_or_intent(engine):
    [r] = talk(engine, ["how long does shipping take?"])
    assert "working days" in r.replies[0].text
    [r] = talk(engine, ["which payment methods do you accept"])
    assert "PayPal" in r.replies[0].text


def test_italian_customer_gets_italian_messages(engine):
    results = talk(engine, ["ciao", "voglio parlare con un operatore"])
    assert "Benvenuto" in results[0].replies[0].text
    assert results[1].handoff and "Ti sto trasferendo" in results[1].replies[0].text


def test_italian_off_hours_message(engine):
    [r] = talk(engine, ["operatore per favore"], at=CLOSED)
    assert r.handoff.off_hours and "non è disponibile" in r.replies[0].text
    assert "torna lun 30 nov alle 09:00" in r.replies[0].text  # not "Mon 30 Nov"
    assert r.handoff.back_at == "Mon 30 Nov 09:00"  # what the agents' queue shows


@pytest.mark.parametrize(("text", "language", "when"), [
    ("quiero hablar con una persona", "es", "vuelve el lunes 30 de noviembre a las 09:00"),
    ("quero falar com um atendente", "pt", "volta segunda 30 de nov às 09:00"),
])
def test_off_hours_time_is_written_in_the_customers_language(engine, text, language, when):
    r = engine.turn(engine.new_state("c", language=language), text, now=CLOSED)
    assert r.handoff.off_hours and when in r.replies[0].text


def test_after_handoff_the_bot_only_says_once_that_an_agent_has_it(engine):
    results = talk(engine, ["agent", "hello? anyone there?", "???"])
    assert [r.text for r in results[1].replies] == [engine.flow.text("with_agent", "en")]
    assert results[2].replies == [] and results[2].state.step == "with_agent"
    assert results[1].decision.escalate and results[2].decision.escalate
    assert results[2].decision.reasons[0] == "conversation is already with an agent"


def test_refund_policy_question_stays_with_the_bot(engine):
    [r] = talk(engine, ["what is your refund policy?"])
    assert not r.handoff and "30 days" in r.replies[0].text


def test_state_round_trips_through_json(engine):
    results = talk(engine, ["hi", "1", "ND-100000"])
    state = results[-1].state
    again = ConversationState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert again == state
    assert [m["role"] for m in again.history] == ["customer", "bot"] * 3


def test_state_dict_is_a_copy_with_every_field(engine):
    state = talk(engine, ["hi", "1", "ND-100000"])[-1].state
    data = state.to_dict()
    assert data == dataclasses.asdict(state)
    before = [dict(entry) for entry in data["history"]]
    for n in range(25):  # later turns append to the history and trim it
        state.remember("bot", f"a later line {n}", "2026-11-25T03:00:00+00:00")
    state.recent_intents.append("goodbye")
    assert data["history"] == before and "goodbye" not in data["recent_intents"]


def test_empty_and_huge_messages_do_not_break_a_turn(engine):
    results = talk(engine, ["", "where is my order " * 3000, "😡😡😡"])
    assert all(r.replies for r in results)
