"""Liveness (the process answers) and readiness (models loaded, database reachable)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from tierline.serving.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(request: Request):
    """Ready when the models are loaded and the database answers; 503 otherwise."""
    services = getattr(request.app.state, "services", None)
    checks = {"nlu": "loaded" if getattr(request.app.state, "analyzer", None) else "not loaded",
              "database": "reachable" if services and services.db.ping() else "unreachable"}
    if checks != {"nlu": "loaded", "database": "reachable"}:
        return JSONResponse(status_code=503,
                            content=Health(status="not ready", checks=checks).model_dump())
    return Health(status="ready", checks=checks)
