"""``GET /metrics``: Prometheus exposition of the service's metrics, every process's together
when several serve (``tierline.serving.metrics``)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tierline.serving.metrics import exposition_registry

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Counters, gauges (queue depth refreshed now) and latency histograms."""
    try:
        request.app.state.services.refresh_gauges()
    except Exception:  # noqa: BLE001 - metrics must answer even when the database does not
        log.warning("could not refresh queue gauges")
    return Response(generate_latest(exposition_registry()), media_type=CONTENT_TYPE_LATEST)
