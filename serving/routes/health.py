"""Liveness (the process answers) and readiness (the models are loaded)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from serving.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(request: Request):
    """Ready when the NLU models are loaded; 503 otherwise so a load balancer waits."""
    analyzer = getattr(request.app.state, "analyzer", None)
    if analyzer is None:
        return JSONResponse(status_code=503,
                            content=Health(status="not ready", checks={"nlu": "not loaded"}).model_dump())
    return Health(status="ready", checks={"nlu": "loaded"})
