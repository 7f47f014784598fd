"""``POST /v1/analyze``: the analysis entry point over HTTP, for bot runtimes and batch jobs.

Each text goes to the bundle of its language (given, or detected from the text alone), exactly
as the chat engine analyses it: an Italian text reports ``language: "it"`` and the multilingual
model, with the frustration a conversation in Italian would get for it.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request

from tierline.serving.queue.batching import BatchingAnalyzer
from tierline.serving.api.schemas import AnalysisOut, AnalyzeRequest, AnalyzeResponse
from tierline.serving.settings import Settings

router = APIRouter(prefix="/v1", tags=["nlu"])


def get_analyzer(request: Request) -> BatchingAnalyzer:
    """The app's micro-batching Analyzer (one model call serves concurrent requests)."""
    return request.app.state.services.batcher


def get_app_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    return request.app.state.settings


@router.post("/analyze", response_model=AnalyzeResponse)
async def analyze(body: AnalyzeRequest, request: Request,
                  analyzer: BatchingAnalyzer = Depends(get_analyzer),
                  settings: Settings = Depends(get_app_settings)) -> AnalyzeResponse:
    """Intent distribution, frustration and cues for each text, with the language it was
    analysed as and the model that analysed it."""
    if len(body.texts) > settings.max_texts_per_request:
        raise HTTPException(422, f"at most {settings.max_texts_per_request} texts per request")
    too_long = [i for i, t in enumerate(body.texts) if len(t) > settings.max_text_chars]
    if too_long:
        raise HTTPException(422, f"texts {too_long} exceed {settings.max_text_chars} characters")
    languages = request.app.state.services.engine.nlu.languages
    if body.language is not None and body.language not in languages:
        raise HTTPException(422, f"language must be one of {languages}")
    results = await analyzer.analyze(body.texts, body.language)
    return AnalyzeResponse(results=[AnalysisOut(**r.to_dict()) for r in results])
