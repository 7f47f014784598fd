"""The FastAPI application factory."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from tierline.nlu.analyzer import BundleAnalyzer
from tierline.serving import console
from tierline.serving.api_keys import require_scope
from tierline.serving.body_limit import BodySizeLimit, limits_from
from tierline.serving.api import admin, agents, analyze, decide, health, metrics, webhook
from tierline.serving.api import ticket_extras
from tierline.serving.services import Services
from tierline.serving.settings import Settings, get_settings
from tierline.serving.tickets import TicketError

log = logging.getLogger(__name__)

API_DESCRIPTION = """Escalation brain for WhatsApp customer support.

`POST /v1/analyze` analyses texts: each text goes to the NLU bundle of its language (given in
`language`, or detected from the text alone) and its result names that language and model.
`POST /v1/decide` runs one turn of a conversation for a bot runtime. A text's analysis is the
same alone, in any batch and at any position: every message is scored in its own model call.
"""


def create_app(settings: Settings | None = None, analyzer: BundleAnalyzer | None = None) -> FastAPI:
    """Build the app. Models load, the schema migrates and the workers start at start-up
    (lifespan), so ``/readyz`` turns ready after; shutdown drains the workers."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        services = Services(settings, analyzer=analyzer)
        services.start()
        app.state.services = services
        app.state.analyzer = services.engine.analyzer
        log.info("tierline ready: NLU %s, policy %s, flow %s", settings.nlu_model_dir,
                 settings.policy_dir, settings.flow_path)
        try:
            yield
        finally:
            log.info("draining background work")
            services.stop()

    # /docs and /redoc load Swagger UI and ReDoc from files shipped in the fastapi-offline wheel
    # (under /static-offline-docs), not from a CDN: the docs work on a machine without internet.
    app = FastAPIOffline(title="tierline", version="0.1.0", lifespan=lifespan,
                         description=API_DESCRIPTION)
    app.state.settings = settings
    app.state.analyzer = None
    app.state.services = None
    for module in (health, webhook, agents, admin, metrics):
        app.include_router(module.router)
    # The inference APIs need a client credential of their scope (serving/api_keys.py).
    app.include_router(analyze.router, dependencies=[require_scope("analyze")])
    app.include_router(decide.router, dependencies=[require_scope("decide")])
    app.include_router(console.router)
    app.include_router(ticket_extras.router)  # notes and the customer panel of /v1/agent
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(TicketError, agents.ticket_error)
    default_limit, per_path = limits_from(settings)
    app.add_middleware(BodySizeLimit, default=default_limit, per_path=per_path)
    return app


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 saying which field is wrong and why, without echoing the input back: a bad request
    can carry a customer's phone number, a token or a megabyte of text."""
    errors = [{k: v for k, v in e.items() if k not in ("input", "url")} for e in exc.errors()]
    return JSONResponse(status_code=422, content={"detail": jsonable_encoder(errors)})
