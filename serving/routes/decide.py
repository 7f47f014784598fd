"""``POST /v1/decide``: one turn for a bot runtime, with the conversation state kept here.

The runtime sends the customer's message; tierline answers with the escalation decision,
its reasons, the routing and the bot's reply, and stores the new state under the
conversation id (row-locked, so concurrent calls on one conversation take turns).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool

from nlu.bot import ConversationState
from serving.metrics import METRICS
from serving.storage.models import Conversation, Decision, MessageLog, utcnow

router = APIRouter(prefix="/v1", tags=["decide"])


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
    state: dict


@router.post("/decide", response_model=DecideOut)
async def decide(body: DecideIn, request: Request) -> DecideOut:
    """Decide one customer message of a conversation."""
    services = request.app.state.services
    try:
        return await run_in_threadpool(_decide, services, body)
    except OperationalError:
        raise HTTPException(503, "storage unavailable, retry later") from None


def _decide(services, body: DecideIn) -> DecideOut:
    conv_id = f"api:{body.conversation_id}"
    analysis = services.batcher.analyze([body.text])[0]  # outside the row lock
    with services.db.session() as s:
        conv = s.get(Conversation, conv_id, with_for_update=True)
        if conv is None:
            state = services.engine.new_state(conv_id, customer_id=body.customer.id,
                                              tier=body.customer.tier)
            conv = Conversation(id=conv_id, channel="api", customer_id=body.customer.id,
                                state=state.to_dict())
            s.add(conv)
        state = ConversationState.from_dict(conv.state)
        if body.customer.tier:
            state.tier = body.customer.tier
        with METRICS.turn_latency.time():
            result = services.engine.turn(state, body.text, now=body.at or utcnow(),
                                          button_id=body.button_id, analysis=analysis)
        conv.state, conv.last_customer_at = result.state.to_dict(), utcnow()
        s.add(MessageLog(conversation_id=conv_id, role="customer", text=body.text[:60_000]))
        for reply in result.replies:
            s.add(MessageLog(conversation_id=conv_id, role="bot", text=reply.text))
        s.add(Decision(**Decision.values_of(conv_id, result)))
        out = result.to_dict()
        return DecideOut(**{k: out[k] for k in ("p_escalate", "escalate", "reasons", "team",
                                                 "priority", "reply", "buttons", "intent",
                                                 "intent_confidence", "frustration", "cues",
                                                 "off_hours")},
                         state=result.state.to_dict())
