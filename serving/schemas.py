"""Pydantic request/response models of the HTTP API (apart from any storage model)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AnalyzeRequest(BaseModel):
    """Texts to analyse in one model call."""

    texts: list[str] = Field(min_length=1, description="customer messages, in order")


class AnalysisOut(BaseModel):
    """The Analyzer's result for one text."""

    intent: str
    intent_confidence: float
    intents: dict[str, float]
    frustration: float
    frustrated: bool
    cues: list[str]
    truncated: bool
    empty: bool
    warnings: list[str]


class AnalyzeResponse(BaseModel):
    """One result per input text, in input order."""

    results: list[AnalysisOut]


class Health(BaseModel):
    """Liveness/readiness answer."""

    status: str
    checks: dict[str, str] = Field(default_factory=dict)
