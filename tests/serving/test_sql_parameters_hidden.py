"""A failed statement's exception never carries its parameters: customer text and phone
numbers reached ERROR logs through SQLAlchemy's ``[parameters: ...]`` when a statement failed
(a broken connection, a constraint). SQLite and PostgreSQL."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import DBAPIError

from tierline.serving.storage.models import InboundMessage

TEXT = "my card 4111-1111 was charged twice, call me"
PHONE = "447700900444"
WAMID = "wamid.hidden.1"


def inbound(wamid: str) -> dict:
    return dict(wamid=wamid, conversation_id=f"wa:1:{PHONE}", customer_id=PHONE,
                phone_number_id="1", type="text", text=TEXT, payload={"text": TEXT})


def logged_failure(caplog, run) -> str:
    """Run a failing statement; everything its logged exception says."""
    with caplog.at_level(logging.ERROR), pytest.raises(DBAPIError) as failure:
        try:
            run()
        except DBAPIError:
            logging.getLogger("tierline.test").exception("statement failed")
            raise
    return str(failure.value) + "\n" + caplog.text


def test_a_constraint_violation_does_not_log_the_customer_text(db, caplog):
    with db.engine.begin() as connection:
        connection.execute(insert(InboundMessage.__table__), inbound(WAMID))

    def again() -> None:
        with db.engine.begin() as connection:
            connection.execute(insert(InboundMessage.__table__), inbound(WAMID))

    said = logged_failure(caplog, again)
    # (PostgreSQL's own DETAIL names the duplicate key, the wamid: not customer data.)
    assert TEXT not in said and PHONE not in said
    assert "parameters hidden" in said  # SQLAlchemy says so instead


def test_a_broken_connection_does_not_log_the_customer_text(db, caplog):
    if db.is_sqlite:
        pytest.skip("an SQLite connection cannot be broken from outside; PostgreSQL only")
    with db.engine.connect() as victim:
        pid = victim.execute(text("SELECT pg_backend_pid()")).scalar()
        with db.engine.connect() as killer:
            killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            killer.commit()

        def write() -> None:
            victim.execute(insert(InboundMessage.__table__), inbound("wamid.hidden.2"))

        said = logged_failure(caplog, write)
    assert TEXT not in said and PHONE not in said and "terminat" in said.lower()
