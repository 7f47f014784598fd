"""The Graph API is down for many lease periods (5xx, refused connections, timeouts, 429), then
recovers: every reply is delivered exactly once. A reply still undeliverable when it reaches
``whatsapp_max_send_age_seconds`` is reported (metric, log line without phone or text, its
ticket), not dropped silently. Before the age limit existed the sender gave up after 8
attempts: a 2-minute outage lost replies (here, with short backoffs, a few seconds did)."""

from __future__ import annotations

import logging
import time

from sqlalchemy import select

from tierline.serving.app import create_app
from tierline.serving.metrics import METRICS
from tierline.serving.storage.models import OutboundMessage, Ticket
from tests.conftest import LiveServer
from tests.serving.conftest import Service, settings_for
from tests.serving.fakes import PHONE_NUMBER_ID, FakeGraphAPI, message

LEASE = 1.0


def outbound(service: Service, customers: list[str]) -> list[OutboundMessage]:
    """The outbound rows of these customers' conversations."""
    with service.services.db.session() as s:
        return list(s.scalars(select(OutboundMessage).where(OutboundMessage.conversation_id.in_(
            [f"wa:{PHONE_NUMBER_ID}:{c}" for c in customers]))))


def wait_rows(service: Service, customers: list[str], timeout: float = 30.0) -> list:
    """Wait until every customer has at least one reply written to the outbox."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = outbound(service, customers)
        if {r.to for r in rows} >= set(customers):
            return rows
        time.sleep(0.05)
    raise AssertionError("replies were not written")


def test_an_outage_of_many_leases_delays_replies_and_loses_none(analyzer, database_url):
    graph = FakeGraphAPI()
    app = create_app(settings_for(database_url, graph.url, sending_lease_seconds=LEASE,
                                  whatsapp_send_timeout=0.5, whatsapp_retry_base_seconds=0.05,
                                  whatsapp_retry_max_seconds=0.5), analyzer=analyzer)
    customers = [f"44770090{n:04d}" for n in range(5000, 5010)]
    try:
        with LiveServer(app) as server:
            service = Service(server, graph, app)
            graph.outage = "503"
            for customer in customers:
                service.say(message(text="hello", customer=customer))
            rows = wait_rows(service, customers)
            started = time.monotonic()
            # 10 lease periods down, each failure kind in turn.
            time.sleep(2.5)
            graph.refuse()                      # connections refused
            time.sleep(2.5)
            graph.listen_again()
            graph.outage = ("hang", 0.8)        # timeouts (never accepted): wait a lease, resend
            time.sleep(2.5)
            graph.outage = "429"                # rate limited
            time.sleep(2.5)
            down_for = time.monotonic() - started
            graph.outage = None
            keys = {r.idempotency_key for r in rows}
            received = graph.wait_for(len(keys), timeout=30)
            time.sleep(2 * LEASE)  # a wrongly re-sent reply would arrive now
            with graph.lock:
                got = [m["biz_opaque_callback_data"] for m in graph.received]
            rows = outbound(service, customers)
        print(f"\nGraph API down {down_for:.1f}s ({down_for / LEASE:.0f} leases), "
              f"{graph.attempts} attempts; {len(received)} replies delivered after recovery")
        assert sorted(got) == sorted(keys), "a reply was lost or delivered twice"
        assert {r.status for r in rows} == {"sent"}
        assert min(r.attempts for r in rows) > 8  # the old limit would have dropped them
    finally:
        graph.close()


def test_a_reply_past_its_age_limit_is_reported_not_dropped_silently(analyzer, database_url,
                                                                      caplog):
    graph = FakeGraphAPI()
    graph.outage = "503"
    app = create_app(settings_for(database_url, graph.url, whatsapp_max_send_age_seconds=2.0,
                                  whatsapp_retry_base_seconds=0.05,
                                  whatsapp_retry_max_seconds=0.2), analyzer=analyzer)
    customer, text = "447700905555", "I want to talk to a human agent right now"
    expired_before = METRICS.outbound_expired._value.get()
    try:
        with caplog.at_level(logging.INFO, logger="tierline.serving.queue.sender"), LiveServer(app) as server:
            service = Service(server, graph, app)
            service.say(message(text=text, customer=customer))
            ticket_id = service.wait_ticket(customer)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                rows = outbound(service, [customer])
                if rows and all(r.status == "expired" for r in rows):
                    break
                time.sleep(0.1)
            with service.services.db.session() as s:
                ticket = s.get(Ticket, ticket_id)
        assert rows and {r.status for r in rows} == {"expired"}, [r.status for r in rows]
        assert METRICS.outbound_expired._value.get() - expired_before == len(rows)
        assert sorted(ticket.context["undelivered_replies"]) == sorted(r.id for r in rows)
        lines = [r.getMessage() for r in caplog.records if "expired undelivered" in r.getMessage()]
        assert len(lines) == len(rows) and all(f"ticket {ticket_id}" in line for line in lines)
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert customer not in logged and text not in logged
        assert graph.received == []
    finally:
        graph.close()
