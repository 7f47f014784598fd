"""Prometheus metrics of the service, exposed at ``/metrics``.

Counters for messages in/out, escalations (by reason and team), deliveries to peers and model
reloads, gauges for queue depth (refreshed at scrape time) and each process's served
generation, histograms for webhook and model latency.

**Several processes.** ``tierline serve`` with ``TIERLINE_WORKERS`` > 1 runs prometheus_client's
multiprocess mode (:mod:`tierline.serving.metrics_dir` sets ``PROMETHEUS_MULTIPROC_DIR`` before
any process imports prometheus_client): each process writes its values to memory-mapped files there, and
``/metrics``, whichever process answers it, reads them all (``MultiProcessCollector``). Counters
and histograms are summed over every process that ran since the service started (a process
replaced by a rolling restart keeps counting), so a scrape no longer shows one process's
share. Each gauge says how processes combine (``multiprocess_mode``): the queue gauges are read
from the database at scrape time, so the most recent value is the answer; the served
generation is one sample per live process (``pid`` label). One process keeps its values in
memory, and ``/metrics`` shows them.

Labels are fixed sets (reason codes, teams, statuses, targets): never a phone number or any
text a customer wrote.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values

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
    model_reloads: Counter
    queue_depth: Gauge
    jobs_pending: Gauge
    served_generation: Gauge
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
        model_reloads=Counter(
            "tierline_model_reloads_total",
            "Model and flow reloads by trigger (admin, registry, follow: another process "
            "announced a generation) and outcome (ok, failed: still serving the previous ones)",
            ["trigger", "outcome"], registry=r),
        # Read from the database at scrape time by whichever process answers the scrape: the
        # most recent value is the database's, whoever wrote it.
        queue_depth=Gauge("tierline_queue_depth", "Open or claimed tickets", ["team"],
                          multiprocess_mode="mostrecent", registry=r),
        jobs_pending=Gauge("tierline_jobs_pending", "Inbound jobs waiting for the worker",
                           multiprocess_mode="mostrecent", registry=r),
        # One sample per live process: a process left behind (its reload failed) stands out.
        served_generation=Gauge(
            "tierline_served_generation",
            "Generation of the live_versions row this process serves (models and flow)",
            multiprocess_mode="liveall", registry=r),
        webhook_latency=Histogram("tierline_webhook_seconds", "Webhook POST handling time",
                                  buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5), registry=r),
        turn_latency=Histogram("tierline_turn_seconds", "NLU + policy + bot time per turn",
                               buckets=(.002, .005, .01, .025, .05, .1, .25), registry=r),
    )


METRICS = build_metrics()
#: The folder of prometheus_client's multiprocess files when this process writes its values
#: there (``PROMETHEUS_MULTIPROC_DIR`` was set before prometheus_client was imported), else None.
MULTIPROCESS_DIR = (os.environ.get("PROMETHEUS_MULTIPROC_DIR")
                    if getattr(values.ValueClass, "_multiprocess", False) else None)


def exposition_registry() -> CollectorRegistry:
    """What ``/metrics`` shows: every process's values (multiprocess mode), else this one's."""
    if MULTIPROCESS_DIR is None:
        return METRICS.registry
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=MULTIPROCESS_DIR)
    return registry


def forget_this_process() -> None:
    """At a clean shutdown: drop this process's ``liveall`` gauge files, so that its served
    generation leaves ``/metrics`` with it (its counters stay in the sums). A process killed
    with ``kill -9`` stays listed until the service restarts."""
    if MULTIPROCESS_DIR is not None:
        multiprocess.mark_process_dead(os.getpid(), MULTIPROCESS_DIR)
