"""Hot reload: ``POST /v1/admin/reload`` swaps the models while requests keep flowing."""

from __future__ import annotations

import httpx

from tierline.serving.tickets import create_agent
from tests.serving.conftest import steady_traffic


def test_reload_needs_an_admin_token(service):
    db = service.services.db
    agent = create_agent(db, "Plain", ["general"])
    assert httpx.post(f"{service.url}/v1/admin/reload").status_code == 401
    assert httpx.post(f"{service.url}/v1/admin/reload",
                      headers={"authorization": f"Bearer {agent}"}).status_code == 403


def test_reload_under_concurrent_requests_drops_nothing(service):
    admin = create_agent(service.services.db, "Root", [], admin=True)
    client = service.api_headers()

    def send(n: int, i: int) -> int:
        if i % 2:
            return httpx.post(f"{service.url}/v1/analyze", json={"texts": ["where is my order"]},
                              timeout=30, headers=client).status_code
        return httpx.post(f"{service.url}/v1/decide", timeout=30, headers=client, json={
            "conversation_id": f"reload-{n}", "customer": {"id": "c"}, "text": "hi"}).status_code

    old_engine = service.services.engine
    with steady_traffic(send, clients=6) as statuses:
        for _ in range(2):
            r = httpx.post(f"{service.url}/v1/admin/reload", timeout=120,
                           headers={"authorization": f"Bearer {admin}"})
            assert r.status_code == 200, r.text
            assert "int8_intent_accuracy" in r.json()["nlu_metrics"]
    assert service.services.engine is not old_engine
    assert service.services.worker.engine is service.services.engine
    assert len(statuses) > 20 and set(statuses) == {200}
