"""Simulated support agents: replay simulated conversations through the service, then label.

Retraining learns from what agents say about escalations, and no public data set has such
labels. To test the loop end to end, this module

1. replays simulated conversations (``data/simulated``, or conversations of an Italian,
   Spanish or Portuguese shop simulated on the spot) through the service's own intake and
   worker (``tierline.serving.queue.store.store_webhook`` + ``tierline.serving.queue.worker.JobWorker``), so the database
   holds exactly what production would: decisions with their features and model stack,
   tickets, transcripts;
2. lets a :class:`SimulatedAgent` label every ticket, with a labelling function that may
   disagree with the bootstrap one in a systematic way (e.g. "billing questions from non-VIP
   customers do not need a human", or an Italian team's "every cancellation, complaint or
   account deletion needs a human": :class:`TopicVerdict`).

It is a test and notebook tool: nothing in the service depends on it.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

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


def replay_conversations(db: Database, engine: TurnEngine, rows: list[dict], chunk: int = 1
                         ) -> dict[str, dict]:
    """Play simulated rows through intake + worker, ``chunk`` conversations at a time; returns
    the rows by wamid. ``chunk`` > 1 is faster (the worker analyses its batches at once) but
    opens tickets in another order, and the most recent tickets are the gate's holdout: the
    English tests' figures are from ``chunk=1``.

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
    turns_by_conv = [(conv, sorted(turns, key=lambda r: r["turn"])) for conv, turns in by_conv.items()]
    for start in tqdm(range(0, len(turns_by_conv), chunk), desc="replaying", unit="chunk",
                      leave=False):
        group = turns_by_conv[start:start + chunk]
        # In waves: every conversation's first message of the group, the worker drains the queue
        # (in batches, as the service does), then every second message, and so on. A
        # conversation's turns stay in order, at the rows' times; groups follow each other, so
        # tickets open (and are held out by recency) group by group, not by turn number.
        for wave in range(max(len(turns) for _, turns in group)):
            messages = []
            for conv, turns in group:
                if wave >= len(turns):
                    continue
                row = turns[wave]
                wamid = _wamid(conv, row["turn"])
                by_wamid[wamid] = row
                messages.append(IncomingMessage(
                    wamid=wamid, customer_id=customers[conv], phone_number_id=SIM_PHONE_NUMBER_ID,
                    type="text", text=row["text"], sent_at=datetime.fromisoformat(row["at"])))
            store_webhook(db, messages, [], SIM_PHONE_NUMBER_ID, new_state)
            while worker.run_once():
                pass
    return by_wamid


def _truth(row: dict) -> TurnTruth:
    return TurnTruth(kind=row["kind"], true_intent=row["true_intent"], frustrated=row["frustrated"],
                     failed_before=row["failed_before"], frustrated_before=row["frustrated_before"],
                     repeated=row["repeated"])


#: What an agent who always wants a human on a topic answers (a careful lead, not a rule).
P_ALWAYS = 0.97


@dataclass(frozen=True)
class TopicVerdict:
    """A team's systematic disagreement with the bootstrap lead on one topic.

    ``needs_human=False``: the topic alone is no reason for a human any more (other reasons,
    frustration or a request, still count); ``True``: a human always (P_ALWAYS). ``vip_too``:
    whether VIP customers get the same verdict (False: they keep the lead's).
    """

    intents: frozenset[str]
    needs_human: bool
    vip_too: bool = True

    def applies(self, row: dict) -> bool:
        return row["true_intent"] in self.intents and (self.vip_too or row["tier"] != "vip")


def topic_intents(flow, team: str | None = None, billing: bool | None = None) -> frozenset[str]:
    """The flow's sensitive intents handled by ``team``, or (``billing``) by the billing team
    or by any other: the policy's two topic features (``p_sensitive_billing`` /
    ``p_sensitive_other``), the topics whose verdicts a retrained policy can follow."""
    routing = flow.escalation.routing
    return frozenset(i for i in flow.escalation.sensitive_intents
                     if (team is None or routing.team_for(i) == team)
                     and (billing is None or (routing.team_for(i) == "billing") == billing))


@dataclass
class SimulatedAgent:
    """Labels tickets like the bootstrap lead, except where told to disagree.

    ``billing_needs_human_for_non_vip=False`` is the scenario of the English retraining test:
    the sensitive-topic trigger is dropped for billing intents unless the customer is a VIP.
    ``verdict`` is any other :class:`TopicVerdict` (the Italian test's: cancellations,
    complaints and account deletions always need a human).
    """

    billing_needs_human_for_non_vip: bool = True
    seed: int = 0
    verdict: TopicVerdict | None = None

    def probability(self, row: dict, billing_intents: set[str]) -> float:
        """P(this agent says the handoff was needed) for one simulated turn."""
        truth = _truth(row)
        if (not self.billing_needs_human_for_non_vip and row["tier"] != "vip"
                and truth.true_intent in billing_intents):
            truth.true_intent = None  # the topic alone is no reason any more
        if self.verdict is not None and self.verdict.applies(row):
            if self.verdict.needs_human:
                return max(P_ALWAYS, lead_probability(truth, row["tier"]))
            truth.true_intent = None
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
    """What :func:`fill_with_labels` wrote, and the simulated rows it left for bootstrapping
    (and, for a shop in another language, simulated held-out rows for the frozen guard and the
    folder of the champion policy :func:`fill_shop_with_labels` fitted)."""

    labels: int
    bootstrap_rows: list[dict]
    frozen_rows: list[dict] | None = None
    champion_dir: Path | None = None


