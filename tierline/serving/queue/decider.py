"""``/v1/decide`` turns, run a batch at a time by one thread.

Concurrent ``/v1/decide`` calls queue here; the thread takes what is queued, analyses the
batch's texts in one model call, and turns them in one transaction: the batch's conversations
are created if new (``ON CONFLICT DO NOTHING``) and row-locked, each call's turn starts from
the state the previous call of its conversation left (calls of one conversation are turned
in arrival order, as before, when each call locked the row on its own), and each turn is
recorded the way every channel records one (``tierline.serving.conversations``: transcript, decision,
state, and on a handoff a ticket in the agents' queue, like a WhatsApp one), one statement
per table. Every caller is answered after the commit; agents are told of the tickets opened
(``on_ticket``) after it too. A resolved ticket hands the conversation back to the bot, so
the next call is the bot's turn again; when the hand-back's satisfaction question reached the
runtime (its callback, ``tierline.serving.notify.runtime``), a next call that is a score
("5", "cinque", "★★★★", ``button_id`` ``csat_4``) is not a turn: the score is recorded on the
ticket and the flow's thanks answered (:class:`ScoreAnswer`), as the WhatsApp worker does.

Why: turned one call at a time on the request thread pool, a call cost 10-12 CPU-ms (a
thread hop to the model thread and back, a session with ORM inserts and a commit, GIL
contention between the pool's threads), which capped the route near 150 requests/s on two
cores (``tierline bench http``, README "Benchmark").

A call whose turn raises fails alone; if the transaction fails because the database cannot
be reached, the whole batch is answered with the error (503); for any other failure the calls
are turned again one transaction each, so one bad call cannot fail the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from tierline.nlu.bot import ConversationState, Reply
from tierline.nlu.engine import TurnEngine, TurnResult
from tierline.nlu.reasons import Reason
from tierline.serving.queue.loops import BatchingLoop
from tierline.serving.conversations import ConversationRow, TurnBatch, TurnOutcome
from tierline.serving.metrics import METRICS
from tierline.serving.storage.db import Database, dialect_insert
from tierline.serving.storage.models import Conversation, Ticket, utcnow
from tierline.serving.tickets import csat

log = logging.getLogger(__name__)
CONVERSATIONS = Conversation.__table__


@dataclass
class Call:
    """One ``/v1/decide`` call: the message of a conversation of the API channel."""

    conversation_id: str
    customer_id: str
    tier: str | None
    text: str
    button_id: str | None = None
    at: datetime | None = None


@dataclass
class ScoreAnswer:
    """A call that answered the satisfaction question: the score is recorded on the ticket and
    the bot thanks the customer; no decision is made (nothing to escalate)."""

    score: int
    ticket_id: int
    reply: str
    state: ConversationState
    team: str
    priority: str

    def to_dict(self) -> dict:
        """The ``/v1/decide`` answer: the flow's thanks, nothing escalated, ``csat`` set."""
        reason = Reason("csat_recorded", {"score": self.score})
        return {"reply": self.reply, "buttons": [], "intent": CSAT_INTENT, "intent_confidence": 1.0,
                "frustration": 0.0, "cues": [], "p_escalate": 0.0, "escalate": False,
                "reasons": [reason.text], "reason_codes": [reason.to_dict()], "team": self.team,
                "priority": self.priority, "off_hours": False, "language": self.state.language,
                "model": None, "csat": self.score}


#: The ``intent`` of a call that answered the satisfaction question (not a model's intent).
CSAT_INTENT = "csat_answer"


