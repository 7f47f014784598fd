"""The FastAPI application factory."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from nlu import Analyzer
from serving.routes import analyze, health
from serving.settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; models load at startup (lifespan), so ``/readyz`` turns ready after."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.analyzer = Analyzer.load(settings.nlu_model_dir, threads=settings.nlu_threads)
        log.info("tierline ready: NLU bundle %s", settings.nlu_model_dir)
        yield

    app = FastAPI(title="tierline", version="0.1.0", lifespan=lifespan,
                  description="Escalation brain for WhatsApp customer support.")
    app.state.settings = settings
    app.state.analyzer = None
    app.include_router(health.router)
    app.include_router(analyze.router)
    return app
