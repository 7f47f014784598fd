"""The durable worker: inbound jobs -> turns -> outbound rows, tickets, state (one transaction).

A step claims up to ``batch_size`` due jobs in one statement (``UPDATE ... WHERE id IN (SELECT
... FOR UPDATE SKIP LOCKED) RETURNING``; the ``status = 'pending'`` condition is the
compare-and-set that also holds on SQLite, which has no row locks), so several service
processes share the work without double processing. A job whose conversation has an earlier
job still pending or running is not claimed: a conversation's messages are turned one after
another, in order. Claimed jobs are ``running`` under a lease.

The batch's texts are analysed in one model call outside any transaction, the turns are
computed, and what they produce is recorded the way every channel records a turn
(``tierline.serving.conversations``: transcript, decisions, tickets with their notifications in the
notify outbox, the new conversation states, here with replies in the outbox) and written with the jobs ``done`` in one transaction, with the
conversations locked. A conversation whose state changed since the claim (an agent acted) is
turned again from the locked state. A job whose turn raises is recorded as failed (retried
with backoff) without holding up the others; if the batch's transaction itself fails, its jobs
are written again one transaction each, so one bad row cannot roll back the rest. A crash
anywhere rolls back what was not committed and the lease expiry hands the jobs to the next
worker: a stored message is never lost and never answered twice.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, exists, select, update
from sqlalchemy.orm import Session

from tierline.nlu.analyzer import AnalysisResult
from tierline.nlu.bot import ConversationState, Reply
from tierline.nlu.engine import TurnEngine
from tierline.serving.queue.loops import BackgroundLoop
from tierline.serving.conversations import ConversationRow, TurnBatch, TurnOutcome
from tierline.serving.metrics import METRICS
from tierline.serving.storage.db import Database, evaluated_once
from tierline.serving.storage.models import Conversation, InboundMessage, Job, Ticket, as_utc, utcnow
from tierline.serving.tickets import csat

log = logging.getLogger(__name__)
MEDIA_LABEL = "[{type} received]"
TURN_TYPES = ("text", "interactive", "button")
ACTIVE = ("pending", "running")


@dataclass
class Work:
    """A claimed job with what its turn reads: the message and the conversation state as
    claimed (plain values, so nothing is loaded lazily outside a session)."""

    job_id: int
    inbound_id: int
    wamid: str
    conversation_id: str
    type: str
    text: str
    button_id: str | None
    sent_at: datetime | None
    state: dict | None

    @property
    def now(self) -> datetime:
        """The message's own time (the turn's clock), else now."""
        return as_utc(self.sent_at) or utcnow()

    def csat_answer(self, state: ConversationState) -> int | None:
        """The satisfaction score the bot asked for, tapped or typed ("5", "cinque", "★★★★")."""
        if self.type not in TURN_TYPES:
            return None
        return csat.answered_score(state, self.text, self.button_id)

    def is_csat_answer(self, state: ConversationState) -> bool:
        """The customer answered the satisfaction question the bot asked."""
        return self.csat_answer(state) is not None


@dataclass
class Prepared:
    """A job ready to be written: its outcome, or the error its turn raised."""

    work: Work
    analysis: AnalysisResult | None
    outcome: TurnOutcome | None = None
    error: Exception | None = None


@dataclass
class Written:
    """The result of one write transaction: tickets opened (their notifications are queued
    already; counted and the notify outbox woken after commit) and jobs whose turn raised (to
    record as failed)."""

    tickets: list[Ticket] = field(default_factory=list)
    failed: list[tuple[int, Exception]] = field(default_factory=list)
    replies: int = 0


JOBS, INBOUND, CONVERSATIONS = Job.__table__, InboundMessage.__table__, Conversation.__table__


def _claim_jobs():
    """``UPDATE jobs ... WHERE id IN (due jobs, row-locked, skipping rows other workers hold)
    RETURNING id, inbound_id``; a job behind an earlier pending or running job of its
    conversation is not due. Built once, on the tables (Core): building it per poll, or
    running it through the ORM, cost more CPU than running it."""
    jobs, messages = JOBS.alias("job"), INBOUND.alias("message")
    earlier, earlier_message = JOBS.alias("earlier"), INBOUND.alias("earlier_message")
    behind = exists().where(earlier.c.inbound_id == earlier_message.c.id,
                            earlier_message.c.conversation_id == messages.c.conversation_id,
                            earlier.c.id < jobs.c.id, earlier.c.status.in_(ACTIVE))
    due = (select(jobs.c.id).join(messages, jobs.c.inbound_id == messages.c.id)
           .where(jobs.c.status == "pending", jobs.c.available_at <= bindparam("now"), ~behind)
           .order_by(jobs.c.id).limit(bindparam("limit")).with_for_update(of=jobs, skip_locked=True))
    return (update(JOBS).where(JOBS.c.id.in_(evaluated_once(due)), JOBS.c.status == "pending")
            .values(status="running", locked_at=bindparam("now"), locked_by=bindparam("worker"),
                    attempts=JOBS.c.attempts + 1)
            .returning(JOBS.c.id, JOBS.c.inbound_id))


CLAIM_JOBS = _claim_jobs()


class JobWorker(BackgroundLoop):
    """Claims and processes inbound jobs, a batch at a time, in a background thread."""

    thread_name = "tierline-worker"

    def __init__(self, db: Database, engine: TurnEngine, *, poll_seconds: float = 0.05,
                 lease_seconds: float = 60.0, max_attempts: int = 5, batch_size: int = 32,
                 threads: int = 1, on_ticket: Callable[[Ticket], None] | None = None,
                 on_replies: Callable[[], None] | None = None,
                 notify_targets: tuple[str, ...] = (), public_url: str | None = None) -> None:
        super().__init__(poll_seconds, housekeeping_seconds=min(1.0, lease_seconds / 2),
                         threads=threads)
        self.db = db
        self.engine = engine
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.batch_size = batch_size
        #: Called with each ticket opened, after its transaction committed.
        self.on_ticket = on_ticket or (lambda ticket: None)
        #: Called after a transaction that put replies in the outbox committed (wakes the sender).
        self.on_replies = on_replies or (lambda: None)
        #: Peers told of each ticket opened ("slack", "webhook", "zendesk"), queued with it.
        self.notify_targets = notify_targets
        #: The service's public address: each notification links its ticket's console page.
        self.public_url = public_url
        self._id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

    @property
    def worker_id(self) -> str:
        """Who holds a claimed job (``locked_by``): one id per thread, so a thread never takes
        a job another thread of this worker re-claimed after its lease expired for its own."""
        return f"{self._id}.{self.thread_index}" if self.thread_index else self._id

    def housekeeping(self) -> None:
        self.requeue_expired()

    def step(self) -> bool:
        return self.run_batch() >= self.batch_size

    def requeue_expired(self) -> int:
        """Hand jobs whose worker died (lease expired) back to the queue."""
        with self.db.one_statement() as connection:
            result = connection.execute(update(JOBS).where(
                JOBS.c.status == "running", JOBS.c.locked_at < utcnow() - self.lease).values(
                status="pending", locked_by=None))
            return result.rowcount or 0

    # -- claim ------------------------------------------------------------------------------

    def claim_batch(self, limit: int | None = None) -> list[Work]:
        """Claim up to ``limit`` due jobs (oldest first), none of them behind an earlier
        pending or running job of its conversation; return them with their messages and
        conversation states (the claim commits before any work starts)."""
        with self.db.one_statement() as connection:
            claimed = connection.execute(CLAIM_JOBS, {
                "now": utcnow(), "limit": limit or self.batch_size, "worker": self.worker_id}).all()
            if not claimed:
                return []
            job_of = dict((inbound_id, job_id) for job_id, inbound_id in claimed)
            rows = connection.execute(select(
                INBOUND.c.id, INBOUND.c.wamid, INBOUND.c.conversation_id, INBOUND.c.type,
                INBOUND.c.text, INBOUND.c.button_id, INBOUND.c.sent_at)
                .where(INBOUND.c.id.in_(job_of))).all()
            states = dict(connection.execute(select(CONVERSATIONS.c.id, CONVERSATIONS.c.state).where(
                CONVERSATIONS.c.id.in_({r.conversation_id for r in rows}))).all())
        work = [Work(job_of[r.id], r.id, r.wamid, r.conversation_id, r.type, r.text or "",
                     r.button_id, r.sent_at, states.get(r.conversation_id)) for r in rows]
        return sorted(work, key=lambda w: w.job_id)

    # -- one step ---------------------------------------------------------------------------

    def run_once(self) -> bool:
        """Claim and process a batch of jobs; False when the queue was empty."""
        return self.run_batch() > 0

    def run_batch(self) -> int:
        """Claim and process a batch of jobs; how many were claimed."""
        batch = self.claim_batch()
        if not batch:
            return 0
        prepared = self.prepare(batch)
        try:
            written = self.write(prepared)
        except Exception as exc:  # noqa: BLE001 - one bad row must not fail the batch
            log.exception("writing a batch of %d job(s) failed", len(prepared))
            written = (self._write_one_by_one(prepared) if len(prepared) > 1
                       else Written(failed=[(prepared[0].work.job_id, exc)]))
        log.debug("worker: %d job(s) turned, %d failed, %d ticket(s)", len(prepared),
                  len(written.failed), len(written.tickets))
        for job_id, exc in written.failed:
            self._fail(job_id, exc)
        if written.replies:
            self.on_replies()
        for ticket in written.tickets:
            self.on_ticket(ticket)
        return len(batch)

    def _write_one_by_one(self, prepared: list[Prepared]) -> Written:
        """Each job in its own transaction: the failing one is recorded, the others commit."""
        total = Written()
        for p in prepared:
            try:
                one = self.write([p])
            except Exception as exc:  # noqa: BLE001 - recorded on the job, retried with backoff
                log.exception("job %s: writing failed", p.work.job_id)
                one = Written(failed=[(p.work.job_id, exc)])
            total.tickets += one.tickets
            total.failed += one.failed
            total.replies += one.replies
        return total

    def prepare(self, batch: list[Work]) -> list[Prepared]:
        """Analyse the batch's texts in one model call, then compute every turn (no database)."""
        states = [ConversationState.from_dict(w.state) if w.state is not None else None
                  for w in batch]
        needs = [i for i, (w, st) in enumerate(zip(batch, states))
                 if st is not None and w.type in TURN_TYPES and not w.is_csat_answer(st)]
        analyses: list[AnalysisResult | None] = [None] * len(batch)
        if needs:
            try:
                results = self.engine.analyze_turns([states[i] for i in needs],
                                                    [batch[i].text for i in needs])
                for i, result in zip(needs, results):
                    analyses[i] = result
            except Exception:  # noqa: BLE001 - each turn then analyses its own text
                log.exception("batch analysis of %d texts failed; analysing one by one", len(needs))
        prepared = []
        for w, state, analysis in zip(batch, states, analyses):
            p = Prepared(w, analysis)
            if state is not None:
                self._plan_into(p, state)
            prepared.append(p)
        return prepared

    def _plan_into(self, p: Prepared, state: ConversationState) -> None:
        """Compute ``p``'s outcome from ``state``, or keep the error the turn raised."""
        try:
            p.outcome, p.error = self.plan(p.work, state, p.analysis), None
        except Exception as exc:  # noqa: BLE001 - recorded on the job, retried with backoff
            log.exception("job %s: turn failed", p.work.job_id)
            p.outcome, p.error = None, exc

    def plan(self, work: Work, state: ConversationState,
             analysis: AnalysisResult | None = None) -> TurnOutcome:
        """One customer turn: what to write for this message (pure: no database)."""
        flow, lang = self.engine.flow, state.language
        if work.type == "reaction":
            return TurnOutcome(f"[reaction {work.text}]")
        if work.type not in TURN_TYPES:
            replies = [] if state.step == "with_agent" else [Reply(flow.text("unsupported_message", lang))]
            return TurnOutcome(MEDIA_LABEL.format(type=work.type), replies)
        score = work.csat_answer(state)
        if score is not None:
            scored = (state.csat_ticket_id, score)
            state.csat_ticket_id = None
            return TurnOutcome(work.text, [Reply(csat.thanks(flow, lang))], state.to_dict(),
                               csat=scored)
        state.csat_ticket_id = None
        with METRICS.turn_latency.time():
            result = self.engine.turn(state, work.text, now=work.now, button_id=work.button_id,
                                      analysis=analysis)
        return TurnOutcome(work.text, result.replies, result.state.to_dict(), result)

    # -- write ------------------------------------------------------------------------------

    def write(self, prepared: list[Prepared]) -> Written:
        """Write the batch's outcomes in one transaction: jobs ``done`` with their turns
        recorded (replies, transcript, decisions, tickets, states). Jobs no longer ours (lease
        lost) are skipped; jobs behind an earlier one of their conversation go back to the
        queue."""
        written, turns, done, deferred = Written(), TurnBatch(), [], []
        job_ids = [p.work.job_id for p in prepared]
        with self.db.session() as s:
            ours = set(s.scalars(select(Job.id).where(
                Job.id.in_(job_ids), Job.status == "running", Job.locked_by == self.worker_id)
                .order_by(Job.id).with_for_update()))
            convs = {row.id: ConversationRow(*row) for row in s.execute(ConversationRow.locked(
                {p.work.conversation_id for p in prepared}))}
            behind = self._behind(s, prepared)
            for p in prepared:
                if p.work.job_id not in ours:
                    log.warning("job %s: lease lost to another worker; not written", p.work.job_id)
                elif p.work.job_id in behind:
                    deferred.append(p.work.job_id)
                elif (conv := convs.get(p.work.conversation_id)) is None:
                    written.failed.append((p.work.job_id, LookupError("conversation not found")))
                else:
                    if conv.state != p.work.state:  # changed since the claim: turn it again
                        self._plan_into(p, ConversationState.from_dict(conv.state))
                    if p.error is not None:
                        written.failed.append((p.work.job_id, p.error))
                        continue
                    turns.record_turn(conv, p.outcome, at=p.work.now,
                                      inbound_id=p.work.inbound_id, message_key=p.work.wamid)
                    done.append(p.work)
            recorded = turns.write(s, self.notify_targets, self.public_url)
            written.tickets, written.replies = recorded.tickets, recorded.replies
            self._mark(s, done, deferred)
        return written

    @staticmethod
    def _behind(s: Session, prepared: list[Prepared]) -> set[int]:
        """Jobs of the batch with an earlier pending or running job of their conversation
        outside the batch (the claim excludes them; this holds when a claim raced)."""
        batch_ids = [p.work.job_id for p in prepared]
        active = s.execute(select(Job.id, InboundMessage.conversation_id)
                           .join(InboundMessage, Job.inbound_id == InboundMessage.id)
                           .where(InboundMessage.conversation_id.in_(
                               {p.work.conversation_id for p in prepared}),
                               Job.status.in_(ACTIVE), Job.id.not_in(batch_ids))).all()
        first: dict[str, int] = {}
        for job_id, conv_id in active:
            first[conv_id] = min(job_id, first.get(conv_id, job_id))
        return {p.work.job_id for p in prepared
                if p.work.job_id > first.get(p.work.conversation_id, p.work.job_id)}

    @staticmethod
    def _mark(s: Session, done: list[Work], deferred: list[int]) -> None:
        """``done`` (with the messages' processed time) and back to the queue, one statement each."""
        now = utcnow()
        if done:
            s.execute(update(Job).where(Job.id.in_([w.job_id for w in done]))
                      .values(status="done").execution_options(synchronize_session=False))
            s.execute(update(InboundMessage).where(InboundMessage.id.in_([w.inbound_id for w in done]))
                      .values(processed_at=now).execution_options(synchronize_session=False))
        if deferred:  # not an attempt: it waits for its conversation's earlier message
            s.execute(update(Job).where(Job.id.in_(deferred)).values(
                status="pending", locked_by=None, available_at=now + timedelta(milliseconds=100),
                attempts=Job.attempts - 1).execution_options(synchronize_session=False))

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
