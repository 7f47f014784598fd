"""The webhook's group commit (``serving/intake.py``): deliveries that arrive together share a
transaction, each is answered only after it committed, one bad delivery fails alone, an
unreachable database fails the batch at once, and stopping stores what was queued."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import func, select

from tierline.nlu.phone import customer_key
from tierline.serving.queue.store import conversation_id, store_deliveries
from tierline.serving.queue.intake import IntakeClosed, IntakeWriter
from tierline.serving.storage.db import Database
from tierline.serving.storage.models import Conversation, InboundMessage, Job
from tierline.serving.channels.whatsapp.payload import parse_webhook
from tests.serving.fakes import PHONE_NUMBER_ID, envelope, message

BAD_CUSTOMER = "447700900666"


def new_state(conversation_id: str, customer_id: str) -> dict:
    """A new conversation's state; refuses one customer, standing in for a delivery whose
    storing fails for a reason of its own (not the database being down). The intake hands it
    the customer's number in E.164."""
    if customer_id == customer_key(BAD_CUSTOMER):
        raise ValueError("this customer cannot be stored")
    return {"conversation_id": conversation_id, "customer_id": customer_id}


def delivery(wamid: str, customer: str) -> tuple[list, list]:
    return parse_webhook(envelope([message(text="hi", wamid=wamid, customer=customer)],
                                  customer=customer))


def stored(db: Database, prefix: str) -> set[str]:
    with db.session() as s:
        return set(s.scalars(select(InboundMessage.wamid).where(
            InboundMessage.wamid.like(f"{prefix}%"))))


async def store_all(writer: IntakeWriter, deliveries: list[tuple[list, list]]) -> list:
    """Hand every delivery over at once (as concurrent requests do); results or exceptions."""
    return await asyncio.gather(*(writer.store(m, s) for m, s in deliveries),
                                return_exceptions=True)


def test_concurrent_deliveries_share_commits_and_one_bad_delivery_fails_alone(db):
    writer = IntakeWriter(db, PHONE_NUMBER_ID, new_state, max_batch=64)
    batches: list[int] = []
    process = writer.process
    writer.process = lambda batch: (batches.append(len(batch)), process(batch))[1]
    writer.start()
    try:
        deliveries = [delivery(f"wamid.gc.{i}", f"4477009{i:05d}") for i in range(40)]
        deliveries[17] = delivery("wamid.gc.bad", BAD_CUSTOMER)
        deliveries.append(delivery("wamid.gc.3", "447700900003"))  # Meta delivers one twice
        results = asyncio.run(store_all(writer, deliveries))
    finally:
        writer.stop()
    assert isinstance(results[17], ValueError)
    good = [r for i, r in enumerate(results) if i != 17]
    assert [r.stored for r in good[:-1]] == [1] * 39
    assert good[-1].stored == 0 and good[-1].duplicates == 1
    assert stored(db, "wamid.gc.") == {f"wamid.gc.{i}" for i in range(40) if i != 17}
    with db.session() as s:
        jobs = s.scalar(select(func.count()).select_from(Job).join(
            InboundMessage, Job.inbound_id == InboundMessage.id).where(
            InboundMessage.wamid.like("wamid.gc.%")))
    assert jobs == 39
    # Handed over together, they shared transactions (the batch that failed was then
    # written again one delivery at a time).
    assert max(batches) > 1


def test_an_unreachable_database_fails_the_whole_batch_at_once(db):
    writer = IntakeWriter(Database("postgresql://nobody@127.0.0.1:1/none"), PHONE_NUMBER_ID,
                          new_state)
    writer.start()
    try:
        t0 = time.monotonic()
        results = asyncio.run(store_all(writer, [delivery(f"wamid.down.{i}", f"4477008{i:05d}")
                                                 for i in range(10)]))
        elapsed = time.monotonic() - t0
    finally:
        writer.stop()
        writer.db.dispose()
    assert all(type(r).__name__ == "OperationalError" for r in results), results
    assert elapsed < 10  # not one connection attempt per delivery after the first failure
    assert stored(db, "wamid.down.") == set()


def test_stop_stores_what_is_queued_and_refuses_what_comes_later(db):
    writer = IntakeWriter(db, PHONE_NUMBER_ID, new_state)  # its thread is never started

    async def scenario():
        queued = [asyncio.ensure_future(writer.store(*delivery(f"wamid.stop.{i}", f"4477007{i:05d}")))
                  for i in range(5)]
        await asyncio.sleep(0.05)  # the requests are now waiting on their commits
        await asyncio.get_running_loop().run_in_executor(None, writer.stop)
        results = await asyncio.gather(*queued)
        with pytest.raises(IntakeClosed):
            await writer.store(*delivery("wamid.stop.late", "447700799999"))
        return results

    results = asyncio.run(scenario())
    assert [r.stored for r in results] == [1] * 5
    assert stored(db, "wamid.stop.") == {f"wamid.stop.{i}" for i in range(5)}


def test_one_batch_stores_a_message_once_and_a_conversations_jobs_in_order(db):
    # Stored together (on PostgreSQL: one statement for the whole batch), with a message of a
    # conversation between two of another's, and one message twice in the same batch.
    x, y = "447700900401", "447700900402"
    deliveries = [delivery("wamid.order.x1", x), delivery("wamid.order.y1", y),
                  delivery("wamid.order.x2", x), delivery("wamid.order.x1", x),
                  delivery("wamid.order.x3", x)]
    results = store_deliveries(db, deliveries, PHONE_NUMBER_ID, new_state)
    assert [(r.stored, r.duplicates) for r in results] == [(1, 0), (1, 0), (1, 0), (0, 1), (1, 0)]
    with db.session() as s:
        jobs = s.execute(select(InboundMessage.wamid, InboundMessage.conversation_id)
                         .join(Job, Job.inbound_id == InboundMessage.id)
                         .where(InboundMessage.wamid.like("wamid.order.%")).order_by(Job.id)).all()
        conversations = s.scalar(select(func.count()).select_from(Conversation).where(
            Conversation.customer_id.in_([customer_key(x), customer_key(y)])))
    assert [w for w, c in jobs if c == conversation_id(PHONE_NUMBER_ID, x)] == \
        ["wamid.order.x1", "wamid.order.x2", "wamid.order.x3"]
    assert len(jobs) == 4 and conversations == 2
    # Delivered again later (Meta retries): all duplicates, nothing new.
    again = store_deliveries(db, deliveries[:3], PHONE_NUMBER_ID, new_state)
    assert [(r.stored, r.duplicates) for r in again] == [(0, 1)] * 3
