"""The service serves the registry's champion and follows the alias without a restart."""

from __future__ import annotations

import json
import time

import httpx
import mlflow
import pytest

from tierline.nlu.bundle import DEFAULT_POLICY_DIR, MULTILINGUAL_POLICY_DIR, POLICY_FILE
from tierline.serving.app import create_app
from tierline.serving.settings import Settings
from tierline.serving.tickets import create_agent
from tests.conftest import LiveServer
from tests.serving.conftest import steady_traffic
from tierline.training import tracking


def register_policy(folder, promote: bool, model: str = tracking.POLICY_MODEL) -> str:
    """Log ``folder/policy.json`` in a run and register it as ``model`` (champion when
    ``promote``)."""
    with tracking.tracked_run("tierline-policy", "test", {}) as run:
        mlflow.log_artifact(str(folder / POLICY_FILE), artifact_path="policy")
    return tracking.register(model, run.info.run_id, "policy", ship=promote)


def eager_copy(policy_dir, folder):
    """A copy of ``policy_dir``'s policy shifted so that every probability is (almost) 1."""
    eager = json.loads((policy_dir / POLICY_FILE).read_text())
    eager["intercept"] += 50.0
    folder.mkdir()
    (folder / POLICY_FILE).write_text(json.dumps(eager))
    return folder


@pytest.fixture()
def registry(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def registry_settings(registry: str, tmp_path, **extra) -> Settings:
    """A service on ``registry`` with its cache and database in ``tmp_path``."""
    return Settings(database_url=f"sqlite:///{tmp_path / 'svc.db'}", model_registry_uri=registry,
                    model_cache_dir=tmp_path / "cache", **extra)


def served_models(server: LiveServer) -> dict:
    """``GET /v1/admin/models`` as an admin."""
    admin = create_agent(server.server.config.app.state.services.db, "Root", [], admin=True)
    return httpx.get(f"{server.url}/v1/admin/models",
                     headers={"authorization": f"Bearer {admin}"}).json()


def decide(server: LiveServer, conversation: str,
           text: str = "I was charged twice for my order") -> dict:
    r = httpx.post(f"{server.url}/v1/decide", timeout=60, headers=server.api_headers(), json={
        "conversation_id": conversation, "customer": {"id": "c1"}, "text": text})
    assert r.status_code == 200, r.text
    return r.json()


def test_champion_is_served_and_a_new_champion_is_picked_up_live(registry, tmp_path, analyzer):
    assert register_policy(DEFAULT_POLICY_DIR, promote=True) == "1"
    # Version 2: the same policy shifted so that every probability is (almost) 1.
    eager_copy(DEFAULT_POLICY_DIR, tmp_path / "eager")

    settings = registry_settings(registry, tmp_path, model_registry_poll_seconds=0.2)
    with LiveServer(create_app(settings, analyzer=analyzer)) as server:
        services = server.server.config.app.state.services
        served = served_models(server)
        assert served["policy_version"] == "1" and served["nlu_version"] is None
        assert served["policy_dir"] == str(tmp_path / "cache" / "tierline-policy" / "1")
        before = decide(server, "before")["p_escalate"]
        assert before < 0.99

        def send(n: int, i: int) -> int:
            return httpx.post(f"{server.url}/v1/decide", timeout=30, headers=server.api_headers(),
                              json={
                "conversation_id": f"live-{n}-{i}", "customer": {"id": "c"},
                "text": "where is my order"}).status_code

        with steady_traffic(send, clients=4) as statuses:
            assert register_policy(tmp_path / "eager", promote=True) == "2"
            deadline = time.monotonic() + 20
            while services.models.policy_version != "2" and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.3)
        assert services.models.policy_version == "2"
        # The move was announced to every process: the next generation pins version 2.
        live = services.live.read()
        assert live.policy_version == "2" and live.generation == services.generation >= 1
        assert decide(server, "after")["p_escalate"] > 0.99
        assert len(statuses) > 10 and set(statuses) == {200}


