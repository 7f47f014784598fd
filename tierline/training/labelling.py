"""The bootstrap labelling function: "should this turn be escalated now?" as a careful lead.

No public data set has labelled escalations, so the policy starts from simulated conversations
labelled by this function. It reads the *truth* of the simulation (what the customer really
wanted, whether they really were frustrated, what the bot really did), never the NLU's
guesses, and returns a probability: two careful leads would not always agree, so each label is
a draw from it. Agent labels collected by the service replace this function later.

Each trigger is one independent reason to escalate; they combine as a noisy-OR
(``1 - prod(1 - p_i)``), and the customer's tier sharpens the result.
"""

from __future__ import annotations

from dataclasses import dataclass

#: One probability per trigger (documented in the model card). The mission's triggers
#: (frustration, sensitive topics, failures, explicit requests) are decisive for a careful
#: lead; a first version with milder values (frustrated 0.55, payment 0.7, refund 0.4) had
#: leads split almost evenly on a customer's first angry message.
P_BASE = 0.02
P_EXPLICIT = 0.97
P_FAILED = {2: 0.35, 3: 0.85}  # bot failures so far (3 or more -> 0.85)
P_FRUSTRATED_FIRST = 0.75
P_FRUSTRATED_AGAIN = 0.93
P_FRUSTRATED_EARLIER = 0.3
P_SENSITIVE = {"payment_issue": 0.8, "complaint": 0.75, "get_refund": 0.6, "track_refund": 0.5,
               "cancel_order": 0.45, "delete_account": 0.45, "check_cancellation_fee": 0.3}
P_REPEATED = 0.35
#: Tier exponent: p -> 1 - (1 - p) ** k; a VIP's reasons weigh more.
TIER_SHARPEN = {"standard": 1.0, "premium": 1.3, "vip": 1.8}


@dataclass
class TurnTruth:
    """What really happened at one turn of a simulated conversation."""

    kind: str  # routine | faq | sensitive | oos | frustrated | explicit | small_talk | order_number
    true_intent: str | None
    frustrated: bool
    failed_before: int  # bot failures before this message
    frustrated_before: int  # truly frustrated customer messages before this one
    repeated: bool  # same substantive true intent as an earlier message


def lead_probability(truth: TurnTruth, tier: str) -> float:
    """The probability that a careful support lead says "escalate now" for this turn."""
    triggers = [P_BASE]
    if truth.kind == "explicit":
        triggers.append(P_EXPLICIT)
    if truth.failed_before >= 3:
        triggers.append(P_FAILED[3])
    elif truth.failed_before == 2:
        triggers.append(P_FAILED[2])
    if truth.frustrated:
        triggers.append(P_FRUSTRATED_AGAIN if truth.frustrated_before else P_FRUSTRATED_FIRST)
    elif truth.frustrated_before:
        triggers.append(P_FRUSTRATED_EARLIER)
    if truth.true_intent in P_SENSITIVE:
        triggers.append(P_SENSITIVE[truth.true_intent])
    if truth.repeated:
        triggers.append(P_REPEATED)
    keep = 1.0
    for p in triggers:
        keep *= 1.0 - p
    return min(0.99, 1.0 - keep ** TIER_SHARPEN.get(tier, 1.0))
