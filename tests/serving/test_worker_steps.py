"""Claims and steps of the worker and the sender.

A claim takes at most its limit (on PostgreSQL the limit once did not hold: a semi-join ran the
``LIMIT ... FOR UPDATE SKIP LOCKED`` subquery again for every due row, and each run returned the
next rows). After a partial batch the loop sleeps ``poll_seconds`` (what arrives meanwhile is
turned as one batch: a batch's claim and write cost about the same for one job as for thirty);
after a full batch more may be waiting, and it claims again at once."""

from __future__ import annotations

from sqlalchemy import func, select

from tierline.nlu.engine import TurnEngine
from tierline.serving.queue.store import store_webhook
from tierline.serving.queue.sender import OutboxSender
from tierline.serving.storage.models import Job, OutboundMessage
from tierline.serving.channels.whatsapp.client import GraphClient
from tierline.serving.channels.whatsapp.payload import parse_webhook
from tierline.serving.queue.worker import JobWorker
from tests.serving.fakes import PHONE_NUMBER_ID, envelope, message


def test_the_loop_steps_again_at_once_only_after_a_full_batch(analyzer, db):
    engine = TurnEngine.load(analyzer=analyzer)
    new_state = lambda cid, customer: engine.new_state(cid, customer_id=customer).to_dict()  # noqa: E731
    customers = [f"4477009009{c:02d}" for c in range(5)]
    for customer in customers:
        messages, statuses = parse_webhook(envelope(
            [message(text="hi", customer=customer, wamid=f"wamid.step.{customer}")], customer=customer))
        store_webhook(db, messages, statuses, PHONE_NUMBER_ID, new_state)
    worker = JobWorker(db, engine, batch_size=2)
    assert [worker.step() for _ in range(4)] == [True, True, False, False]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Job).where(Job.status == "done")) == 5


def test_a_sender_claim_takes_at_most_its_limit(db):
    # The limit is what the rate limit's token bucket allows: past it, Meta is sent too much.
    with db.session() as s:
        s.add_all(OutboundMessage(idempotency_key=f"claim-limit-{n}", conversation_id=f"claim-{n}",
                                  to=f"4477009010{n:02d}", phone_number_id=PHONE_NUMBER_ID,
                                  role="bot", payload={"text": {"body": "hi"}})
                  for n in range(5))
        due = s.scalar(select(func.count()).select_from(OutboundMessage)
                       .where(OutboundMessage.status == "pending"))
    sender = OutboxSender(db, GraphClient("http://127.0.0.1:9", "token"))
    claims = []
    while batch := sender.claim_batch(2):
        claims.append(len(batch))
    assert max(claims) == 2 and sum(claims) == due >= 5
