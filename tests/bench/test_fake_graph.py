"""The benchmark's fake Graph API (``bench/fake_graph.py``): it answers sends like Meta, records
when each arrived, and, when asked, posts Meta's three statuses of every accepted message to
the webhook, signed and in order, as Meta does. The figures "with statuses" rest on it."""

from __future__ import annotations

import json
import threading

import httpx

from tierline.bench.fake_graph import STATUS_SEQUENCE, serve_fake_graph
from tierline.bench.load import SECRET, free_port, wait_ready_port
from tierline.serving.channels.whatsapp.payload import parse_webhook, signature_is_valid
from tests.serving.fakes import RecordingPeer


def test_the_fake_graph_api_posts_each_accepted_messages_statuses_signed_and_in_order():
    port = free_port()
    threading.Thread(target=serve_fake_graph, args=(port,), daemon=True).start()
    wait_ready_port(port)
    graph, webhook = f"http://127.0.0.1:{port}", RecordingPeer()
    try:
        send = {"messaging_product": "whatsapp", "to": "447700900123", "type": "text",
                "text": {"body": "hello"}, "biz_opaque_callback_data": "reply:wamid.x:0"}
        # Off: a send is answered and recorded, nothing is posted back.
        first = httpx.post(f"{graph}/100000000001/messages", json=send, timeout=10).json()
        assert first["messages"][0]["id"]
        assert httpx.post(f"{graph}/_statuses", json={"url": webhook.url}, timeout=10).json() == {}
        second = httpx.post(f"{graph}/100000000001/messages", json=send, timeout=10).json()
        wamid = second["messages"][0]["id"]
        requests = webhook.wait_for(len(STATUS_SEQUENCE))
        statuses = []
        for request in requests:
            assert request["path"] == "/webhooks/whatsapp"
            assert signature_is_valid(request["body"], request["headers"]["x-hub-signature-256"], SECRET)
            statuses += parse_webhook(json.loads(request["body"]))[1]
        assert [(s.wamid, s.status, s.recipient_id, s.callback_data) for s in statuses] == [
            (wamid, state, "447700900123", "reply:wamid.x:0") for state in STATUS_SEQUENCE]
        assert httpx.get(f"{graph}/_statuses", timeout=10).json() == {"acknowledged": 3}
        arrivals = httpx.get(f"{graph}/_arrivals", timeout=10).json()
        assert [key for key, _ in arrivals] == ["reply:wamid.x:0"] * 2
        # Off again: nothing more is posted.
        httpx.post(f"{graph}/_statuses", json={"url": None}, timeout=10)
        httpx.post(f"{graph}/100000000001/messages", json=send, timeout=10)
        assert len(webhook.requests) == len(STATUS_SEQUENCE)
    finally:
        webhook.close()
