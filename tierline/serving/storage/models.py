"""SQLAlchemy 2.x tables of the service (storage models, apart from the pydantic API schemas).

Durability is the point: an inbound WhatsApp message is stored (unique on its ``wamid``) with a
job before the webhook answers 200; the worker turns a job into outbound rows, a ticket and the
new conversation state in one transaction, with the ticket's notifications and exports
(``peer_deliveries``); the sender delivers outbound rows, the notification sender the
deliveries. Nothing lives only in memory.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    bindparam,
    update,
)
from sqlalchemy import text as sql_text  # ``text`` is a column name here
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

if TYPE_CHECKING:
    from tierline.nlu.engine import TurnResult


def utcnow() -> datetime:
    """Timezone-aware now (all timestamps are stored in UTC)."""
    return datetime.now(timezone.utc)


def as_utc(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they are UTC; aware ones pass unchanged."""
    return dt if dt is None or dt.tzinfo else dt.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    """Declarative base; ``JSON`` maps to JSON on SQLite and PostgreSQL alike."""

    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class Conversation(Base):
    """One customer's conversation on one channel, with the bot's state."""

    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))  # whatsapp | api
    #: WhatsApp: the customer's number in E.164 ("+447700900123"; rows stored before
    #: migration 0011 hold Meta's digits); API: the runtime's customer id as sent.
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    #: The customer's WhatsApp profile name, the latest one a delivery named (migration
    #: 0011); None when none was given (an API conversation). Shown to the ticket's agents only.
    customer_name: Mapped[str | None] = mapped_column(String(256), default=None)
    phone_number_id: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    last_customer_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


#: A conversation's state after turns (the worker's and ``/v1/decide``'s batches: an
#: executemany, one row per conversation): ``conversation``, ``state``, ``last_customer_at``,
#: ``updated_at``.
UPDATE_CONVERSATION_STATE = (
    update(Conversation.__table__).where(Conversation.__table__.c.id == bindparam("conversation"))
    .values(state=bindparam("state"), last_customer_at=bindparam("last_customer_at"),
            updated_at=bindparam("updated_at")))


class InboundMessage(Base):
    """A customer message as WhatsApp delivered it; ``wamid`` makes redelivery harmless."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    wamid: Mapped[str] = mapped_column(String(200), unique=True)
    conversation_id: Mapped[str] = mapped_column(String(200), index=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    phone_number_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(30))
    text: Mapped[str] = mapped_column(Text, default="")
    button_id: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    sent_at: Mapped[datetime | None]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]


class Job(Base):
    """Work for the worker: one per inbound message. Claimed with row locks (SKIP LOCKED)."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_pending", "status", "available_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound_messages.id"), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|running|done|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_at: Mapped[datetime | None]
    locked_by: Mapped[str | None] = mapped_column(String(100))
    last_error: Mapped[str | None] = mapped_column(Text)


