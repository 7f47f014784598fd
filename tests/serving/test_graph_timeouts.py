"""A Graph API that times out: a send that Meta accepted is confirmed by its status webhook and
never re-sent; a send that was lost is retried after the lease; each reply arrives once."""

from __future__ import annotations

import time

from tierline.serving.app import create_app
from tests.conftest import LiveServer
from tests.serving.conftest import Service, settings_for
from tests.serving.fakes import APP_SECRET, FakeGraphAPI, message


def test_timeouts_neither_lose_nor_duplicate_replies(analyzer, database_url):
    graph = FakeGraphAPI()
    app = create_app(settings_for(database_url, graph.url, whatsapp_send_timeout=0.5,
                                  sending_lease_seconds=2.0), analyzer=analyzer)
    try:
        with LiveServer(app) as server:
            graph.status_target = (f"{server.url}/webhooks/whatsapp", APP_SECRET)
            service = Service(server, graph, app)
            # Slow but accepted (the client gives up at 0.5 s), then accepted normally.
            graph.script = [("sleep", 1.0)]
            service.say(message(text="hello", customer="447700900901"))
            graph.wait_to("447700900901", 1)
            # Times out and is NOT accepted: must be retried after the lease.
            graph.script = [("hang", 1.0)]
            service.say(message(text="hello", customer="447700900902"))
            graph.wait_to("447700900902", 1, timeout=30)
            time.sleep(3.0)  # past the lease: a wrongly unconfirmed send would be re-sent now
            assert len(graph.wait_to("447700900901", 1)) == 1
            assert len(graph.wait_to("447700900902", 1)) == 1
    finally:
        graph.close()
