"""Simulated support agents: replay simulated conversations through the service, then label.

Retraining learns from what agents say about escalations, and no public data set has such
labels. To test the loop end to end, this module

1. replays simulated conversations (``data/simulated``) through the service's own intake and
   worker (``tierline.serving.queue.store.store_webhook`` + ``tierline.serving.queue.worker.JobWorker``), so the database
   holds exactly what production would: decisions with their features, tickets, transcripts;
2. lets a :class:`SimulatedAgent` label every ticket, with a labelling function that may
   disagree with the bootstrap one in a systematic way (e.g. "billing questions from non-VIP
   customers do not need a human").

It is a test and notebook tool: nothing in the service depends on it.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from tqdm.auto import tqdm

from tierline.nlu.engine import TurnEngine
from tierline.nlu.labels import INTENT_LABELS
from tierline.serving.queue.store import store_webhook
from tierline.serving.storage.db import Database
from tierline.serving.storage.models import Agent, DecisionRow, EscalationLabel, InboundMessage, Ticket
from tierline.serving.channels.whatsapp.payload import IncomingMessage
from tierline.serving.queue.worker import JobWorker
from tierline.training.labelling import TurnTruth, lead_probability

log = logging.getLogger(__name__)
SIM_PHONE_NUMBER_ID = "100000000000001"


def _wamid(conversation_id: str, turn: int) -> str:
    return f"sim.{conversation_id}.{turn}"


def replay_conversations(db: Database, engine: TurnEngine, rows: list[dict]) -> dict[str, dict]:
    """Play simulated rows through intake + worker; returns the rows by wamid.

    Each simulated conversation gets its own customer id; its tier comes from the simulation
    (``new_state`` is the only place the service reads a tier), its timestamps from the rows.
    """
    by_conv: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_conv[row["conversation_id"]].append(row)
    tiers = {conv: turns[0]["tier"] for conv, turns in by_conv.items()}
    customers = {conv: f"sim{i:07d}" for i, conv in enumerate(by_conv)}
    conv_of_customer = {c: conv for conv, c in customers.items()}

    def new_state(conversation_id: str, customer_id: str) -> dict:
        tier = tiers[conv_of_customer[customer_id]]
        return engine.new_state(conversation_id, customer_id, tier=tier).to_dict()

    worker = JobWorker(db, engine)
    by_wamid = {}
    for conv, turns in tqdm(by_conv.items(), desc="replaying", unit="conv", leave=False):
        for row in sorted(turns, key=lambda r: r["turn"]):
            wamid = _wamid(conv, row["turn"])
            by_wamid[wamid] = row
            message = IncomingMessage(wamid=wamid, customer_id=customers[conv],
                                      phone_number_id=SIM_PHONE_NUMBER_ID, type="text",
                                      text=row["text"], sent_at=datetime.fromisoformat(row["at"]))
            store_webhook(db, [message], [], SIM_PHONE_NUMBER_ID, new_state)
            while worker.run_once():
                pass
    return by_wamid


def _truth(row: dict) -> TurnTruth:
    return TurnTruth(kind=row["kind"], true_intent=row["true_intent"], frustrated=row["frustrated"],
                     failed_before=row["failed_before"], frustrated_before=row["frustrated_before"],
                     repeated=row["repeated"])


@dataclass
class SimulatedAgent:
    """Labels tickets like the bootstrap lead, except where told to disagree.

    ``billing_needs_human_for_non_vip=False`` is the scenario of the retraining test: the
    sensitive-topic trigger is dropped for billing intents unless the customer is a VIP.
    """

    billing_needs_human_for_non_vip: bool = True
    seed: int = 0

    def probability(self, row: dict, billing_intents: set[str]) -> float:
        """P(this agent says the handoff was needed) for one simulated turn."""
        truth = _truth(row)
        if (not self.billing_needs_human_for_non_vip and row["tier"] != "vip"
                and truth.true_intent in billing_intents):
            truth.true_intent = None  # the topic alone is no reason any more
        return lead_probability(truth, row["tier"])

    def label_tickets(self, db: Database, engine: TurnEngine, by_wamid: dict[str, dict]) -> int:
        """Label every unlabelled ticket: escalation needed yes/no/earlier, intent, frustration.

        "earlier" when the agent would have taken the previous turn already (p >= 0.5 there).
        Returns the number of labels written.
        """
        routing = engine.flow.escalation.routing
        billing = {i for i in INTENT_LABELS if routing.team_for(i) == "billing"}
        rng = random.Random(self.seed)
        written = 0
        with db.session() as s:
            # One per seed, like its token: agents' names are unique (migration 0009).
            agent = Agent(name=f"simulated agent {self.seed}", token_sha256=f"sim-{self.seed:058d}",
                          teams=[], is_admin=True)
            s.add(agent)
            s.flush()
            labelled = set(s.scalars(select(EscalationLabel.ticket_id)))
            for ticket in s.scalars(select(Ticket).order_by(Ticket.id)):
                if ticket.id in labelled:
                    continue
                decision = s.get(DecisionRow, ticket.decision_id) if ticket.decision_id else None
                if decision is None or decision.inbound_id is None:
                    continue
                wamid = s.get(InboundMessage, decision.inbound_id).wamid
                row = by_wamid.get(wamid)
                if row is None:
                    continue
                needed = rng.random() < self.probability(row, billing)
                previous = by_wamid.get(_wamid(row["conversation_id"], row["turn"] - 1))
                earlier = (needed and previous is not None
                           and self.probability(previous, billing) >= 0.5)
                intent = row["true_intent"] if row["true_intent"] in INTENT_LABELS else None
                s.add(EscalationLabel(ticket_id=ticket.id, agent_id=agent.id,
                                      escalation_needed="earlier" if earlier else
                                      "yes" if needed else "no",
                                      corrected_intent=intent, frustrated=row["frustrated"]))
                written += 1
        log.info("simulated agent wrote %d labels", written)
        return written


@dataclass
class DemoLabels:
    """What :func:`fill_with_labels` wrote, and the simulated rows it left for bootstrapping."""

    labels: int
    bootstrap_rows: list[dict]


def fill_with_labels(database_url: str, engine: TurnEngine, conversations: int = 400,
                     seed: int = 0, billing_needs_human_for_non_vip: bool = False) -> DemoLabels:
    """Replay ``conversations`` simulated training conversations (drawn with ``seed``) into a
    service database (migrated here) and let a :class:`SimulatedAgent` label their tickets.

    The rest of the simulated training rows come back as ``bootstrap_rows``, so a retrain can
    keep the replayed conversations out of its bootstrap set.
    """
    from tierline.training.simulator import SIMULATED_DIR, load_rows

    rows = load_rows(SIMULATED_DIR / "policy_train.jsonl")
    ids = sorted({r["conversation_id"] for r in rows})
    random.Random(seed).shuffle(ids)
    chosen = set(ids[:conversations])
    db = Database(database_url)
    try:
        db.migrate()
        by_wamid = replay_conversations(db, engine, [r for r in rows if r["conversation_id"] in chosen])
        agent = SimulatedAgent(billing_needs_human_for_non_vip=billing_needs_human_for_non_vip,
                               seed=seed)
        written = agent.label_tickets(db, engine, by_wamid)
    finally:
        db.dispose()
    return DemoLabels(written, [r for r in rows if r["conversation_id"] not in chosen])
