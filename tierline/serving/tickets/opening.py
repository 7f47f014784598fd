"""Opening a ticket: the queue entry a handoff creates.

A ticket is opened by the turn that hands the conversation over, in that turn's transaction
(``tierline.serving.conversations`` records turns for every channel): the handoff, its decision and
its ticket commit together or not at all. The row carries the routing (team, priority), the
context agents read (reasons, as English phrases and as codes with parameters, scores, the
order numbers the customer wrote, tier, language, features) and the id of the decision that
opened it, which is what an agent's label is joined to for retraining.
Agents are notified after the commit, by whoever committed (one call: ``on_ticket``).
"""

from __future__ import annotations

from sqlalchemy import Connection, insert

from tierline.nlu.engine import TurnResult
from tierline.serving.storage.models import Ticket

#: Queue order: most urgent first (``priority_rank``), then oldest.
PRIORITY_RANK = {"high": 0, "normal": 1, "low": 2}


def ticket_values(conversation_id: str, result: TurnResult, decision_id: int | None) -> dict:
    """The ``tickets`` row of a turn's handoff."""
    handoff, analysis, state = result.handoff, result.analysis, result.state
    return dict(conversation_id=conversation_id, decision_id=decision_id, status="open",
                team=handoff.team, priority=handoff.priority,
                priority_rank=PRIORITY_RANK.get(handoff.priority, 1),
                context={
                    "reasons": handoff.reasons,
                    "reason_codes": [r.to_dict() for r in handoff.reason_codes],
                    "p_escalate": handoff.p_escalate,
                    "intent": analysis.intent, "frustration": analysis.frustration,
                    "cues": analysis.cues, "order_number": state.order_number,
                    "order_numbers": list(state.order_numbers),
                    "tier": state.tier, "language": state.language,
                    "off_hours": handoff.off_hours, "back_at": handoff.back_at,
                    "features": result.decision.features})


def open_tickets(connection: Connection, rows: list[dict]) -> list[Ticket]:
    """Insert the tickets of a batch of turns (one statement); returns them with their ids and
    creation times, detached (what the notifications read, without loading them again)."""
    if not rows:
        return []
    table = Ticket.__table__
    written = connection.execute(insert(table).returning(
        table.c.id, table.c.created_at, sort_by_parameter_order=True), rows).all()
    return [Ticket(id=row.id, created_at=row.created_at, **values)
            for row, values in zip(written, rows)]
