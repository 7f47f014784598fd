"""A new ticket notifies agents (Slack-style and signed webhook) and lands in Zendesk, without
delaying the customer's reply."""

from __future__ import annotations

import json
import time

from sqlalchemy import select

from serving.app import create_app
from serving.handoff.notify import verify
from serving.storage.models import Ticket
from tests.conftest import LiveServer
from tests.serving.conftest import Service, settings_for
from tests.serving.fakes import PHONE_NUMBER_ID, FakeGraphAPI, RecordingPeer, message


def zendesk_answer(method: str, path: str):
    if method == "GET":
        return 200, {"tickets": []}
    return 201, {"ticket": {"id": 4242}}


def test_new_ticket_reaches_slack_webhook_and_zendesk(analyzer, database_url):
    graph, slack, hook = FakeGraphAPI(), RecordingPeer(), RecordingPeer()
    zendesk = RecordingPeer(zendesk_answer)
    settings = settings_for(database_url, graph.url, notify_slack_url=slack.url + "/slack",
                            notify_webhook_url=hook.url + "/hook", notify_webhook_secret="hook-secret",
                            zendesk_base_url=zendesk.url, zendesk_email="ops@example.com",
                            zendesk_api_token="zd-token")
    app = create_app(settings, analyzer=analyzer)
    customer = "447700900801"
    try:
        with LiveServer(app) as server:
            service = Service(server, graph, app)
            service.say(message(text="hi", customer=customer))
            service.say(message(text="I want to talk to a human", customer=customer))
            graph.wait_for(2)
            [slack_req] = slack.wait_for(1)
            [hook_req] = hook.wait_for(1)
            zd = zendesk.wait_for(2)
            assert "general" in slack_req["body"].decode() and customer not in slack_req["body"].decode()
            assert verify(hook_req["body"], "hook-secret", hook_req["headers"]["x-tierline-signature-256"])
            notice = json.loads(hook_req["body"])
            assert notice["reasons"][0] == "customer asked for a human agent"
            assert [r["method"] for r in zd] == ["GET", "POST"]
            created = json.loads(zd[1]["body"])["ticket"]
            assert "I want to talk to a human" in created["comment"]["body"]
            assert created["external_id"].startswith("tierline-")
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                with app.state.services.db.session() as s:
                    ticket = s.scalars(select(Ticket).where(
                        Ticket.conversation_id == f"wa:{PHONE_NUMBER_ID}:{customer}")).first()
                    if ticket.external_id:
                        break
                time.sleep(0.05)
            assert ticket.external_id == "4242"
    finally:
        for peer in (graph, slack, hook, zendesk):
            peer.close()
