"""Hostile input against every route of the OpenAPI spec: never a 500, never a hang.

Hypothesis generates arbitrary JSON bodies (deep nesting, odd Unicode, huge numbers, wrong
types) and path/query values for every operation, with and without a valid admin token and with
signed webhook bodies; every answer must be a deliberate 2xx/4xx (or 503) within the timeout.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tierline.serving.tickets import create_agent
from tests.serving.fakes import sign

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-10**20, max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=200),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=20), children, max_size=6),
    max_leaves=30)
path_values = st.one_of(st.integers(min_value=-5, max_value=10**12).map(str),
                        st.text(min_size=1, max_size=30).filter(lambda s: "/" not in s and "?" not in s and "#" not in s))


@pytest.fixture(scope="module")
def operations(service):
    spec = httpx.get(f"{service.url}/openapi.json").json()
    ops = [(path, method) for path, item in spec["paths"].items() for method in item
           if method in ("get", "post", "put", "delete")]
    assert len(ops) >= 12
    return ops


@pytest.fixture(scope="module")
def admin_token(service):
    return create_agent(service.services.db, "Fuzz", ["general"], admin=True)


@pytest.fixture(scope="module")
def api_key(service):
    return service.api_headers()["Authorization"].split(" ", 1)[1]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_no_route_answers_500(service, operations, admin_token, api_key, data):
    path, method = data.draw(st.sampled_from(operations))
    concrete = path
    while "{" in concrete:
        start, end = concrete.index("{"), concrete.index("}")
        concrete = concrete[:start] + quote(data.draw(path_values), safe="") + concrete[end + 1:]
    body = json.dumps(data.draw(json_values)).encode()
    headers = {"content-type": "application/json"}
    if data.draw(st.booleans()):
        credential = api_key if path in ("/v1/analyze", "/v1/decide") else admin_token
        headers["authorization"] = f"Bearer {credential}"
    if path.startswith("/webhooks") and data.draw(st.booleans()):
        headers["x-hub-signature-256"] = sign(body)
    params = data.draw(st.dictionaries(st.sampled_from(["team", "status", "limit", "hub.mode",
                                                        "hub.verify_token", "hub.challenge"]),
                                       st.text(max_size=20), max_size=3))
    r = httpx.request(method.upper(), f"{service.url}{concrete}", content=body if method != "get" else None,
                      headers=headers, params=params, timeout=30)
    assert r.status_code < 500 or r.status_code == 503, (method, concrete, body[:200], r.status_code, r.text[:300])
