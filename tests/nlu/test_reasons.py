"""Reasons are codes with parameters (``tierline.nlu.reasons``): the English phrases of the
public APIs (``/v1/decide``, ``tierline chat``, the agent API, notifications) are derived from
them, unchanged from before codes existed, and read back into them (tickets and decisions
stored before), so metrics, old tickets and new ones go through one table."""

from __future__ import annotations

from tierline.nlu.reasons import REASON_CODES, Reason, parse, reason_code

TWICE = Reason("failed_replies", {"count": 2})
FRUSTRATED = Reason("frustrated", {"score": 0.934, "cues": ["all_caps", "negative_word:useless"]})
SCORE = Reason("score", {"p": 0.615, "tier": "standard", "threshold": 0.6,
                         "features": ["frustration", "turns"]})


def test_the_english_phrases_of_the_apis_come_from_the_codes_and_read_back():
    phrases = {
        Reason("asked_for_human"): "customer asked for a human agent",
        TWICE: "2 failed bot replies",
        FRUSTRATED: "customer frustrated (0.93: all caps, 'useless')",
        Reason("frustrated", {"score": 0.71, "cues": []}): "customer frustrated (0.71)",
        Reason("frustrated_earlier", {"score": 0.88}): "customer was frustrated earlier (0.88)",
        Reason("sensitive_topic", {"intent": "delete_account"}): "sensitive topic: delete_account",
        Reason("vip"): "VIP customer", Reason("premium"): "premium customer",
        Reason("repeated_request", {"intent": "track_order"}): "repeated request: track_order",
        Reason("long_conversation", {"messages": 7}): "long conversation (7 messages)",
        Reason("shouting"): "customer is shouting (all caps)",
        Reason("swearing", {"word": "merda"}): "customer is swearing ('merda')",
        Reason("problem_report", {"tier": "vip"}): "vip customer reports a problem",
        SCORE: "escalation score 0.61 at or above the standard threshold 0.60 (mostly "
               "frustration and turns)",
        Reason("with_agent"): "conversation is already with an agent",
        Reason("csat_recorded", {"score": 4}): "satisfaction score 4 recorded",
        Reason("repeat_contact"): "customer has written about this before",
        Reason("delivered_not_received"):
            "order shows delivered but the customer did not receive it",
        Reason("dispute"): "customer threatens a chargeback or legal action",
        Reason("double_charge"): "customer reports a double charge",
        Reason("bot_insult"): "customer is insulting the bot",
        Reason("missing_item"): "part of the order is missing",
        Reason("fed_up"): "customer says they are fed up",
        Reason("tried_again"): "customer already tried several times",
        Reason("sarcasm"): "customer is being sarcastic about a delay",
        Reason("invoice_error"): "customer reports a mistake on an invoice",
        Reason("review_threat"): "customer threatens a bad review",
        Reason("money_back"): "customer asks for their money back",
        Reason("cancel_request"): "customer asks to cancel an order",
    }
    assert {reason: reason.text for reason in phrases} == phrases
    assert {r.code for r in phrases} == set(REASON_CODES) - {"other", "unspecified"}
    for reason, text in phrases.items():
        back = parse(text)
        assert back.code == reason.code and back.text == text, (back, text)
    assert parse("customer frustrated (0.93: all caps, 'useless')").params["cues"] == [
        "all_caps", "word:useless"]
    assert (reason_code(""), reason_code("words a customer typed")) == ("unspecified", "other")


def test_reasons_compare_and_hash_by_code_and_parameters():
    assert Reason("failed_replies", {"count": 2}) == TWICE and len({TWICE, Reason.from_dict(
        TWICE.to_dict())}) == 1
    assert Reason("failed_replies", {"count": 3}) != TWICE
