"""``POST /v1/analyze``: the Analyzer over HTTP, for bot runtimes and batch jobs."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request

from serving.batching import BatchingAnalyzer
from serving.schemas import AnalysisOut, AnalyzeRequest, AnalyzeResponse
from serving.settings import Settings

router = APIRouter(prefix="/v1", tags=["nlu"])


def get_analyzer(request: Request) -> BatchingAnalyzer:
    """The app's micro-batching Analyzer (one model call serves concurrent requests)."""
    return request.app.state.services.batcher


def get_app_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    return request.app.state.settings


@router.post("/analyze", response_model=AnalyzeResponse)
async def analyze(body: AnalyzeRequest, analyzer: BatchingAnalyzer = Depends(get_analyzer),
                  settings: Settings = Depends(get_app_settings)) -> AnalyzeResponse:
    """Intent distribution, frustration and cues for each text, scored in one batch."""
    if len(body.texts) > settings.max_texts_per_request:
        raise HTTPException(422, f"at most {settings.max_texts_per_request} texts per request")
    too_long = [i for i, t in enumerate(body.texts) if len(t) > settings.max_text_chars]
    if too_long:
        raise HTTPException(422, f"texts {too_long} exceed {settings.max_text_chars} characters")
    results = await analyzer.analyze(body.texts)
    return AnalyzeResponse(results=[AnalysisOut(**r.to_dict()) for r in results])