def test_a_registry_without_champions_falls_back_to_the_folders(registry, tmp_path, analyzer):
    settings = registry_settings(registry, tmp_path)
    with LiveServer(create_app(settings, analyzer=analyzer)) as server:
        services = server.server.config.app.state.services
        assert services.models.policy_dir == settings.policy_dir
        assert services.models.policy_version is None
        admin = create_agent(services.db, "Root", [], admin=True)
        # Promote a champion, then ask for it explicitly (no polling configured).
        register_policy(DEFAULT_POLICY_DIR, promote=True)
        r = httpx.post(f"{server.url}/v1/admin/reload", timeout=60,
                       headers={"authorization": f"Bearer {admin}"})
        assert r.status_code == 200, r.text
        assert r.json()["policy_version"] == "1"


def test_an_unreachable_registry_keeps_the_current_models(registry, tmp_path, analyzer,
                                                          monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    settings = registry_settings(registry, tmp_path)
    with LiveServer(create_app(settings, analyzer=analyzer)) as server:
        services = server.server.config.app.state.services
        admin = create_agent(services.db, "Root", [], admin=True)
        services.registry.uri = "http://127.0.0.1:9"  # nothing listens there
        services.registry.client = type(services.registry.client)(
            tracking_uri=services.registry.uri, registry_uri=services.registry.uri)
        engine = services.engine
        r = httpx.post(f"{server.url}/v1/admin/reload", timeout=120,
                       headers={"authorization": f"Bearer {admin}"})
        assert r.status_code == 409 and "still serving the previous models" in r.json()["detail"]
        assert services.engine is engine


ITALIAN = "dove trovo la fattura del mio ultimo ordine?"
ENGLISH = "where can I find the invoice of my last order?"


def test_the_multilingual_route_serves_and_follows_its_own_champion(registry, tmp_path, analyzer):
    """it/es/pt conversations run on tierline-nlu-multilingual / tierline-policy-multilingual
    champions, English ones on tierline-nlu / tierline-policy: a multilingual champion moves
    the Italian conversations' policy, announced to every process, and leaves English alone."""
    model = tracking.MULTILINGUAL_POLICY_MODEL
    assert register_policy(eager_copy(MULTILINGUAL_POLICY_DIR, tmp_path / "eager"), True,
                           model) == "1"
    settings = registry_settings(registry, tmp_path, model_registry_poll_seconds=0.2)
    with LiveServer(create_app(settings, analyzer=analyzer)) as server:
        services = server.server.config.app.state.services
        served = served_models(server)
        assert served["multilingual_policy_version"] == "1" and served["policy_version"] is None
        assert served["multilingual_policy_dir"] == str(tmp_path / "cache" / model / "1")
        assert served["multilingual_nlu_version"] is None  # no champion: the shipped folder
        italian = decide(server, "it-1", ITALIAN)
        assert italian["language"] == "it" and italian["model"]["name"] == "nlu-multilingual"
        assert italian["p_escalate"] > 0.99  # the eager multilingual champion
        english = decide(server, "en-1", ENGLISH)
        assert english["language"] == "en" and english["p_escalate"] < 0.99

        # Version 2, the shipped multilingual policy, becomes the champion: followed live.
        assert register_policy(MULTILINGUAL_POLICY_DIR, True, model) == "2"
        deadline = time.monotonic() + 20
        while services.models.multilingual_policy_version != "2" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert services.models.multilingual_policy_version == "2"
        live = services.live.read()
        assert live.multilingual_policy_version == "2" and live.policy_version is None
        assert live.generation == services.generation >= 1
        assert decide(server, "it-2", ITALIAN)["p_escalate"] < 0.99
        assert decide(server, "en-2", ENGLISH)["p_escalate"] == english["p_escalate"]


def test_a_service_without_a_multilingual_route_ignores_its_champions(registry, tmp_path,
                                                                      analyzer):
    register_policy(eager_copy(MULTILINGUAL_POLICY_DIR, tmp_path / "eager"), True,
                    tracking.MULTILINGUAL_POLICY_MODEL)
    settings = registry_settings(registry, tmp_path, multilingual_nlu_dir=None)
    with LiveServer(create_app(settings, analyzer=analyzer)) as server:
        services = server.server.config.app.state.services
        assert services.models.versions == (None, None, None, None)
        assert services.engine.routed is None
