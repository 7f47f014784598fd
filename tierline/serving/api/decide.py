"""``POST /v1/decide``: one turn for a bot runtime, with the conversation state kept here.

The runtime sends the customer's message; tierline answers with the escalation decision,
its reasons, the routing and the bot's reply, and stores the new state under the
conversation id (row-locked, so concurrent calls on one conversation take turns). An
escalation opens a ticket in the agents' queue, like a WhatsApp one; agents' messages reach
the runtime through its signed callback (``tierline.serving.notify.runtime``), and resolving
hands the conversation back: the next call is the bot's turn again, or, when the runtime was
asked the satisfaction question, the customer's score (``csat`` in the answer). Calls are turned in batches by
one thread (``serving/decider.py``) and recorded like every channel's turns
(``serving/conversations.py``).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import OperationalError

from tierline.serving.queue.decider import Call
from tierline.serving.api.schemas import ModelOut, ReasonOut

router = APIRouter(prefix="/v1", tags=["decide"])

#: The part of the stored state a caller sees: where the bot is, never the history, the
#: customer's identity, tier or order number (a caller sending another conversation's id
#: must learn nothing the caller did not send).
STATE_FIELDS = ("step", "language", "turns", "failed_attempts", "escalated")


class Customer(BaseModel):
    """Who wrote the message."""

    id: str = Field(min_length=1, max_length=64,
                    description="the customer's id in the bot runtime (e.g. the WhatsApp number); "
                                "looked up in the customer directory for the tier")
    tier: str | None = Field(None, max_length=20,
                             description="customer tier (`standard`, `premium`, `vip`); "
                                         "overrides the customer directory")


class DecideIn(BaseModel):
    """One customer message of a conversation whose state tierline keeps."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"conversation_id": "shop-1:chat-42", "customer": {"id": "cust-42", "tier": "vip"},
         "text": "mi avete addebitato due volte!!! voglio un operatore"},
        {"conversation_id": "shop-1:chat-43", "customer": {"id": "cust-43"}, "text": "",
         "button_id": "menu_agent", "at": "2026-11-28T22:00:00+01:00"},
    ]})

    conversation_id: str = Field(min_length=1, max_length=150,
                                 description="the runtime's id of the conversation; calls with "
                                             "the same id continue one conversation, in turn")
    customer: Customer
    text: str = Field(max_length=50_000, description="the customer's message as typed")
    button_id: str | None = Field(None, max_length=200,
                                  description="id of the menu button the customer tapped, if any")
    at: datetime | None = Field(None, description="message time with its offset (decides "
                                                  "business hours); default now")


class DecideOut(BaseModel):
    """The decision on one message, with the bot's reply when the bot keeps the conversation."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "p_escalate": 0.91, "escalate": True,
        "reasons": ["customer asked for a human agent", "sensitive topic: payment_issue"],
        "reason_codes": [{"code": "asked_for_human", "params": {}},
                         {"code": "sensitive_topic", "params": {"intent": "payment_issue"}}],
        "team": "billing", "priority": "high",
        "reply": "Ti sto trasferendo a un operatore che potrà aiutarti. Attendi un momento.",
        "buttons": [], "intent": "payment_issue", "intent_confidence": 0.88, "frustration": 0.64,
        "cues": ["exclamations"], "off_hours": False, "language": "it",
        "model": {"name": "nlu-multilingual", "version": "sha256:3f2a9c1b7d0e"},
        "state": {"step": "with_agent", "language": "it", "turns": 1, "failed_attempts": 0,
                  "escalated": True}}]})

    p_escalate: float = Field(ge=0, le=1, description="calibrated probability that a human "
                                                      "should take over now")
    escalate: bool = Field(description="the conversation is with an agent: the turn that "
                                       "hands it off opens a ticket in the agents' queue, and "
                                       "the bot stays quiet until an agent resolves it")
    reasons: list[str] = Field(description="why, most important first, in English")
    reason_codes: list[ReasonOut] = Field(description="the same reasons as stable codes with "
                                                      "parameters, for programs")
    team: str = Field(description="the team the conversation is routed to")
    priority: str = Field(description="queue priority from the flow (`normal` or `high` in the "
                                      "shipped one)")
    reply: str = Field(description="what to send the customer, in the conversation's language "
                                   "(from the flow; lines joined by newlines)")
    buttons: list[list[str]] = Field(description="menu buttons to show, as `[id, title]` pairs")
    intent: str = Field(description="the message's most probable intent")
    intent_confidence: float = Field(ge=0, le=1, description="calibrated probability of `intent`")
    frustration: float = Field(ge=0, le=1, description="calibrated probability that the "
                                                       "customer is frustrated")
    cues: list[str] = Field(description="surface cues that fired (all_caps, exclamations, ...)")
    off_hours: bool = Field(description="escalated outside business hours (the customer was "
                                        "told when the team is back)")
    language: str = Field(description="the conversation's language (ISO 639-1), detected from "
                                      "its messages; replies are in it")
    model: ModelOut | None = Field(description="the NLU bundle that analysed the message")
    state: dict = Field(description="where the conversation is: " + ", ".join(STATE_FIELDS)
                        + " (never its history, the customer's identity, tier or order)")
    csat: int | None = Field(None, ge=1, le=5, description=(
        "the 1-5 satisfaction score this message answered the hand-back's question with "
        "(sent to the runtime's callback): recorded on the ticket, `reply` is the flow's "
        "thanks, `intent` is `csat_answer` and nothing is decided; null for any other message"))


@router.post("/decide", response_model=DecideOut)
async def decide(body: DecideIn, request: Request) -> JSONResponse:
    """Decide one customer message of a conversation."""
    services = request.app.state.services
    try:
        result = await services.decider.decide(Call(
            conversation_id=f"api:{body.conversation_id}", customer_id=body.customer.id,
            tier=body.customer.tier, text=body.text, button_id=body.button_id, at=body.at))
    except OperationalError:
        raise HTTPException(503, "storage unavailable, retry later") from None
    out = result.to_dict()
    # Validated here, then sent as it is: FastAPI would validate the returned model again.
    state = result.state.to_dict()
    return JSONResponse(DecideOut(**{k: out[k] for k in DECIDE_FIELDS}, csat=out.get("csat"),
                                  state={k: state[k] for k in STATE_FIELDS}).model_dump(mode="json"))


DECIDE_FIELDS = ("p_escalate", "escalate", "reasons", "reason_codes", "team", "priority", "reply",
                 "buttons", "intent", "intent_confidence", "frustration", "cues", "off_hours",
                 "language", "model")
