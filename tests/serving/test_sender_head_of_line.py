"""A slow Graph API send delays only its own conversation.

The sender used to claim a batch and wait for all of its sends before claiming more: with 5 % of
sends timing out (10 s), every batch waited for its slowest send, and the median time from a
delivery to its reply went from 3.1 s to 78 s. Sends now run as tasks of their own, at most
``sender_concurrency`` at once, and the sender claims more as they finish.

Here the real sender and Graph API client, on the test database, drain replies written the way
the worker writes them (a turn's three replies in one transaction, then a wake), at a steady
pace, to a fake Graph API that holds a share of its requests past the client's 2 s timeout and
never accepts those (they are sent again after the lease). Measured from each row's commit to
its acceptance: the median with 5 % of sends slow stays near the median with none, every reply
arrives exactly once, and a conversation's replies arrive in order (those after a slow one wait
for it)."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

from sqlalchemy import select

from tierline.serving.queue.sender import OutboxSender
from tierline.serving.settings import Settings
from tierline.serving.storage.models import OutboundMessage
from tierline.serving.channels.whatsapp.client import GraphClient, text_payload
from tests.serving.fakes import ACCESS_TOKEN, PHONE_NUMBER_ID, FakeGraphAPI

#: Long enough that a loaded 2-core CI machine does not stall an accepted send past it (at
#: 1 s, one run saw the fake accept a send the client had given up on: sent again, twice).
SEND_TIMEOUT = 2.0
LEASE = 3.0
CONVERSATIONS = 120
REPLIES = 3  # per turn, written together
TURNS_PER_SECOND = 40.0  # 120 replies a second, for 3 s
IN_FLIGHT = Settings.model_fields["sender_concurrency"].default


@dataclass
class Run:
    """One drain: when each reply was committed and when the fake accepted it."""

    share: float
    committed: dict[str, float] = field(default_factory=dict)
    accepted: list[tuple[str, float]] = field(default_factory=list)
    statuses: set[str] = field(default_factory=set)
    peak_in_flight: int = 0

    def latencies(self) -> list[float]:
        first: dict[str, float] = {}
        for key, at in self.accepted:
            first.setdefault(key, at)
        return sorted(first[key] - self.committed[key] for key in self.committed)

    def figures(self) -> tuple[float, float]:
        """(p50, p99) in seconds."""
        cuts = statistics.quantiles(self.latencies(), n=100)
        return cuts[49], cuts[98]


def outbound(idempotency_key: str, to: str, text: str) -> OutboundMessage:
    """A bot reply to ``to``, as the worker writes it."""
    return OutboundMessage(idempotency_key=idempotency_key, to=to, role="bot",
                           conversation_id=f"wa:{PHONE_NUMBER_ID}:{to}",
                           phone_number_id=PHONE_NUMBER_ID, payload=text_payload(to, text))


def key(share: float, conversation: int, reply: int) -> str:
    return f"hol-{share:.2f}-{conversation:03d}-{reply}"


def drain(db, share: float) -> Run:
    """Write CONVERSATIONS turns at TURNS_PER_SECOND while a started sender delivers them."""
    graph = FakeGraphAPI()
    graph.slow_share, graph.slow_seconds = share, SEND_TIMEOUT + 0.5
    client = GraphClient(graph.url, ACCESS_TOKEN, timeout=SEND_TIMEOUT, concurrency=IN_FLIGHT)
    sender = OutboxSender(db, client, rate=1000.0, lease_seconds=LEASE, poll_seconds=0.05,
                          base_delay=0.05, max_delay=0.5, batch_size=64,
                          max_in_flight=IN_FLIGHT)
    run = Run(share)
    keys = [key(share, c, r) for c in range(CONVERSATIONS) for r in range(REPLIES)]
    sender.start()
    try:
        started = time.monotonic()
        for c in range(CONVERSATIONS):
            time.sleep(max(0.0, started + c / TURNS_PER_SECOND - time.monotonic()))
            to = f"4477009{int(share * 100):02d}{c:03d}"
            with db.session() as s:
                s.add_all(outbound(key(share, c, r), to, f"reply {r}") for r in range(REPLIES))
            now = time.monotonic()
            run.committed.update({key(share, c, r): now for r in range(REPLIES)})
            sender.wake()  # as the worker does after writing a batch's replies
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with graph.lock:
                done = {m["biz_opaque_callback_data"] for m in graph.received} >= set(keys)
            if done:
                break
            time.sleep(0.05)
        time.sleep(LEASE)  # a reply wrongly sent again would arrive now
    finally:
        sender.stop()
        graph.close()
    with graph.lock:
        run.accepted = [(m["biz_opaque_callback_data"], m["_at"]) for m in graph.received]
        run.peak_in_flight = graph.peak_in_flight
    with db.session() as s:
        run.statuses = set(s.scalars(select(OutboundMessage.status).where(
            OutboundMessage.idempotency_key.in_(keys))))
    return run


def test_a_slow_send_delays_only_its_own_conversation(db):
    runs = [drain(db, 0.0), drain(db, 0.05)]
    for run in runs:
        p50, p99 = run.figures()
        print(f"\n{db.engine.dialect.name}, {run.share:.0%} of sends past the {SEND_TIMEOUT:.0f} s "
              f"timeout: committed -> accepted p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms "
              f"({len(run.committed)} replies; the fake held at most {run.peak_in_flight} requests "
              f"at once, abandoned ones included)")
    for run in runs:
        got = [k for k, _ in run.accepted]
        assert sorted(got) == sorted(run.committed), "a reply was lost or sent twice"
        for c in range(CONVERSATIONS):
            mine = [k for k in got if k.startswith(key(run.share, c, 0)[:-1])]
            assert mine == sorted(mine), f"conversation {c} out of order: {mine}"
        assert run.statuses == {"sent"}
    (fast, _), (slow, _) = runs[0].figures(), runs[1].figures()
    # Any head-of-line wait is a whole timeout (2 s): half of it is far above the noise.
    assert slow < 3 * fast or slow < SEND_TIMEOUT / 2, (fast, slow)


def test_stop_waits_for_the_sends_in_flight_and_records_them(db):
    # SIGTERM drains through stop(): a send that Meta accepts while the sender is stopping is
    # recorded 'sent' (with its wamid), not left 'sending' for the lease to settle.
    graph = FakeGraphAPI()
    graph.script = [("sleep", 0.5)]  # answered (accepted) after half a second
    sender = OutboxSender(db, GraphClient(graph.url, ACCESS_TOKEN, timeout=5.0),
                          lease_seconds=LEASE, poll_seconds=0.05)
    to = "447700909999"
    with db.session() as s:
        s.add(outbound("drain-1", to, "bye"))
    sender.start()
    try:
        deadline = time.monotonic() + 10
        while graph.attempts == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert graph.attempts == 1 and graph.received == []  # in flight now
    finally:
        started = time.monotonic()
        sender.stop()
        stopped_in = time.monotonic() - started
        graph.close()
    with db.session() as s:
        row = s.scalars(select(OutboundMessage).where(
            OutboundMessage.idempotency_key == "drain-1")).one()
    assert (row.status, len(graph.received)) == ("sent", 1) and row.wamid
    assert stopped_in < 3.0, stopped_in


def test_the_lease_never_requeues_a_row_whose_send_is_still_running(db):
    # A send may run longer than the lease (send timeout 10 s, a test's lease 4 s): the rows
    # this process holds are left alone; once its outcome is recorded the lease applies again.
    sender = OutboxSender(db, GraphClient("http://127.0.0.1:9", ACCESS_TOKEN), lease_seconds=1.0)
    to = "447700909998"
    with db.session() as s:
        s.add(outbound("lease-held", to, "hi"))
    [row] = [c for c in sender.claim_batch(64) if c.idempotency_key == "lease-held"]
    sender.in_flight.hold([row.id])
    time.sleep(1.2)  # past the lease
    assert sender.requeue_unconfirmed() == 0
    sender.in_flight.release([row.id])
    assert sender.requeue_unconfirmed() == 1
