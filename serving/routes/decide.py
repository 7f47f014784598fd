"""``POST /v1/decide``: one turn for a bot runtime, with the conversation state kept here.

The runtime sends the customer's message; tierline answers with the escalation decision,
its reasons, the routing and the bot's reply, and stores the new state under the
conversation id (row-locked, so concurrent calls on one conversation take turns). Calls are
turned in batches by one thread (``serving/decider.py``).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError

from serving.decider import Call

router = APIRouter(prefix="/v1", tags=["decide"])

#: The part of the stored state a caller sees: where the bot is, never the history, the
#: customer's identity, tier or order number (a caller sending another conversation's id
#: must learn nothing the caller did not send).
STATE_FIELDS = ("step", "language", "turns", "failed_attempts", "escalated")


class Customer(BaseModel):
    id: str = Field(min_length=1, max_length=64)
    tier: str | None = Field(None, max_length=20, description="overrides the customer directory")


class DecideIn(BaseModel):
    conversation_id: str = Field(min_length=1, max_length=150)
    customer: Customer
    text: str = Field(max_length=50_000)
    button_id: str | None = Field(None, max_length=200)
    at: datetime | None = Field(None, description="message time (business hours); default now")


class DecideOut(BaseModel):
    p_escalate: float
    escalate: bool
    reasons: list[str]
    team: str
    priority: str
    reply: str
    buttons: list[list[str]]
    intent: str
    intent_confidence: float
    frustration: float
    cues: list[str]
    off_hours: bool
    state: dict = Field(description="where the conversation is: " + ", ".join(STATE_FIELDS))


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
    return JSONResponse(DecideOut(**{k: out[k] for k in DECIDE_FIELDS},
                                  state={k: state[k] for k in STATE_FIELDS}).model_dump(mode="json"))


DECIDE_FIELDS = ("p_escalate", "escalate", "reasons", "team", "priority", "reply", "buttons",
                 "intent", "intent_confidence", "frustration", "cues", "off_hours")
