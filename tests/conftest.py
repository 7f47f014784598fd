"""Shared fixtures: the shipped English bundle and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
import uvicorn

from tests.net import free_port, wait_ready

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def analyzer():
    """The shipped English bundle, loaded once (the service's and engine's primary bundle)."""
    from tierline.nlu import BundleAnalyzer

    return BundleAnalyzer.load()


class LiveServer:
    """uvicorn serving an app in a background thread, reachable over real HTTP."""

    def __init__(self, app) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self._keys: dict[tuple[str, ...], str] = {}

    def api_headers(self, scopes: tuple[str, ...] = ("analyze", "decide")) -> dict[str, str]:
        """``Authorization`` of an API key with ``scopes`` (one per scope set), made in the
        served tierline app's database the way ``tierline api-keys add`` makes it."""
        if scopes not in self._keys:
            from tierline.serving.api_keys import create_api_key

            db = self.server.config.app.state.services.db
            self._keys[scopes] = create_api_key(db, "tests", list(scopes))[1]
        return {"Authorization": f"Bearer {self._keys[scopes]}"}

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_ready(self.url)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def live_server(analyzer, tmp_path_factory) -> Iterator[LiveServer]:
    """The tierline app with default settings and shipped models, on a free loopback port."""
    from tierline.serving.app import create_app
    from tierline.serving.settings import Settings

    db = tmp_path_factory.mktemp("db") / "tierline.db"
    with LiveServer(create_app(Settings(database_url=f"sqlite:///{db}"), analyzer=analyzer)) as server:
        yield server