class OutboundMessage(Base):
    """A message to send through the Graph API; ``idempotency_key`` is unique per intent to send."""

    __tablename__ = "outbound_messages"
    # The partial indexes serve the sender's claim (migration 0006: fast without statistics).
    __table_args__ = (
        Index("ix_outbound_due", "status", "next_attempt_at"),
        Index("ix_outbound_pending", "id", "next_attempt_at",
              postgresql_where=sql_text("status = 'pending'"),
              sqlite_where=sql_text("status = 'pending'")),
        Index("ix_outbound_in_flight", "conversation_id", "id",
              postgresql_where=sql_text("status IN ('pending', 'sending')"),
              sqlite_where=sql_text("status IN ('pending', 'sending')")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    conversation_id: Mapped[str] = mapped_column(String(200), index=True)
    to: Mapped[str] = mapped_column(String(64))
    phone_number_id: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(10))  # bot | agent
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    wamid: Mapped[str | None] = mapped_column(String(200), index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    status_at: Mapped[datetime | None]


class MessageLog(Base):
    """The full transcript: every customer, bot and agent message of a conversation."""

    __tablename__ = "message_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(String(200), index=True)
    role: Mapped[str] = mapped_column(String(10))
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class DecisionRow(Base):
    """What the policy saw and said for one customer message (kept for retraining)."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(String(200), index=True)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    intent: Mapped[str] = mapped_column(String(60))
    frustration: Mapped[float]
    p_escalate: Mapped[float]
    escalate: Mapped[bool]
    #: The English phrases of the reasons (derived from ``reason_codes``).
    reasons: Mapped[list[Any]] = mapped_column(JSON)
    #: ``[{"code", "params"}]`` (``tierline.nlu.reasons``); None before migration 0012.
    reason_codes: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    features: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The NLU + policy pair that decided ("default", "multilingual"); None before migration 0003.
    model_stack: Mapped[str | None] = mapped_column(String(40), default=None)
    at: Mapped[datetime] = mapped_column(default=utcnow)

    @staticmethod
    def values_of(conversation_id: str, result: TurnResult, inbound_id: int | None = None
                  ) -> dict[str, Any]:
        """The row of one turn's decision (the worker inserts it in bulk, ``/v1/decide`` one at
        a time): one mapping, so a new column reaches both."""
        return dict(conversation_id=conversation_id, inbound_id=inbound_id,
                    intent=result.analysis.intent, frustration=result.analysis.frustration,
                    p_escalate=result.decision.p_escalate, escalate=result.decision.escalate,
                    reasons=result.decision.reasons,
                    reason_codes=[r.to_dict() for r in result.decision.reason_codes],
                    features=result.decision.features,
                    model_stack=result.model_stack)


class Ticket(Base):
    """A handoff to humans: queue entry with context, routing and outcome."""

    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_queue", "status", "team", "priority_rank", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(String(200), index=True)
    #: The decision that opened the ticket (what retraining joins an agent's label to); None
    #: for tickets opened before migration 0008 whose decision could not be found.
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="open")  # open|claimed|resolved
    team: Mapped[str] = mapped_column(String(60))
    priority: Mapped[str] = mapped_column(String(20))
    priority_rank: Mapped[int] = mapped_column(Integer)  # 0 = most urgent
    context: Mapped[dict[str, Any]] = mapped_column(JSON)
    assigned_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    external_id: Mapped[str | None] = mapped_column(String(100))
    csat: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None]
    first_agent_reply_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]


class PeerDelivery(Base):
    """One delivery of one ticket event to one peer ("slack", "webhook", "zendesk", "runtime"):
    the notify outbox. Written in the transaction that opens the ticket (for the bot runtime:
    that of the agent's action); ``idempotency_key`` (``ticket:<id>:<event>:<target>``,
    ``runtime:<message key>``) is unique and travels to the peer, so each event reaches each
    target once. ``payload`` is the masked notice, or the runtime's conversation event (the
    message it delivers, never the customer's number); ``last_error`` never holds secrets,
    phone numbers or message text. ``status``: pending | sending (claimed until
    ``claimed_at`` + the lease) | sent | failed (dead letter, kept)."""

    __tablename__ = "peer_deliveries"
    # Partial indexes of migration 0007: only rows still to deliver.
    __table_args__ = (
        Index("ix_peer_deliveries_due", "target", "id", "next_attempt_at",
              postgresql_where=sql_text("status = 'pending'"),
              sqlite_where=sql_text("status = 'pending'")),
        Index("ix_peer_deliveries_claimed", "claimed_at",
              postgresql_where=sql_text("status = 'sending'"),
              sqlite_where=sql_text("status = 'sending'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    event: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    #: What the peer created, when it says (Zendesk's ticket id; also on ``tickets.external_id``).
    external_id: Mapped[str | None] = mapped_column(String(100))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Agent(Base):
    """A human agent (or admin) identified by the SHA-256 of a bearer token.

    Managed with ``tierline agents`` (``tierline.serving.tickets.agents``): names are unique
    among agents not removed (compared without case; migration 0009's partial index), a
    disabled or removed agent's token and console sessions are refused, and every change is
    recorded in :class:`AgentAuditEntry`. Rows are never deleted: labels and tickets keep
    pointing at who worked them."""

    __tablename__ = "agents"
    __table_args__ = (
        Index("ux_agents_active_name", sql_text("lower(name)"), unique=True,
              postgresql_where=sql_text("removed_at IS NULL"),
              sqlite_where=sql_text("removed_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    teams: Mapped[list[Any]] = mapped_column(JSON)
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: After this instant the token is refused (401); None: it never expires.
    expires_at: Mapped[datetime | None]
    #: Set by ``tierline agents disable`` (cleared by ``enable``): token and sessions refused.
    disabled_at: Mapped[datetime | None]
    #: Set by ``tierline agents remove``: the token is replaced by one nobody knows, the name is
    #: free again, the row stays for the tickets and labels that name the agent.
    removed_at: Mapped[datetime | None]

    def token_expired(self, now: datetime | None = None) -> bool:
        """True once the token's expiry has passed (tokens without one never expire)."""
        return self.expires_at is not None and as_utc(self.expires_at) <= (now or utcnow())

    def may_sign_in(self, now: datetime | None = None) -> bool:
        """Whether the token (and a console session made with it) is accepted now: not
        expired, not disabled, not removed."""
        return self.disabled_at is None and self.removed_at is None and not self.token_expired(now)


class AgentAuditEntry(Base):
    """One change to an agent, by whom and when (``tierline agents audit``): added, disabled,
    enabled, token_rotated, removed, or renamed (by migration 0009, a duplicate name).
    ``details`` holds what changed (teams, admin, expiry, tickets put back in the queue),
    never a token."""

    __tablename__ = "agent_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    #: Who made the change: ``--by``, else the OS user who ran the command.
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(30))
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), index=True)
    #: The agent's name at the time (names of removed agents may be taken again).
    agent_name: Mapped[str] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ApiKey(Base):
    """A client credential of the inference APIs (``/v1/analyze``, ``/v1/decide``): a bot
    runtime or a batch job, not a person. Stored as the SHA-256 of the key (shown once, at
    creation), with the scopes it may call; revoked keys are kept (who had access, when)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    #: Subset of ``tierline.serving.api_keys.SCOPES`` ("analyze", "decide").
    scopes: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Set by ``tierline api-keys revoke``: the key is refused (401) from then on.
    revoked_at: Mapped[datetime | None]


class RevokedConsoleSession(Base):
    """A console session its agent signed out of: the cookie, which a copy (a shared computer,
    a stolen cookie) would still carry, is refused until it would have expired anyway."""

    __tablename__ = "revoked_console_sessions"

    #: SHA-256 of the session's random CSRF token (one per sign-in; the cookie carries it).
    session_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class EscalationLabel(Base):
    """An agent's verdict on an escalation: what retraining learns from."""

    __tablename__ = "escalation_labels"
    __table_args__ = (UniqueConstraint("ticket_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    escalation_needed: Mapped[str] = mapped_column(String(10))  # yes | no | earlier
    corrected_intent: Mapped[str | None] = mapped_column(String(60))
    frustrated: Mapped[bool | None]
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class LiveVersions(Base):
    """What every service process should serve: one row (``id`` 1, made by migration 0010).

    ``generation`` only grows: an admin reload or a registry champion move raises it, and each
    process reloads its models and flow when its own generation is behind
    (:mod:`tierline.serving.live`). The other columns say what that generation is, as the
    process that raised it loaded it.
    """

    __tablename__ = "live_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(Integer)
    #: Registry versions of ``tierline-nlu`` / ``tierline-policy`` (None: the model folders);
    #: a process following this generation loads exactly these.
    nlu_version: Mapped[str | None] = mapped_column(String(100))
    policy_version: Mapped[str | None] = mapped_column(String(100))
    #: The same for the multilingual pair (``tierline-nlu-multilingual`` /
    #: ``tierline-policy-multilingual``), which serves it/es/pt conversations (migration 0014).
    multilingual_nlu_version: Mapped[str | None] = mapped_column(String(100))
    multilingual_policy_version: Mapped[str | None] = mapped_column(String(100))
    #: The primary NLU bundle as results name it (``name@version``, a hash of its ONNX file).
    nlu_bundle: Mapped[str | None] = mapped_column(String(200))
    #: SHA-256 of the flow file and the files it reads (FAQ, orders, customers).
    flow_digest: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class TicketNote(Base):
    """An agent's internal note on a ticket (migration 0013): shown to the agents of the
    ticket's team in its timeline, marked internal, and never sent to the customer (nothing
    but :func:`tierline.serving.tickets.notes.add_note` writes one, and it queues nothing)."""

    __tablename__ = "ticket_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
