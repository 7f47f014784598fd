"""The batched worker: one bad job in a batch neither fails nor rolls back the others.

Two kinds of bad job in one batch of six: one whose turn raises (its stored state is corrupt:
a turn count that is not a number) and one whose rows cannot be written (its reply's idempotency key is taken, so
the batch's insert violates a unique constraint and the transaction fails). The four others
must be answered, the two bad ones go back to the queue with their error, for a retry.
"""

from __future__ import annotations

from sqlalchemy import func, select

from tierline.nlu.engine import TurnEngine
from tierline.serving.queue.store import conversation_id, store_webhook
from tierline.serving.storage.db import Database
from tierline.serving.storage.models import Conversation, DecisionRow, InboundMessage, Job, OutboundMessage
from tierline.serving.channels.whatsapp.payload import parse_webhook, recipient_of
from tierline.serving.queue.worker import JobWorker
from tests.serving.fakes import PHONE_NUMBER_ID, envelope, message

CUSTOMERS = [f"4477009008{c:02d}" for c in range(6)]
BAD_TURN, BAD_WRITE = CUSTOMERS[1], CUSTOMERS[4]


def test_one_bad_job_neither_fails_nor_rolls_back_the_batch(analyzer, database_url):
    db = Database(database_url)
    db.migrate()
    engine = TurnEngine.load(analyzer=analyzer)
    new_state = lambda cid, customer: engine.new_state(cid, customer_id=customer).to_dict()  # noqa: E731
    for customer in CUSTOMERS:
        body = message(text="where is my order?", customer=customer,
                       wamid=f"wamid.batch.{customer}")
        messages, statuses = parse_webhook(envelope([body], customer=customer))
        store_webhook(db, messages, statuses, PHONE_NUMBER_ID, new_state)
    with db.session() as s:  # BAD_TURN's state is corrupt; BAD_WRITE's reply key is taken
        conv = s.get(Conversation, conversation_id(PHONE_NUMBER_ID, BAD_TURN))
        conv.state = {**conv.state, "turns": "many"}
        s.add(OutboundMessage(idempotency_key=f"reply:wamid.batch.{BAD_WRITE}:0",
                              conversation_id=conversation_id(PHONE_NUMBER_ID, BAD_WRITE),
                              to=BAD_WRITE, phone_number_id=PHONE_NUMBER_ID, role="bot",
                              payload={}, status="sent"))
    worker = JobWorker(db, engine, batch_size=64)
    assert worker.run_once()  # one step: the whole batch

    with db.session() as s:
        jobs = {recipient_of(conv): (status, error) for conv, status, error in s.execute(
            select(InboundMessage.conversation_id, Job.status, Job.last_error)
            .join(InboundMessage, Job.inbound_id == InboundMessage.id))}
        replies = dict(s.execute(select(OutboundMessage.to, func.count())
                                 .group_by(OutboundMessage.to)).all())
        decided = set(map(recipient_of, s.scalars(select(InboundMessage.conversation_id).join(
            DecisionRow, DecisionRow.inbound_id == InboundMessage.id))))
    good = [c for c in CUSTOMERS if c not in (BAD_TURN, BAD_WRITE)]
    assert all(jobs[c][0] == "done" and replies.get(c, 0) >= 1 for c in good)
    assert decided == set(good)
    assert jobs[BAD_TURN][0] == "pending" and "TypeError" in jobs[BAD_TURN][1]
    assert jobs[BAD_WRITE][0] == "pending" and "IntegrityError" in jobs[BAD_WRITE][1]
    assert replies.get(BAD_TURN, 0) == 0 and replies[BAD_WRITE] == 1  # only the row put there
    db.dispose()


TARGET = "È INUTILE!!! voglio parlare con qualcuno"
OTHERS = ["where is my order?", "THIS IS RIDICULOUS!!! refund NOW", "jajaja vale gracias",
          "cadê meu pedido??? já faz 2 semanas 😡", "ok", "mi avete addebitato due volte",
          "lol nvm 😂", "hola, quiero cancelar mi pedido por favor"]


def decided_in_one_batch(database_url: str, engine: TurnEngine, texts: list[str], first: int
                         ) -> dict[str, tuple[float, float]]:
    """Each text from its own customer (numbers from ``first``, none in the customer
    directory), all turned in one worker batch: the frustration and P(escalate) stored with
    each decision, by text."""
    db = Database(database_url)
    db.migrate()
    new_state = lambda cid, customer: engine.new_state(cid, customer_id=customer).to_dict()  # noqa: E731
    customers = {}
    for i, text in enumerate(texts):
        customer = str(447700950000 + first + i)
        customers[customer] = text
        messages, statuses = parse_webhook(envelope([message(
            text=text, customer=customer, wamid=f"wamid.inv.{customer}")],
            customer=customer))
        store_webhook(db, messages, statuses, PHONE_NUMBER_ID, new_state)
    worker = JobWorker(db, engine, batch_size=64)
    assert worker.run_once()
    with db.session() as s:
        rows = s.execute(select(InboundMessage.conversation_id, DecisionRow.frustration,
                                DecisionRow.p_escalate).join(
            DecisionRow, DecisionRow.inbound_id == InboundMessage.id)).all()
    db.dispose()
    return {customers[recipient_of(c)]: (f, p) for c, f, p in rows if recipient_of(c) in customers}


def test_customers_sharing_a_worker_batch_get_the_scores_they_get_alone(analyzer, database_url):
    """Two customers' messages in one worker batch, then eight: each decision's frustration and
    P(escalate) are exactly those of the message turned alone, on both language stacks."""
    engine = TurnEngine.shipped(analyzer=analyzer)
    alone = {}
    for text in [TARGET] + OTHERS:
        result = engine.turn(engine.new_state("alone", customer_id="447700959999"), text)
        alone[text] = (result.analysis.frustration, result.decision.p_escalate)
    pair = decided_in_one_batch(database_url, engine, [TARGET, OTHERS[0]], first=0)
    crowd = decided_in_one_batch(database_url, engine, OTHERS[1:] + [TARGET], first=100)
    assert pair[TARGET] == crowd[TARGET] == alone[TARGET]
    for text in OTHERS:
        assert (pair.get(text) or crowd[text]) == alone[text], text
