"""The HTTP API over real HTTP on 127.0.0.1 with the shipped models."""

import httpx


def test_health_and_readiness(live_server):
    assert httpx.get(f"{live_server.url}/healthz").json() == {"status": "ok", "checks": {}}
    ready = httpx.get(f"{live_server.url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"nlu": "loaded", "database": "reachable"}


def test_analyze_returns_one_result_per_text_in_order(live_server):
    r = httpx.post(f"{live_server.url}/v1/analyze", headers=live_server.api_headers(),
                   json={"texts": ["where is my order", "THIS IS USELESS!!!", ""]})
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["intent"] for x in results[:1]] == ["track_order"]
    assert results[1]["frustration"] > 0.5 and "all_caps" in results[1]["cues"]
    assert results[2]["empty"] is True


def test_malformed_json_is_a_422_with_a_reason(live_server):
    r = httpx.post(f"{live_server.url}/v1/analyze", content=b'{"texts": [',
                   headers={"content-type": "application/json", **live_server.api_headers()})
    assert r.status_code == 422
    assert "json" in r.text.lower()


def test_wrong_types_and_empty_lists_are_422(live_server):
    for body in ({"texts": "where is my order"}, {"texts": []}, {"texts": [1, 2]}, {}):
        assert httpx.post(f"{live_server.url}/v1/analyze", headers=live_server.api_headers(), json=body).status_code == 422, body


def test_limits_on_count_and_length(live_server):
    too_many = httpx.post(f"{live_server.url}/v1/analyze", headers=live_server.api_headers(), json={"texts": ["hi"] * 65})
    assert too_many.status_code == 422 and "at most 64" in too_many.text
    too_long = httpx.post(f"{live_server.url}/v1/analyze", headers=live_server.api_headers(), json={"texts": ["a" * 50_001]})
    assert too_long.status_code == 422


def test_50k_characters_odd_unicode_are_answered(live_server):
    texts = ["where is my order " * 2700, "😡😡 ‏مرحبا where is it", "e\u0301\u200d"]
    r = httpx.post(f"{live_server.url}/v1/analyze", headers=live_server.api_headers(), json={"texts": texts}, timeout=30)
    assert r.status_code == 200
    assert r.json()["results"][0]["truncated"] is True


def test_openapi_docs_are_served(live_server):
    spec = httpx.get(f"{live_server.url}/openapi.json").json()
    assert "/v1/analyze" in spec["paths"]
    assert httpx.get(f"{live_server.url}/docs").status_code == 200