class BatchedDecider(BatchingLoop):
    """Turns ``/v1/decide`` calls in batches from one background thread."""

    thread_name = "tierline-decide"

    def __init__(self, db: Database, engine: TurnEngine, max_batch: int = 64,
                 on_ticket: Callable[[Ticket], None] | None = None,
                 notify_targets: tuple[str, ...] = (), public_url: str | None = None) -> None:
        super().__init__(max_batch)
        self.db = db
        #: Replaced on a model reload; read once per batch.
        self.engine = engine
        #: Called with each ticket opened, after its transaction committed.
        self.on_ticket = on_ticket or (lambda ticket: None)
        #: Notification targets queued with each ticket, in its transaction.
        self.notify_targets = notify_targets
        #: The service's public address: each notification links its ticket's console page.
        self.public_url = public_url

    async def decide(self, call: Call) -> TurnResult:
        """Turn one call; returns once its transaction committed."""
        return await self.submit(call)

    def process(self, calls: list[Call]) -> list:
        """Turn ``calls`` in one transaction: a :class:`TurnResult` or an exception per call."""
        engine = self.engine
        try:
            analyses = engine.analyze_texts([c.text for c in calls])
        except Exception:  # noqa: BLE001 - each turn then analyses its own text
            log.exception("batch analysis of %d texts failed; analysing one by one", len(calls))
            analyses = [None] * len(calls)
        return self.together_or_alone(list(zip(calls, analyses)), lambda batch: self._turn_all(
            engine, [c for c, _ in batch], [a for _, a in batch]))

    def _turn_all(self, engine: TurnEngine, calls: list[Call], analyses: list) -> list:
        """The turns of ``calls`` in one transaction (their conversations row-locked)."""
        results: list = []
        turns = TurnBatch()
        with self.db.session() as s:
            new = {}
            for c in calls:
                if c.conversation_id not in new:
                    state = engine.new_state(c.conversation_id, customer_id=c.customer_id, tier=c.tier)
                    new[c.conversation_id] = dict(
                        id=c.conversation_id, channel="api", customer_id=c.customer_id,
                        state=state.to_dict(), created_at=utcnow(), updated_at=utcnow())
            # A conversation another process created meanwhile is kept, then locked like any other.
            s.connection().execute(dialect_insert(s, CONVERSATIONS).on_conflict_do_nothing(
                index_elements=["id"]), list(new.values()))
            convs = {row.id: ConversationRow(*row) for row in s.execute(ConversationRow.locked(list(new)))}
            for c, analysis in zip(calls, analyses):
                conv = convs[c.conversation_id]
                state = ConversationState.from_dict(turns.state_of(conv))
                if c.tier:
                    state.tier = c.tier
                score = csat.answered_score(state, c.text, c.button_id)
                if score is not None:
                    results.append(self._score(engine, turns, conv, c, state, score))
                    continue
                state.csat_ticket_id = None  # the question is answered by the next message only
                try:
                    with METRICS.turn_latency.time():
                        result = engine.turn(state, c.text, now=c.at or utcnow(),
                                             button_id=c.button_id, analysis=analysis)
                except Exception as exc:  # noqa: BLE001 - this call fails, the others go on
                    log.exception("decide: turn of %s failed", c.conversation_id[:8])
                    results.append(exc)
                    continue
                turns.record_turn(conv, TurnOutcome(c.text, result.replies, result.state.to_dict(),
                                                    result), at=utcnow())
                results.append(result)
            opened = turns.write(s, self.notify_targets, self.public_url).tickets
        for ticket in opened:
            try:
                self.on_ticket(ticket)
            except Exception:  # noqa: BLE001 - committed: the calls must not be turned again
                log.exception("decide: ticket %s opened, notifying failed", ticket.id)
        return results

    @staticmethod
    def _score(engine: TurnEngine, turns: TurnBatch, conv: ConversationRow, call: Call,
               state: ConversationState, score: int) -> ScoreAnswer:
        """Record the satisfaction score ``call`` answered with (on the ticket, with the
        transcript and the state no longer waiting); the thanks to answer it with."""
        ticket_id, state.csat_ticket_id = state.csat_ticket_id, None
        thanks = csat.thanks(engine.flow, state.language)
        turns.record_turn(conv, TurnOutcome(call.text, [Reply(thanks)], state.to_dict(),
                                            csat=(ticket_id, score)), at=utcnow())
        return ScoreAnswer(score, ticket_id, thanks, state,
                           engine.flow.escalation.routing.default_team,
                           engine.policy.priority(state.tier, 0.0))
