"""Metric labels are a fixed set: escalation reasons are counted by code, never by the
policy's reason text, which carries the customer's words and scores ("customer frustrated
(0.93: 'useless')"): one series per distinct text made /metrics grow with customer input."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select

from tierline.serving.metrics import REASON_CODES, reason_code
from tierline.serving.storage.models import DecisionRow
from tests.serving.fakes import PHONE_NUMBER_ID, message

MESSAGES = {"447700907001": "agent",
            "447700907002": "THIS IS USELESS!!! garbage bot, zzqxword, I HATE IT",
            "447700907003": "I was charged twice for my order and I want my money back NOW!!!",
            "447700907004": "you people are a joke, flibbertigibbet!!! nothing works"}


def test_escalation_labels_are_reason_codes_whatever_the_customer_wrote(service):
    for customer, text in MESSAGES.items():
        service.say(message(text=text, customer=customer))
    for customer in MESSAGES:
        service.wait_ticket(customer)
    metrics = httpx.get(f"{service.url}/metrics").text
    labels = set(re.findall(r'tierline_escalations_total\{reason="([^"]*)"', metrics))
    assert labels and labels <= set(REASON_CODES), labels - set(REASON_CODES)
    assert "zzqxword" not in metrics and "flibbertigibbet" not in metrics
    # Every reason text the policy gave for these turns has its own code (none falls to "other").
    with service.services.db.session() as s:
        reasons = [r for d in s.scalars(select(DecisionRow).where(DecisionRow.conversation_id.in_(
            [f"wa:{PHONE_NUMBER_ID}:{c}" for c in MESSAGES]))) for r in d.reasons]
    assert reasons and all(reason_code(r) != "other" for r in reasons), reasons
    print(f"\nlabels {sorted(labels)} from reasons {sorted(set(reasons))}")


def test_every_reason_the_policy_writes_has_a_code():
    samples = {"customer asked for a human agent": "asked_for_human",
               "3 failed bot replies": "failed_replies",
               "customer frustrated (0.91: all caps, 'useless')": "frustrated",
               "customer was frustrated earlier (0.88)": "frustrated_earlier",
               "sensitive topic: get_refund": "sensitive_topic", "VIP customer": "vip",
               "premium customer": "premium", "repeated request: track_order": "repeated_request",
               "long conversation (7 messages)": "long_conversation", "": "unspecified",
               "anything else a customer typed 0.42": "other"}
    assert {text: reason_code(text) for text in samples} == samples
