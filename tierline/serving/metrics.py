"""Prometheus metrics of the service, exposed at ``/metrics``.

Counters for messages in/out, escalations (by reason and team) and deliveries to peers, a gauge for queue depth
(refreshed at scrape time), histograms for webhook and model latency.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# The escalation reasons a metric label may carry are the reason codes, a fixed set: a label
# per reason text (which carries the customer's words and scores) made the series grow with
# customer input. One table, in tierline.nlu.reasons, for metrics, the APIs and the console.
from tierline.nlu.reasons import REASON_CODES, reason_code

__all__ = ["METRICS", "Metrics", "REASON_CODES", "build_metrics", "reason_code"]


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
