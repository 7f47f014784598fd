"""Admin routes: ``POST /v1/admin/reload`` switches to new models without a restart (the
registry's champions when one is configured, else the folders on disk); ``GET
/v1/admin/models`` says what is being served."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
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
async def reload_models(request: Request, _: Agent = Depends(require_admin)) -> dict:
    """Reload the NLU bundle and the policy from their folders; requests keep flowing."""
    try:
        return await run_in_threadpool(request.app.state.services.reload)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        raise HTTPException(409, f"reload failed, still serving the previous models: {exc}") from None


@router.get("/models")
def served_models(request: Request, _: Agent = Depends(require_admin)) -> dict:
    """The folders (and registry versions) of the models being served right now."""
    return request.app.state.services.models.describe()
