"""Admin routes: ``POST /v1/admin/reload`` switches every service process to new models and
flow without a restart (the registry's champions when one is configured, else the folders on
disk); ``GET /v1/admin/models`` says what the answering process serves and what is live."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from tierline.serving.api.agents import current_agent
from tierline.serving.storage.models import Agent

router = APIRouter(prefix="/v1/admin", tags=["admin"])


def require_admin(agent: Agent = Depends(current_agent)) -> Agent:
    """Only admin tokens pass (401 without a valid token, 403 for a plain agent)."""
    if not agent.is_admin:
        raise HTTPException(403, "admin token required")
    return agent


@router.post("/reload")
async def reload_models(request: Request, agent: Agent = Depends(require_admin)) -> dict:
    """Reload the NLU bundle, the policy and the flow here, then announce them as the next
    generation of ``live_versions``: every other process follows within
    ``TIERLINE_LIVE_POLL_SECONDS`` plus its load time. Requests keep flowing.

    409: the new models or flow could not be loaded; nothing was announced, every process
    serves what it served. 503: the database could not record the generation; nothing changed.
    """
    services = request.app.state.services
    try:
        return await run_in_threadpool(services.reload, f"admin reload by agent {agent.id}")
    except SQLAlchemyError as exc:
        raise HTTPException(503, "reload not recorded (database unavailable), still serving "
                                 f"the previous models: {type(exc).__name__}") from None
    except Exception as exc:  # noqa: BLE001 - any load failure (missing file, bad YAML, registry)
        raise HTTPException(409, f"reload failed, still serving the previous models: {exc}") from None


@router.get("/models")
def served_models(request: Request, _: Agent = Depends(require_admin)) -> dict:
    """What this process serves (folders, registry versions, generation, ``pid``, its last
    failed reload) and, under ``live``, the generation every process should serve."""
    services = request.app.state.services
    return {**services.described(), "live": services.live.read().describe()}
