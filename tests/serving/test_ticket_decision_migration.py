"""Migration 0008 (``tickets.decision_id``) on a database that already holds tickets: each is
backfilled with its conversation's last decision at or before the ticket's creation when that
decision escalated, and left NULL otherwise; downgrading drops the column again."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from alembic import command
from alembic.config import Config
from sqlalchemy import JSON, Boolean, DateTime, Integer, String, column, insert, inspect, select, table

from tierline.serving.storage.db import MIGRATIONS, Database

T0 = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)
DECISIONS = table("decisions", column("id", Integer), column("conversation_id", String),
                  column("intent", String), column("frustration"), column("p_escalate"),
                  column("escalate", Boolean), column("reasons", JSON), column("features", JSON),
                  column("at", DateTime(timezone=True)))
TICKETS = table("tickets", column("id", Integer), column("conversation_id", String),
                column("status", String), column("team", String), column("priority", String),
                column("priority_rank", Integer), column("context", JSON),
                column("created_at", DateTime(timezone=True)))


def alembic(database: Database, to: str, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, to)


def decision(conversation: str, minutes: float, escalate: bool) -> dict:
    return dict(conversation_id=conversation, intent="other", frustration=0.1, p_escalate=0.5,
                escalate=escalate, reasons=[], features={}, at=T0 + timedelta(minutes=minutes))


def ticket(conversation: str, minutes: float) -> dict:
    return dict(conversation_id=conversation, status="open", team="general", priority="normal",
                priority_rank=1, context={}, created_at=T0 + timedelta(minutes=minutes))


def test_existing_tickets_get_the_decision_that_opened_them(database_url):
    db = Database(database_url)
    alembic(db, "0006")
    with db.engine.begin() as c:
        c.execute(insert(DECISIONS).values(id=1, **decision("a", 0, escalate=False)))
        c.execute(insert(DECISIONS).values(id=2, **decision("a", 1, escalate=True)))   # opens #1
        c.execute(insert(DECISIONS).values(id=3, **decision("b", 0, escalate=False)))
        c.execute(insert(DECISIONS).values(id=4, **decision("a", 5, escalate=True)))   # opens #4
        c.execute(insert(TICKETS).values(id=1, **ticket("a", 1.001)))
        c.execute(insert(TICKETS).values(id=2, **ticket("b", 2)))  # nearest did not escalate
        c.execute(insert(TICKETS).values(id=3, **ticket("c", 2)))  # no decision at all
        c.execute(insert(TICKETS).values(id=4, **ticket("a", 5.001)))
    db.migrate()
    tickets = table("tickets", column("id", Integer), column("decision_id", Integer))
    with db.engine.connect() as c:
        assert dict(c.execute(select(tickets.c.id, tickets.c.decision_id)).all()) == {
            1: 2, 2: None, 3: None, 4: 4}
    alembic(db, "0006", down=True)
    assert "decision_id" not in {c["name"] for c in inspect(db.engine).get_columns("tickets")}
    db.migrate()
    db.dispose()
