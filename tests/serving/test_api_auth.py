"""Every route of the app needs a credential unless it is on an explicit allow-list; the
inference APIs take API keys made by ``tierline api-keys`` (stored hashed, scoped, revocable);
``/v1/decide`` never answers with stored history or identity the caller did not send.

Over real HTTP on 127.0.0.1 (SQLite and, when configured, PostgreSQL); the CLI runs as a
process of its own against the service's database.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

import httpx
from fastapi.routing import APIRoute
from sqlalchemy import select
from starlette.routing import Mount, Route

from tierline.serving.storage.models import ApiKey
from tests.serving.conftest import process_env

#: (method, path template) answering without a credential, and why. Anything else must be
#: refused: 401/403, or a redirect to the sign-in page for the console's HTML pages.
PUBLIC = {
    ("GET", "/healthz"): "liveness probe",
    ("GET", "/readyz"): "readiness probe",
    ("GET", "/metrics"): "Prometheus scrape: counters with bounded labels, no customer data",
    ("GET", "/openapi.json"): "API description",
    ("GET", "/docs"): "API docs page",
    ("GET", "/docs/oauth2-redirect"): "API docs page",
    ("GET", "/redoc"): "API docs page",
    ("GET", "/static-offline-docs/{path}"): "Swagger UI and ReDoc files of the docs pages",
    ("GET", "/webhooks/whatsapp"): "Meta's handshake: checks hub.verify_token itself",
    ("POST", "/webhooks/whatsapp"): "Meta's deliveries: checks X-Hub-Signature-256 itself",
    ("GET", "/console/login"): "the sign-in form",
    ("POST", "/console/login"): "sign-in: exchanges an agent token for a session",
    ("GET", "/console/static/{name}"): "CSS and JavaScript of the console",
    ("GET", "/console"): "redirects to the queue (which needs a session)",
    ("GET", "/console/"): "redirects to the queue (which needs a session)",
}
SIGN_IN = "/console/login"


def concrete(path: str) -> str:
    """A path template with every parameter filled in."""
    return (path.replace("{ticket_id}", "1").replace("{inbound_id}", "1")
            .replace("{name}", "console.css")
            .replace("{path}", "swagger-ui.css"))


def route_methods(app) -> list[tuple[str, str]]:
    """Every (method, path template) the app serves, from ``app.routes`` (an included router
    expanded: FastAPI >= 0.16x keeps it as one entry and resolves its prefixed paths lazily)."""
    out = []
    for route in app.routes:
        if isinstance(route, Mount):  # static files: every file under it answers a GET
            out.append(("GET", f"{route.path}/{{path}}"))
            continue
        contexts = (list(route.effective_route_contexts())
                    if hasattr(route, "effective_route_contexts") else [route])
        for context in contexts:
            original = getattr(context, "original_route", context)
            assert isinstance(original, (APIRoute, Route)), f"{original!r}: check it too"
            out += [(m, context.path) for m in sorted(original.methods or ()) if m != "HEAD"]
    return out


def test_every_route_needs_a_credential_unless_allow_listed(service):
    routes = route_methods(service.app)
    assert {("POST", "/v1/analyze"), ("POST", "/v1/decide"),
            ("GET", "/v1/agent/tickets"), ("POST", "/v1/admin/reload")} <= set(routes)
    assert set(PUBLIC) <= set(routes), set(PUBLIC) - set(routes)  # no stale allow-list entry
    answered = {}
    with httpx.Client(base_url=service.url, timeout=10, follow_redirects=False) as client:
        for method, path in routes:
            r = client.request(method, concrete(path), content=b"{}",
                               headers={"content-type": "application/json"})
            answered[(method, path)] = r.status_code
            if (method, path) in PUBLIC:
                continue
            refused = r.status_code in (401, 403) or (
                r.status_code in (303, 307) and r.headers.get("location") == SIGN_IN)
            assert refused, f"{method} {path} answered {r.status_code} without a credential"
    print(f"\n{len(routes)} route methods checked, {len(PUBLIC)} public: "
          + json.dumps({f"{m} {p}": s for (m, p), s in answered.items()}))


def test_inference_routes_take_scoped_keys_in_either_header(service):
    url = service.url
    analyze, decide = service.api_headers(("analyze",)), service.api_headers(("decide",))
    body = {"conversation_id": "scope-1", "customer": {"id": "c"}, "text": "hi"}
    texts = {"texts": ["where is my order"]}
    assert httpx.post(f"{url}/v1/analyze", json=texts, headers=analyze).status_code == 200
    assert httpx.post(f"{url}/v1/decide", json=body, headers=decide).status_code == 200
    wrong = httpx.post(f"{url}/v1/decide", json=body, headers=analyze)
    assert wrong.status_code == 403 and "decide" in wrong.json()["detail"]
    assert httpx.post(f"{url}/v1/analyze", json=texts, headers=decide).status_code == 403
    x_api_key = {"x-api-key": analyze["Authorization"].split(" ", 1)[1]}
    assert httpx.post(f"{url}/v1/analyze", json=texts, headers=x_api_key).status_code == 200
    for bad in ({}, {"Authorization": "Bearer tlk_not-a-key"}, {"x-api-key": ""},
                {"Authorization": "Basic Zm9vOmJhcg=="}):
        r = httpx.post(f"{url}/v1/analyze", json=texts, headers=bad)
        assert r.status_code == 401 and "Bearer" in r.headers["www-authenticate"], bad


def cli(database_url: str, *args: str) -> str:
    """``tierline api-keys ...`` as an operator runs it; its stdout."""
    done = subprocess.run([sys.executable, "-m", "tierline", "api-keys", *args],
                          env=process_env(database_url, "http://127.0.0.1:9"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_keys_from_the_cli_are_stored_hashed_listed_and_revocable(service, database_url):
    key = cli(database_url, "add", "--name", "bot-runtime", "--scopes", "decide").strip()
    headers = {"Authorization": f"Bearer {key}"}
    body = {"conversation_id": "cli-1", "customer": {"id": "c"}, "text": "hi"}
    assert httpx.post(f"{service.url}/v1/decide", json=body, headers=headers).status_code == 200
    with service.services.db.session() as s:
        row = s.scalars(select(ApiKey).where(ApiKey.name == "bot-runtime")).one()
    assert row.key_sha256 == hashlib.sha256(key.encode()).hexdigest() and row.scopes == ["decide"]
    listed = [json.loads(line) for line in cli(database_url, "list").splitlines()]
    mine = next(k for k in listed if k["id"] == row.id)
    assert mine["revoked_at"] is None and key not in json.dumps(listed)

    cli(database_url, "revoke", str(row.id))
    revoked_at = time.monotonic()
    cache = service.app.state.settings.api_key_cache_seconds
    while httpx.post(f"{service.url}/v1/decide", json=body, headers=headers).status_code == 200:
        assert time.monotonic() - revoked_at < cache + 2, "revoked key still accepted"
        time.sleep(0.1)
    assert httpx.post(f"{service.url}/v1/decide", json=body, headers=headers).status_code == 401
    assert [k for k in map(json.loads, cli(database_url, "list").splitlines())
            if k["id"] == row.id][0]["revoked_at"] is not None


def test_decide_answers_with_nothing_the_caller_did_not_send(service):
    headers = service.api_headers(("decide",))
    victim = {"conversation_id": "shared-id", "customer": {"id": "+447700900777"},
              "text": "my order ND-100000 is late, call me at home"}
    assert httpx.post(f"{service.url}/v1/decide", json=victim, headers=headers).status_code == 200
    prober = {"conversation_id": "shared-id", "customer": {"id": "someone-else"}, "text": "hi"}
    r = httpx.post(f"{service.url}/v1/decide", json=prober, headers=headers)
    assert r.status_code == 200
    answer = r.text
    for leaked in ("447700900777", "ND-100000", "call me at home", "history", "customer_id"):
        assert leaked not in answer, leaked
    assert set(r.json()["state"]) == {"step", "language", "turns", "failed_attempts", "escalated"}
