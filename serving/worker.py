"""The durable worker: inbound jobs -> one turn -> outbound rows, ticket, state (one transaction).

Jobs are claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL; SQLite serialises
writers), so several service processes share the work without double processing. A job is
marked ``running`` with a lease before work starts; everything the turn produces (replies in the
outbox, transcript lines, the decision with its features, a ticket, the new conversation state,
``done``) commits together. A crash mid-turn rolls all of it back and the lease expiry hands
the job to the next worker: a stored message is never lost and never answered twice.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select, update

from nlu.bot import ConversationState, Reply
from nlu.engine import TurnEngine, TurnResult
from serving.background import BackgroundLoop
from serving.metrics import METRICS
from serving.storage.db import Database
from serving.storage.models import (
    Conversation,
    Decision,
    InboundMessage,
    Job,
    MessageLog,
    OutboundMessage,
    Ticket,
    as_utc,
    utcnow,
)
from serving.whatsapp.client import buttons_payload, list_payload, text_payload

log = logging.getLogger(__name__)
PRIORITY_RANK = {"high": 0, "normal": 1, "low": 2}
MEDIA_LABEL = "[{type} received]"


def reply_payload(to: str, reply: Reply) -> dict:
    """The Graph API payload of a bot reply (buttons when the reply has them)."""
    return buttons_payload(to, reply.text, reply.buttons) if reply.buttons else text_payload(to, reply.text)


def csat_payload(to: str, question: str, button: str) -> dict:
    """The 1-5 satisfaction question as an interactive list (reply buttons stop at three)."""
    return list_payload(to, question, button, [(f"csat_{n}", "★" * n) for n in range(5, 0, -1)])


class JobWorker(BackgroundLoop):
    """Claims and processes inbound jobs in a background thread."""

    thread_name = "tierline-worker"

    def __init__(self, db: Database, engine: TurnEngine, *, poll_seconds: float = 0.05,
                 lease_seconds: float = 60.0, max_attempts: int = 5,
                 on_ticket: Callable[[int], None] | None = None) -> None:
        super().__init__(poll_seconds)
        self.db = db
        self.engine = engine
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.on_ticket = on_ticket or (lambda ticket_id: None)
        self.worker_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def housekeeping(self) -> None:
        self.requeue_expired()

    def step(self) -> bool:
        return self.run_once()

    def requeue_expired(self) -> int:
        """Hand jobs whose worker died (lease expired) back to the queue."""
        with self.db.session() as s:
            result = s.execute(update(Job).where(
                Job.status == "running", Job.locked_at < utcnow() - self.lease).values(
                status="pending", locked_by=None))
            return result.rowcount or 0

    def claim(self) -> int | None:
        """Claim the oldest due job; return its id (None when there is nothing to do).

        ``FOR UPDATE SKIP LOCKED`` keeps PostgreSQL workers off each other's rows; the
        conditional update (``... WHERE status = 'pending'``) is the compare-and-set that also
        holds on SQLite, where row locks do not exist.
        """
        for _ in range(5):
            with self.db.session() as s:
                job_id = s.scalars(select(Job.id).where(Job.status == "pending",
                                                        Job.available_at <= utcnow())
                                   .order_by(Job.id).limit(1).with_for_update(skip_locked=True)).first()
                if job_id is None:
                    return None
                won = s.execute(update(Job).where(Job.id == job_id, Job.status == "pending").values(
                    status="running", locked_at=utcnow(), locked_by=self.worker_id,
                    attempts=Job.attempts + 1)).rowcount
                if won == 1:
                    return job_id
        return None

    def run_once(self) -> bool:
        """Claim and process one job; False when the queue was empty."""
        job_id = self.claim()
        if job_id is None:
            return False
        try:
            ticket_id = self.process(job_id)
        except Exception as exc:  # noqa: BLE001 - recorded on the job, retried with backoff
            log.exception("job %s failed", job_id)
            self._fail(job_id, exc)
            return True
        if ticket_id is not None:
            self.on_ticket(ticket_id)
        return True

    def _fail(self, job_id: int, exc: Exception) -> None:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                return
            job.last_error = f"{type(exc).__name__}: {exc}"[:1000]
            job.locked_by = None
            if job.attempts >= self.max_attempts:
                job.status = "failed"
            else:
                job.status = "pending"
                job.available_at = utcnow() + timedelta(seconds=2 ** job.attempts)

    def process(self, job_id: int) -> int | None:
        """Run one customer turn for the job's message; return a new ticket's id, if any."""
        with self.db.session() as s:
            job = s.get(Job, job_id)
            inbound = s.get(InboundMessage, job.inbound_id)
            conv = s.get(Conversation, inbound.conversation_id, with_for_update=True)
            earlier = s.scalars(select(Job.id).join(InboundMessage, Job.inbound_id == InboundMessage.id)
                                .where(InboundMessage.conversation_id == conv.id,
                                       Job.id < job.id, Job.status.in_(("pending", "running")))
                                .limit(1)).first()
            if earlier is not None:  # keep a conversation's messages in order
                job.status, job.locked_by = "pending", None
                job.available_at = utcnow() + timedelta(milliseconds=100)
                job.attempts -= 1
                return None
            state = ConversationState.from_dict(conv.state)
            now = inbound.sent_at or utcnow()
            if conv.last_customer_at is None or as_utc(now) > as_utc(conv.last_customer_at):
                conv.last_customer_at = now  # opens the 24-hour customer-service window
            ticket_id = self._turn(s, conv, inbound, state, now)
            job.status, inbound.processed_at = "done", utcnow()
            return ticket_id

    def _turn(self, s, conv: Conversation, inbound: InboundMessage, state: ConversationState,
              now: datetime) -> int | None:
        flow, lang = self.engine.flow, state.language
        key = inbound.wamid
        if inbound.type == "reaction":
            s.add(MessageLog(conversation_id=conv.id, role="customer", text=f"[reaction {inbound.text}]"))
            return None
        if inbound.type not in ("text", "interactive", "button"):
            s.add(MessageLog(conversation_id=conv.id, role="customer",
                             text=MEDIA_LABEL.format(type=inbound.type)))
            if state.step != "with_agent":
                self._send(s, conv, key, 0, Reply(flow.text("unsupported_message", lang)))
            return None
        if state.csat_ticket_id and inbound.button_id and inbound.button_id.startswith("csat_"):
            ticket = s.get(Ticket, state.csat_ticket_id)
            if ticket is not None:
                ticket.csat = int(inbound.button_id.removeprefix("csat_"))
            state.csat_ticket_id = None
            s.add(MessageLog(conversation_id=conv.id, role="customer", text=inbound.text))
            self._send(s, conv, key, 0, Reply(flow.text("thanks", lang)))
            conv.state = state.to_dict()
            return None
        state.csat_ticket_id = None
        with METRICS.turn_latency.time():
            result = self.engine.turn(state, inbound.text, now=as_utc(now),
                                      button_id=inbound.button_id)
        s.add(MessageLog(conversation_id=conv.id, role="customer", text=inbound.text))
        s.add(Decision(conversation_id=conv.id, inbound_id=inbound.id, intent=result.analysis.intent,
                       frustration=result.analysis.frustration,
                       p_escalate=result.decision.p_escalate, escalate=result.decision.escalate,
                       reasons=result.decision.reasons, features=result.decision.features))
        for n, reply in enumerate(result.replies):
            self._send(s, conv, key, n, reply)
        conv.state = result.state.to_dict()
        if result.handoff is None:
            return None
        return self._open_ticket(s, conv, result)

    def _send(self, s, conv: Conversation, key: str, n: int, reply: Reply) -> None:
        s.add(OutboundMessage(idempotency_key=f"reply:{key}:{n}", conversation_id=conv.id,
                              to=conv.customer_id, phone_number_id=conv.phone_number_id or "",
                              role="bot", payload=reply_payload(conv.customer_id, reply)))
        s.add(MessageLog(conversation_id=conv.id, role="bot", text=reply.text))

    @staticmethod
    def _open_ticket(s, conv: Conversation, result: TurnResult) -> int:
        handoff, analysis, state = result.handoff, result.analysis, result.state
        ticket = Ticket(conversation_id=conv.id, team=handoff.team, priority=handoff.priority,
                        priority_rank=PRIORITY_RANK.get(handoff.priority, 1), context={
                            "reasons": handoff.reasons, "p_escalate": handoff.p_escalate,
                            "intent": analysis.intent, "frustration": analysis.frustration,
                            "cues": analysis.cues, "order_number": state.order_number,
                            "tier": state.tier, "language": state.language,
                            "off_hours": handoff.off_hours, "back_at": handoff.back_at,
                            "features": result.decision.features})
        s.add(ticket)
        s.flush()
        return ticket.id
