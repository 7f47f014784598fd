"""The HTTP API over real HTTP on 127.0.0.1 with the shipped models."""

import concurrent.futures
import re
from datetime import datetime, timezone

import httpx

from tierline.nlu.engine import TurnEngine


def analyze(server, body: dict, **kwargs) -> httpx.Response:
    """``POST /v1/analyze`` with an API key of the ``analyze`` scope."""
    return httpx.post(f"{server.url}/v1/analyze", headers=server.api_headers(), json=body,
                      **kwargs)


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
        assert analyze(live_server, body).status_code == 422, body


def test_limits_on_count_and_length(live_server):
    too_many = analyze(live_server, {"texts": ["hi"] * 65})
    assert too_many.status_code == 422 and "at most 64" in too_many.text
    too_long = analyze(live_server, {"texts": ["a" * 50_001]})
    assert too_long.status_code == 422


def test_50k_characters_odd_unicode_are_answered(live_server):
    texts = ["where is my order " * 2700, "😡😡 ‏مرحبا where is it", "e\u0301\u200d"]
    r = analyze(live_server, {"texts": texts}, timeout=30)
    assert r.status_code == 200
    assert r.json()["results"][0]["truncated"] is True


def test_openapi_docs_stand_alone_offline(live_server):
    """/docs and /redoc load every script and style from the service itself (no CDN), and the
    analyze and decide schemas describe every field, with examples."""
    spec = httpx.get(f"{live_server.url}/openapi.json").json()
    assert "/v1/analyze" in spec["paths"] and "/v1/decide" in spec["paths"]
    for page in ("/docs", "/redoc"):
        html = httpx.get(f"{live_server.url}{page}")
        assert html.status_code == 200
        assets = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', html.text)
        assets += re.findall(r"url: *['\"]([^'\"]+)['\"]", html.text)
        assert assets and all(a.startswith("/") for a in assets), assets
        for asset in assets:
            got = httpx.get(f"{live_server.url}{asset}")
            assert got.status_code == 200 and len(got.content) > 100, asset
    schemas = spec["components"]["schemas"]
    for name in ("AnalyzeRequest", "AnalysisOut", "ModelOut", "DecideIn", "DecideOut", "Customer"):
        fields = schemas[name]["properties"]
        undocumented = [f for f, v in fields.items() if not v.get("description") and "$ref" not in v
                        and not any("$ref" in x for x in v.get("anyOf", []))]
        assert not undocumented, (name, undocumented)
    for name in ("AnalyzeRequest", "AnalysisOut", "DecideIn", "DecideOut"):
        assert schemas[name].get("examples"), name


ITALIAN = "È INUTILE!!! voglio parlare con qualcuno"


def test_an_italian_text_is_analysed_like_the_chat_engine_does(live_server, analyzer):
    """The multilingual bundle, named in the result, with the frustration the chat engine
    computes for the same message in an Italian conversation."""
    r = analyze(live_server, {"texts": ["where is my order?", ITALIAN]})
    english, italian = r.json()["results"]
    assert italian["language"] == "it" and italian["model"]["name"] == "nlu-multilingual"
    assert english["language"] == "en" and english["model"]["name"] == "nlu"
    engine = TurnEngine.shipped(analyzer=analyzer)
    turn = engine.turn(engine.new_state("chat", customer_id="447700959998"), ITALIAN,
                       now=datetime(2026, 11, 24, 10, tzinfo=timezone.utc))
    assert turn.state.language == "it"
    assert italian["frustration"] == turn.analysis.frustration
    assert italian["model"] == turn.analysis.model.to_dict()
    forced = analyze(live_server, {"texts": ["ok"], "language": "es"})
    assert forced.json()["results"][0]["language"] == "es"
    unknown = analyze(live_server, {"texts": ["ok"], "language": "de"})
    assert unknown.status_code == 422


def test_concurrent_requests_do_not_change_each_others_scores(live_server):
    """Requests served together (one model call) get exactly what each gets alone."""
    texts = [ITALIAN, "where is my order?", "THIS IS RIDICULOUS!!!", "jajaja vale gracias",
             "cadê meu pedido??? 😡", "ok", "mi avete addebitato due volte", "lol nvm 😂"]
    alone = {t: analyze(live_server, {"texts": [t]}).json()["results"][0]
             for t in texts}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda i: analyze(
            live_server, {"texts": texts[i:] + texts[:i]}).json(),
            range(len(texts))))
    for i, body in enumerate(together):
        for text, result in zip(texts[i:] + texts[:i], body["results"]):
            assert result == alone[text], text
