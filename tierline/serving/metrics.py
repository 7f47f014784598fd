"""Prometheus metrics of the service, exposed at ``/metrics``.

Counters for messages in/out, escalations (by reason and team) and deliveries to peers, a gauge for queue depth
(refreshed at scrape time), histograms for webhook and model latency.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class Metrics:
    """All metric objects, on one registry (so tests can read them)."""

    registry: CollectorRegistry
    messages_in: Counter
    duplicates: Counter
    messages_out: Counter
    outbound_expired: Counter
    escalations: Counter
    peer_deliveries: Counter
    queue_depth: Gauge
    jobs_pending: Gauge
    webhook_latency: Histogram
    turn_latency: Histogram


def build_metrics() -> Metrics:
    """A fresh registry with every metric."""
    r = CollectorRegistry()
    return Metrics(
        registry=r,
        messages_in=Counter("tierline_messages_in_total", "Inbound WhatsApp messages stored", registry=r),
        duplicates=Counter("tierline_duplicate_deliveries_total", "Redelivered messages ignored", registry=r),
        messages_out=Counter("tierline_messages_out_total", "Outbound messages by final status",
                             ["status"], registry=r),
        outbound_expired=Counter(
            "tierline_outbound_expired_total",
            "Replies given up on: still undeliverable (Graph API down, rate-limited) when they "
            "reached TIERLINE_WHATSAPP_MAX_SEND_AGE_SECONDS", registry=r),
        escalations=Counter("tierline_escalations_total", "Handoffs by team and first reason",
                            ["team", "reason"], registry=r),
        peer_deliveries=Counter(
            "tierline_peer_deliveries_total",
            "Notification and export attempts (Slack, webhook, Zendesk) by target and outcome: "
            "sent, retry, failed (kept as a dead letter)", ["target", "outcome"], registry=r),
        queue_depth=Gauge("tierline_queue_depth", "Open or claimed tickets", ["team"], registry=r),
        jobs_pending=Gauge("tierline_jobs_pending", "Inbound jobs waiting for the worker", registry=r),
        webhook_latency=Histogram("tierline_webhook_seconds", "Webhook POST handling time",
                                  buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5), registry=r),
        turn_latency=Histogram("tierline_turn_seconds", "NLU + policy + bot time per turn",
                               buckets=(.002, .005, .01, .025, .05, .1, .25), registry=r),
    )


METRICS = build_metrics()

#: The escalation reasons a metric label may carry: a fixed set. The policy's reason texts
#: carry free words and scores ("customer frustrated (0.93: 'useless')", "sensitive topic:
#: get_refund", "long conversation (7 messages)"), and a label per distinct text made the
#: series grow with customer input.
REASON_CODES = ("asked_for_human", "failed_replies", "frustrated", "frustrated_earlier",
                "sensitive_topic", "vip", "premium", "repeated_request", "long_conversation",
                "shouting", "swearing", "problem_report", "repeat_contact",
                "delivered_not_received", "dispute", "double_charge", "bot_insult", "score",
                "unspecified", "other")
_REASON_PATTERNS = [(re.compile(p), code) for p, code in (
    (r"^customer asked for a human", "asked_for_human"),
    (r"^\d+ failed bot replies", "failed_replies"),
    (r"^customer frustrated", "frustrated"),
    (r"^customer was frustrated earlier", "frustrated_earlier"),
    (r"^sensitive topic", "sensitive_topic"),
    (r"^VIP customer", "vip"),
    (r"^premium customer", "premium"),
    (r"^repeated request", "repeated_request"),
    (r"^long conversation", "long_conversation"),
    (r"^customer is shouting", "shouting"),
    (r"^customer is swearing", "swearing"),
    (r"^\w+ customer reports a problem", "problem_report"),
    (r"^customer has written about this before", "repeat_contact"),
    (r"^order shows delivered", "delivered_not_received"),
    (r"^customer threatens a chargeback", "dispute"),
    (r"^customer reports a double charge", "double_charge"),
    (r"^customer is insulting the bot", "bot_insult"),
    (r"^escalation score", "score"),
)]


def reason_code(reason: str | None) -> str:
    """The bounded label of a policy reason text (one of :data:`REASON_CODES`)."""
    if not reason:
        return "unspecified"
    return next((code for pattern, code in _REASON_PATTERNS if pattern.match(reason)), "other")
