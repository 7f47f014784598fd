"""Pydantic request/response models of the HTTP API (apart from any storage model).

Every field has a description and the models have examples: ``/docs`` is the reference a bot
runtime's developer reads, and it must stand alone.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

#: ISO 639-1 codes, lower case ("it"); which ones a deployment serves is its flow's ``languages``.
LANGUAGE_PATTERN = r"^[a-z]{2}$"


class AnalyzeRequest(BaseModel):
    """Texts to analyse. Each text is scored on its own: its result does not depend on the other
    texts of the request or on other callers' requests served in the same model call."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"texts": ["where is my order?", "THIS IS USELESS!!! I want a human"]},
        {"texts": ["È INUTILE!!! voglio parlare con qualcuno"], "language": "it"},
    ]})

    texts: list[str] = Field(
        min_length=1, description="customer messages, in order (at most 64 per request, each at "
                                  "most 50,000 characters; longer model input is truncated)")
    language: str | None = Field(
        None, pattern=LANGUAGE_PATTERN,
        description="ISO 639-1 language of every text (one of the flow's languages: en, it, es, "
                    "pt in the shipped flow); omitted: detected from each text alone, the flow's "
                    "default language when a text gives nothing to go on (\"ok\")")


class ReasonOut(BaseModel):
    """One reason for an escalation, stable for programs (the English ``reasons`` phrases are
    derived from it; the agent console words it in the agent's language)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"code": "sensitive_topic", "params": {"intent": "delete_account"}},
        {"code": "failed_replies", "params": {"count": 2}}]})

    code: str = Field(description="one of `asked_for_human`, `failed_replies`, `frustrated`, "
                                  "`frustrated_earlier`, `sensitive_topic`, `vip`, `premium`, "
                                  "`repeated_request`, `long_conversation`, `shouting`, "
                                  "`swearing`, `problem_report`, `score`, `with_agent`, "
                                  "`csat_recorded`, `other` (tierline.nlu.reasons)")
    params: dict = Field(description="the code's parameters: `intent`, `count`, `score`, "
                                     "`cues`, `messages`, `word`, `tier`, ... (`{}` for none)")


class ModelOut(BaseModel):
    """Which NLU bundle produced a result."""

    name: str = Field(description="bundle name: `nlu` (English) or `nlu-multilingual` "
                                  "(Italian, Spanish, Portuguese) in the shipped service")
    version: str = Field(description="bundle version: `sha256:` and the first 12 hex digits of "
                                     "its ONNX file, unless the bundle names its own")


class AnalysisOut(BaseModel):
    """The analysis of one text."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "intent": "contact_human_agent", "intent_confidence": 0.93,
        "intents": {"contact_human_agent": 0.93, "complaint": 0.04, "out_of_scope": 0.01},
        "frustration": 0.71, "frustrated": True, "cues": ["all_caps", "exclamations"],
        "truncated": False, "empty": False, "warnings": [], "language": "it",
        "model": {"name": "nlu-multilingual", "version": "sha256:3f2a9c1b7d0e"}}]})

    intent: str = Field(description="most probable intent label (`out_of_scope` for anything "
                                    "the bot does not handle)")
    intent_confidence: float = Field(ge=0, le=1, description="calibrated probability of `intent`")
    intents: dict[str, float] = Field(description="calibrated probability of every intent label "
                                                  "(they sum to 1)")
    frustration: float = Field(ge=0, le=1, description="calibrated probability that the "
                                                       "customer is frustrated")
    frustrated: bool = Field(description="`frustration` at or above the bundle's own calibrated "
                                         "threshold (models/README.md: 0.30 English, 0.29 "
                                         "multilingual)")
    cues: list[str] = Field(description="surface cues that fired: all_caps, exclamations, "
                                        "question_run, elongated_word, negative_words, "
                                        "profanity, repeated_complaint")
    problem: bool = Field(False, description="the message reports a problem: a problem word "
                                             "(late, damaged, rimborso), swearing, or something "
                                             "that does not happen (\"no me llega el código\")")
    happy: bool = Field(False, description="thanks, praise, laughter or happy emoji and no "
                                           "problem: loud but not frustrated")
    truncated: bool = Field(description="the text was cut to the model window (128 tokens)")
    empty: bool = Field(description="nothing to classify (blank text): no model call was made")
    warnings: list[str] = Field(description="why the result may be less trustworthy "
                                            "(truncation, a language the bundle was not trained on)")
    language: str = Field(description="ISO 639-1 language the text was analysed as (given or "
                                      "detected); it chose the bundle")
    model: ModelOut | None = Field(description="the bundle that produced the result")


class AnalyzeResponse(BaseModel):
    """One result per input text, in input order."""

    results: list[AnalysisOut] = Field(description="one result per text, in input order")


class Health(BaseModel):
    """Liveness/readiness answer."""

    status: str = Field(description="`ok` (alive), `ready` or `not ready`")
    checks: dict[str, str] = Field(default_factory=dict,
                                   description="each readiness check and its outcome")