def fill_with_labels(database_url: str, engine: TurnEngine, conversations: int = 400,
                     seed: int = 0, billing_needs_human_for_non_vip: bool = False,
                     language: str = "en", verdict: TopicVerdict | None = None,
                     simulated: tuple[list[dict], list[dict]] | None = None,
                     bootstrap_conversations: int = 1500, frozen_conversations: int = 500
                     ) -> DemoLabels:
    """Replay ``conversations`` simulated training conversations (drawn with ``seed``) into a
    service database (migrated here) and let a :class:`SimulatedAgent` label their tickets.

    English (``language="en"``): the conversations come from the shipped simulated set, and the
    rest of its training rows come back as ``bootstrap_rows``, so a retrain can keep the
    replayed conversations out of its bootstrap set. Italian, Spanish or Portuguese: the
    conversations are simulated in that language (``simulated``: training and test rows of
    :func:`simulate_language`; by default ``conversations`` + ``bootstrap_conversations``
    and ``frozen_conversations`` of them, played on ``engine``'s multilingual stack) and
    replayed through ``engine``, which must route the language to the multilingual model stack
    (``TurnEngine.shipped()``): the first ``conversations`` are replayed, the other training
    rows come back as ``bootstrap_rows``, the test rows as ``frozen_rows``.
    """
    from tierline.training.simulator import SIMULATED_DIR, load_rows

    frozen = None
    if language == "en":
        rows = load_rows(SIMULATED_DIR / "policy_train.jsonl")
        ids = sorted({r["conversation_id"] for r in rows})
        random.Random(seed).shuffle(ids)
        chosen = set(ids[:conversations])
    else:
        rows, frozen = simulated or simulate_language(
            multilingual_only(engine), language, conversations + bootstrap_conversations,
            frozen_conversations, seed)
        chosen = {r["conversation_id"] for r in rows if _index(r) < conversations}
    db = Database(database_url)
    try:
        db.migrate()
        by_wamid = replay_conversations(db, engine, [r for r in rows if r["conversation_id"] in chosen],
                                        chunk=1 if language == "en" else 32)
        agent = SimulatedAgent(billing_needs_human_for_non_vip=billing_needs_human_for_non_vip,
                               seed=seed, verdict=verdict)
        written = agent.label_tickets(db, engine, by_wamid)
    finally:
        db.dispose()
    return DemoLabels(written, [r for r in rows if r["conversation_id"] not in chosen], frozen)


def fill_shop_with_labels(database_url: str, language: str, work_dir: Path,
                          conversations: int = 200, seed: int = 0,
                          verdict: TopicVerdict | None = None,
                          billing_needs_human_for_non_vip: bool = True,
                          bootstrap_conversations: int = 1500, frozen_conversations: int = 500,
                          analyzer=None) -> DemoLabels:
    """A shop whose customers write in ``language`` (it, es, pt), from scratch: its
    conversations are simulated on the multilingual model stack, its champion multilingual
    policy is fitted on the training conversations (``work_dir/champion``, as the shipped ones
    were fitted on theirs), the service (English pair + the multilingual bundle with that
    champion) takes ``conversations`` of them and a :class:`SimulatedAgent` labels the tickets.

    The champion is the shop's own so that a retrain's gate measures what the agents' labels
    change, not how far the shipped policy's simulated English-intent conversations are from
    the shop's (a refit on the shop's conversations alone escalates fewer of them than the
    shipped policy: measured, frozen recall 0.87 -> 0.82). ``analyzer``: the English bundle,
    when already loaded.
    """
    from tierline.nlu.bundle import MULTILINGUAL_BUNDLE_DIR, MULTILINGUAL_LANGUAGES
    from tierline.nlu.engine import LanguageRoute
    from tierline.nlu.policy import PolicyArtifact
    from tierline.training.policy_fit import fit_policy, save_policy, to_artifact

    player = TurnEngine.load(nlu_dir=MULTILINGUAL_BUNDLE_DIR,
                             policy_artifact=PolicyArtifact.untrained())
    train, frozen = simulate_language(player, language, conversations + bootstrap_conversations,
                                      frozen_conversations, seed)
    champion_dir = Path(work_dir) / "champion"
    save_policy(to_artifact(fit_policy(train), {}), champion_dir)
    engine = TurnEngine.load(analyzer=analyzer, route=LanguageRoute(
        MULTILINGUAL_LANGUAGES, MULTILINGUAL_BUNDLE_DIR, champion_dir),
        route_analyzer=player.analyzer)
    filled = fill_with_labels(database_url, engine, conversations, seed,
                              billing_needs_human_for_non_vip, language, verdict,
                              simulated=(train, frozen))
    filled.champion_dir = champion_dir
    return filled


def _index(row: dict) -> int:
    """The script number of a simulated conversation id (``sim-it-00042`` -> 42)."""
    return int(row["conversation_id"].rsplit("-", 1)[1])


def multilingual_only(engine: TurnEngine) -> TurnEngine:
    """An engine on ``engine``'s multilingual model stack alone (its bundle object, no second
    load), with an untrained policy: what simulated rows of that stack are recorded with."""
    from tierline.nlu.policy import PolicyArtifact

    if engine.routed is None:
        raise ValueError("the engine routes no language to a multilingual model stack "
                         "(use TurnEngine.shipped())")
    return TurnEngine.load(analyzer=engine.routed.get().analyzer,
                           policy_artifact=PolicyArtifact.untrained(),
                           customers=engine.customers)


def simulate_language(player: TurnEngine, language: str, train_conversations: int,
                      test_conversations: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Training and test conversations of a shop in ``language``, played on ``player`` (an
    engine on the multilingual model stack alone: rows with the features its policy reads)."""
    from tierline.training.simulator import simulate

    train = simulate(player, "train", train_conversations, seed, language=language)
    test = simulate(player, "test", test_conversations, seed + 1, language=language) \
        if test_conversations else []
    return train, test
