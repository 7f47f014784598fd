"""Two workers (each with its own connection pool, as two service processes would have) on one
database: every job is processed exactly once, and a conversation's messages stay in order."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from tierline.nlu.engine import TurnEngine
from tierline.serving.queue.store import store_webhook
from tierline.serving.queue.sender import TokenBucket
from tierline.serving.storage.db import Database
from tierline.serving.storage.models import DecisionRow, Job, OutboundMessage
from tierline.serving.channels.whatsapp.payload import parse_webhook
from tierline.serving.queue.worker import JobWorker
from tests.serving.fakes import PHONE_NUMBER_ID, envelope, message

TEXTS = ["hi", "1", "ND-100000", "what's the weather like?", "thanks"]
CUSTOMERS = 30


def test_two_workers_never_double_process(analyzer, database_url):
    db = Database(database_url)
    db.migrate()
    engine = TurnEngine.load(analyzer=analyzer)
    new_state = lambda cid, customer: engine.new_state(cid, customer_id=customer).to_dict()  # noqa: E731
    n = CUSTOMERS * len(TEXTS)
    # Both workers poll before the first message arrives: a batched worker turns the whole
    # load in well under a second, so one started a moment earlier could do it all alone and
    # the test would not see the two compete. Batches of 4 for the same reason (the default
    # holds the first job of every conversation, all that is claimable at once).
    workers = [JobWorker(Database(database_url), engine, poll_seconds=0.005, batch_size=4)
               for _ in range(2)]
    for w in workers:
        w.start()
    try:
        for c in range(CUSTOMERS):
            customer = f"4477009007{c:02d}"
            for text in TEXTS:
                messages, statuses = parse_webhook(envelope([message(text=text, customer=customer)],
                                                            customer=customer))
                store_webhook(db, messages, statuses, PHONE_NUMBER_ID, new_state)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with db.session() as s:
                done = s.scalar(select(func.count()).select_from(Job).where(Job.status == "done"))
            if done == n:
                break
            time.sleep(0.05)
    finally:
        for w in workers:
            w.stop()
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Job).where(Job.status == "done")) == n
        assert s.scalar(select(func.count()).select_from(DecisionRow)) == n  # one turn per message
        keys = s.scalars(select(OutboundMessage.idempotency_key)).all()
        assert len(keys) == len(set(keys)) >= n
        assert {w.worker_id for w in workers} == set(s.scalars(select(Job.locked_by)).all())
        rows = s.execute(select(DecisionRow.conversation_id, DecisionRow.inbound_id)
                         .order_by(DecisionRow.id)).all()
    by_conv: dict[str, list[int]] = {}
    for conv, inbound in rows:
        by_conv.setdefault(conv, []).append(inbound)
    assert all(ids == sorted(ids) for ids in by_conv.values())
    db.dispose()


def test_token_bucket_keeps_the_rate():
    bucket = TokenBucket(rate=50)
    start, sent = time.monotonic(), 0
    while sent < 100:
        wait = bucket.wait_time()
        if wait:
            time.sleep(wait)
        else:
            sent += 1
    elapsed = time.monotonic() - start
    assert 0.9 <= elapsed <= 1.5  # 50 burst + 50 at 50/s
