"""Secrets and customer phone numbers never reach the logs or an error body.

The service runs as ``make run`` runs it (``python -m tierline serve``, the production logging
set-up) at DEBUG, once with text and once with JSON log lines, so every logger that speaks at
DEBUG (uvicorn's access log, httpx and httpcore, asyncio, the service's own loggers) is in
the capture. The test drives the webhook (handshake, signed, forged and malformed deliveries, a
handoff), the Graph API (a failed then a retried send), the agent API and the console
(valid, invalid and expired tokens, a reply, a 422) and ``/v1/decide``, with the handoff's
notifications and export delivered to Slack, a signed webhook and Zendesk (each failing once
first), then looks for the app secret, the access token, the verify token, every agent token,
the Slack URL's secret part, the webhook's signing secret, the Zendesk token, the raw
customer phone number and the customer's WhatsApp profile name in the whole log output and in
every error body.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import httpx
import pytest

from tierline.serving.api_keys import create_api_key
from tierline.serving.storage.db import Database
from tierline.serving.storage.models import utcnow
from tierline.serving.tickets import create_agent
from tests.net import free_port, wait_ready
from tests.serving.conftest import process_env
from tests.serving.fakes import (
    ACCESS_TOKEN,
    APP_SECRET,
    VERIFY_TOKEN,
    FakeGraphAPI,
    IdempotentPeer,
    envelope,
    message,
    sign,
)

CUSTOMER = "447700900321"
CUSTOMER_NAME = "Test Customer"  # the profile name of every delivery of fakes.envelope
DECIDE_CUSTOMER = "+393331234567"
SLACK_SECRET_PART = "T0SECRET/B0SECRET/xoxSlackSecretPart"
WEBHOOK_SECRET = "whsec-logs-8a7b6c"
ZENDESK_TOKEN = "zd-logs-token-4f3e2d"


def post_signed(url: str, body: dict, secret: str = APP_SECRET) -> httpx.Response:
    raw = json.dumps(body).encode()
    return httpx.post(f"{url}/webhooks/whatsapp", content=raw, timeout=15,
                      headers={"x-hub-signature-256": sign(raw, secret), "content-type": "application/json"})


def drive_every_flow(url: str, graph: FakeGraphAPI, tokens: dict[str, str],
                     peers: list[IdempotentPeer]) -> list[httpx.Response]:
    """Exercise the service the way Meta, agents and a bot runtime do; return every answer."""
    answers = [
        httpx.get(f"{url}/webhooks/whatsapp", params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN,
                                                       "hub.challenge": "42"}),
        httpx.get(f"{url}/webhooks/whatsapp", params={"hub.mode": "subscribe",
                                                       "hub.verify_token": VERIFY_TOKEN + "x", "hub.challenge": "1"}),
    ]
    graph.script = [500]  # the first reply fails once and is retried
    answers.append(post_signed(url, envelope([message(text="hi", customer=CUSTOMER)], customer=CUSTOMER)))
    graph.wait_to(CUSTOMER, 1)
    answers.append(post_signed(url, envelope([message(text="I want to talk to a human agent now",
                                                      customer=CUSTOMER)], customer=CUSTOMER)))
    graph.wait_to(CUSTOMER, 2)
    forged = envelope([message(text="hi", customer=CUSTOMER)], customer=CUSTOMER)
    answers += [post_signed(url, forged, secret="forged"),
                httpx.post(f"{url}/webhooks/whatsapp", content=json.dumps(forged).encode()),
                httpx.post(f"{url}/webhooks/whatsapp", content=b'{"from": "447700900321"',
                           headers={"x-hub-signature-256": sign(b'{"from": "447700900321"')})]
    agent = {"authorization": f"Bearer {tokens['agent']}"}
    client = {"authorization": f"Bearer {tokens['api key']}"}
    queue = httpx.get(f"{url}/v1/agent/tickets", headers=agent)
    answers.append(queue)
    [ticket] = queue.json()
    answers += [
        httpx.get(f"{url}/v1/agent/tickets/{ticket['id']}", headers=agent),
        httpx.post(f"{url}/v1/agent/tickets/{ticket['id']}/reply", headers=agent,
                   json={"text": f"Hello, is {CUSTOMER} your number?"}),
        httpx.post(f"{url}/v1/agent/tickets/{ticket['id']}/reply", headers=agent, json={"text": "x" * 5000}),
        httpx.get(f"{url}/v1/agent/tickets", headers={"authorization": f"Bearer {tokens['expired']}"}),
        httpx.get(f"{url}/v1/agent/tickets", headers={"authorization": f"Bearer {tokens['unknown']}"}),
        httpx.post(f"{url}/console/login", data={"token": tokens["unknown"]}),
        httpx.post(f"{url}/console/login", data={"token": tokens["expired"]}),
        httpx.post(f"{url}/v1/decide", headers=client, json={
            "conversation_id": "c1", "customer": {"id": DECIDE_CUSTOMER},
            "text": f"call me on {DECIDE_CUSTOMER}"}),
        httpx.post(f"{url}/v1/decide", headers=client,
                   json={"customer": {"id": DECIDE_CUSTOMER}, "text": 5}),
        httpx.post(f"{url}/v1/decide", headers=client, json={
            "conversation_id": DECIDE_CUSTOMER * 20, "customer": {"id": DECIDE_CUSTOMER}, "text": "hi"}),
        httpx.post(f"{url}/v1/decide", headers={"x-api-key": tokens["unknown"]}, json={
            "conversation_id": "c1", "customer": {"id": DECIDE_CUSTOMER}, "text": "hi"}),
    ]
    graph.wait_to(CUSTOMER, 3)  # the agent's reply went out
    for peer in peers:  # the handoff's notifications and export, after a failed try each
        peer.wait_accepted(1)
    return answers


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_secret_or_phone_number_in_debug_logs_or_error_bodies(tmp_path, log_format):
    database_url = f"sqlite:///{tmp_path / 'tierline.db'}"
    db = Database(database_url)
    db.migrate()
    tokens = {"agent": create_agent(db, "Gina", ["general", "billing", "technical"]),
              "expired": create_agent(db, "Old", ["general"], expires_at=utcnow() - timedelta(days=1)),
              "unknown": "tl-unknown-token-0123456789abcdef",
              "api key": create_api_key(db, "bot runtime", ["decide"])[1]}
    db.dispose()
    graph = FakeGraphAPI()
    peers = [IdempotentPeer(), IdempotentPeer(), IdempotentPeer(zendesk=True)]
    for peer in peers:
        peer.fail_next = 1  # every target's first try fails: the retry is logged
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "service.log"
    env = process_env(database_url, graph.url, TIERLINE_PORT=str(port), TIERLINE_LOG_LEVEL="DEBUG",
                      TIERLINE_LOG_FORMAT=log_format, TIERLINE_WHATSAPP_RETRY_BASE_SECONDS="0.05",
                      TIERLINE_NOTIFY_SLACK_URL=f"{peers[0].url}/services/{SLACK_SECRET_PART}",
                      TIERLINE_NOTIFY_WEBHOOK_URL=f"{peers[1].url}/hook",
                      TIERLINE_NOTIFY_WEBHOOK_SECRET=WEBHOOK_SECRET,
                      TIERLINE_ZENDESK_BASE_URL=peers[2].url,
                      TIERLINE_ZENDESK_EMAIL="ops@example.com",
                      TIERLINE_ZENDESK_API_TOKEN=ZENDESK_TOKEN,
                      TIERLINE_NOTIFY_RETRY_BASE_SECONDS="0.05",
                      TIERLINE_NOTIFY_POLL_SECONDS="0.05")
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "tierline", "serve"], env=env,
                                stdout=log_file, stderr=subprocess.STDOUT)
        try:
            wait_ready(url, timeout=90)
            answers = drive_every_flow(url, graph, tokens, peers)
        finally:
            proc.terminate()
            proc.wait(30)
            graph.close()
            for peer in peers:
                peer.close()
    logs = log_path.read_text(encoding="utf-8", errors="replace")
    errors = [r for r in answers if r.status_code >= 400]
    assert {r.status_code for r in answers} >= {200, 401, 403, 422}, [r.status_code for r in answers]

    # The capture is the real thing: DEBUG lines of the service, SQL parameters included.
    assert "webhook with a bad signature refused" in logs and "retry in" in logs
    for target in ("slack", "webhook", "zendesk"):  # each failed once, logged, then went out
        assert f"({target}, ticket " in logs
    assert "hub.verify_token=***" in logs  # the handshake reached the access log, blanked
    assert (" DEBUG " in logs) or ('"level": "DEBUG"' in logs)
    if log_format == "json":
        lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
        assert len(lines) > 50 and any(e["level"] == "DEBUG" for e in lines)

    secrets = {"app secret": APP_SECRET, "access token": ACCESS_TOKEN, "verify token": VERIFY_TOKEN,
               **{f"agent token {k}": v for k, v in tokens.items()},
               "customer phone": CUSTOMER, "decide customer phone": DECIDE_CUSTOMER.lstrip("+"),
               "customer's WhatsApp profile name": CUSTOMER_NAME,
               "slack url": SLACK_SECRET_PART.rsplit("/", 1)[1], "webhook secret": WEBHOOK_SECRET,
               "zendesk token": ZENDESK_TOKEN}
    for name, value in secrets.items():
        assert value not in logs, f"{name} in the {log_format} logs: " + next(
            line for line in logs.splitlines() if value in line)[:300]
        for r in errors:
            assert value not in r.text, f"{name} in the {r.status_code} body of {r.request.url.path}"
