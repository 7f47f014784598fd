"""Retraining from agent-labelled escalations, with a promotion gate, for each model stack.

The loop: agents label tickets in the service (escalation needed yes / no / earlier, corrected
intent, frustrated) → :func:`export_labels` reads each label with the features the policy saw
when it decided (stored with the decision that opened the ticket and read through the
service's export function, so nothing is recomputed with a different model)
into a versioned ``datasets.Dataset`` → :func:`fit_challenger` refits the policy → :func:`gate`
compares challenger and champion → :func:`retrain` logs all of it to MLflow and moves the
``champion`` alias only when the gate says so.

Each model stack learns from its own decisions (:data:`STACKS`): labels on conversations the
English pair decided retrain ``tierline-policy`` (and ``tierline-nlu``); labels on it/es/pt
conversations, decided by the multilingual pair, retrain ``tierline-policy-multilingual`` (and
``tierline-nlu-multilingual``). A policy reads the features of its own bundle only.

Agent labels are *selective*: agents only see turns the champion escalated. Two consequences
shape the design:

* A gate scored on agent labels alone rewards a model that merely re-learns the base rate of
  the labelled turns (a challenger trained on shuffled labels would pass). So the gate also
  guards recall and calibration on a frozen evaluation set that covers every turn.
* Where agents *systematically* disagree with the bootstrap labels (a "disputed slice": topic
  x VIP or not, e.g. billing x non-VIP), the bootstrap labels are outdated there. Those slices'
  bootstrap rows leave the training set (the agents' verdicts govern them) and leave the
  frozen guard (the old labels cannot veto the agents). Disputes are found from the labels,
  never from the challenger, and are logged with the decision.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field
from sklearn.metrics import brier_score_loss, log_loss

from tierline.nlu.bundle import (
    DEFAULT_BUNDLE_DIR,
    DEFAULT_POLICY_DIR,
    MULTILINGUAL_BUNDLE_DIR,
    MULTILINGUAL_POLICY_DIR,
    REGISTERED_MULTILINGUAL_NLU_MODEL,
    REGISTERED_MULTILINGUAL_POLICY_MODEL,
    REGISTERED_NLU_MODEL,
    REGISTERED_POLICY_MODEL,
)
from tierline.nlu.engine import DEFAULT_STACK
from tierline.nlu.flow import BotFlow, load_flow
from tierline.paths import DATA_DIR, PROJECT_ROOT
from tierline.nlu.policy import FEATURE_NAMES, EscalationPolicy, PolicyArtifact
from tierline.training.calibration import expected_calibration_error, plot_reliability
from tierline.training.policy_fit import fit_policy, to_artifact

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stack:
    """One model stack as retraining sees it: the ``model_stack`` its decisions record, its
    registered model names, its shipped folders (the champion when the registry has none), the
    simulated rows its policy was fitted on (bootstrap) and evaluated on (frozen guard), and how
    its NLU bundle is trained."""

    name: str
    policy_model: str
    nlu_model: str
    policy_dir: Path
    nlu_dir: Path
    simulated_dir: Path
    xlmt_languages: tuple[str, ...] = ("english",)
    #: Encoder folder of the NLU (None: the default MiniLM); built when missing.
    encoder_dir: Path | None = None
    #: Whether the NLU's intent data adds the hand-written it/es/pt rows (seen three times).
    handwritten_intents: bool = False


MULTILINGUAL_STACK = "multilingual"
STACKS: dict[str, Stack] = {
    DEFAULT_STACK: Stack(DEFAULT_STACK, REGISTERED_POLICY_MODEL, REGISTERED_NLU_MODEL,
                         DEFAULT_POLICY_DIR, DEFAULT_BUNDLE_DIR, DATA_DIR / "simulated"),
    MULTILINGUAL_STACK: Stack(
        MULTILINGUAL_STACK, REGISTERED_MULTILINGUAL_POLICY_MODEL, REGISTERED_MULTILINGUAL_NLU_MODEL,
        MULTILINGUAL_POLICY_DIR, MULTILINGUAL_BUNDLE_DIR, DATA_DIR / "simulated" / "multilingual",
        xlmt_languages=("english", "italian", "spanish", "portuguese"),
        encoder_dir=PROJECT_ROOT / "runs" / "encoders" / "e5-small-pruned",
        handwritten_intents=True),
}


def stack_of(name: str) -> Stack:
    """The :class:`Stack` called ``name`` (ValueError naming the known ones otherwise)."""
    if name not in STACKS:
        raise ValueError(f"unknown model stack {name!r}; known: {', '.join(STACKS)}")
    return STACKS[name]


class NotEnoughLabels(ValueError):
    """A stack has fewer agent labels than ``RetrainConfig.min_labels``: nothing retrained."""


class RetrainConfig(BaseModel):
    """Every knob of a retrain, in one validated object (logged to MLflow as parameters)."""

    min_labels: int = Field(40, ge=1, description="agent labels a stack needs before it retrains")
    holdout_share: float = Field(0.3, gt=0, lt=1, description="most recent tickets kept for the gate")
    agent_weight: float = Field(3.0, gt=0, description="weight of an agent label vs a bootstrap row")
    min_slice_labels: int = Field(10, ge=1, description="labels a slice needs before it can be disputed")
    dispute_margin: float = Field(0.25, gt=0, lt=1,
                                  description="|agent yes-rate - champion mean p| that disputes a slice")
    recall_tolerance: float = Field(0.03, ge=0, description="frozen recall may fall at most this much")
    ece_tolerance: float = Field(0.02, ge=0, description="frozen-set ECE may rise at most this much")
    brier_tolerance: float = Field(0.0, ge=0, description="agent-label Brier may rise at most this much")
    agent_ece_tolerance: float = Field(
        0.05, ge=0, description="agent-label ECE may rise at most this much (a small, noisy set)")
    intent_tolerance: float = Field(0.005, ge=0, description="intent accuracy may fall at most this much")
    min_gain: float = Field(0.005, ge=0, description="improvement needed on at least one metric")
    min_gain_z: float = Field(
        1.645, ge=0, description="a proper score counts as better only if its gain, label by "
                                 "label against the champion, is this many standard errors "
                                 "above zero (one-sided 95 %; 0: no such check)")
    nlu_min_corrections: int = Field(200, ge=1,
                                     description="corrected intents needed before the NLU heads retrain")
    C: float = Field(1.0, gt=0)
    nlu_epochs: float = Field(2.0, gt=0, description="fine-tuning epochs of an NLU retrain")
    nlu_max_steps: int | None = Field(None, ge=1, description="cap on steps (tiny test runs)")
    nlu_rows_per_split: int | None = Field(None, ge=1, description="subsample (tiny test runs)")
    nlu_encoder: Path | None = Field(
        None, description="encoder folder of a multilingual NLU retrain (default "
                          "runs/encoders/e5-small-pruned, built when missing)")


# --- export ---------------------------------------------------------------------------------

def tier_of(features: dict) -> str:
    """The customer's tier as the policy saw it (from its own tier features)."""
    return "vip" if features["vip"] >= 0.5 else "premium" if features["premium"] >= 0.5 else "standard"


def topic_of(features: dict) -> str:
    """The escalation topic as the policy saw it: which sensitive group dominated, if any."""
    if features["p_sensitive_billing"] >= 0.5:
        return "billing"
    if features["p_sensitive_other"] >= 0.5:
        return "sensitive_other"
    return "other"


def slice_of(features: dict) -> str:
    """Where agents' disagreements are looked for: topic x (VIP or not).

    The granularity the policy can express: it has VIP interaction features but none for
    premium, so a finer slice could be disputed without any challenger able to follow it.
    """
    return f"{topic_of(features)}/{'vip' if features['vip'] >= 0.5 else 'non_vip'}"


def nlu_corrections(rows: list[dict]) -> dict[str, list[dict]]:
    """Training rows for the NLU heads from agent labels: the escalated customer message with
    the agent's intent (corrections and confirmations alike) and frustrated yes/no."""
    escalated = [r for r in rows if r["role"] == "escalated" and r["text"]]
    return {"intent": [{"text": r["text"], "label": r["corrected_intent"]}
                       for r in escalated if r["corrected_intent"]],
            "frustration": [{"text": r["text"], "label": int(r["frustrated"])}
                            for r in escalated if r["frustrated"] in (0, 1)]}


def _features(decision) -> dict[str, float]:
    return {k: float(decision.features[k]) for k in FEATURE_NAMES}


def _stack_name(model_stack: str | None) -> str:
    """The stack a decision was made by (decisions from before the column: the default)."""
    return model_stack or DEFAULT_STACK


def label_counts(database_url: str) -> dict[str, int]:
    """Agent labels per model stack (of the decision that opened each labelled ticket)."""
    from collections import Counter

    return dict(Counter(_stack_name(item.decision.model_stack)
                        for item in _labelled(database_url)))


def _labelled(database_url: str):
    from tierline.serving.storage.db import Database
    from tierline.serving.tickets.export import labelled_decisions

    db = Database(database_url)
    try:
        return labelled_decisions(db)
    finally:
        db.dispose()


def export_labels(database_url: str, stack: str = DEFAULT_STACK):
    """Agent labels of one model stack's decisions, joined with the decision-time features, as
    a ``datasets.Dataset``.

    Read through the service's export (``tierline.serving.tickets.export.labelled_decisions``): each
    label comes with the decision that opened its ticket (by foreign key) and the
    conversation's decision before it. One row per labelled escalation (label 1 for
    yes/earlier, 0 for no); an "earlier" label also marks the customer's previous turn as one
    that should have escalated (label 1), when that turn did not escalate. Sorted by ticket
    time, so the most recent rows are last. Only decisions made by ``stack`` (``default``: the
    English pair; ``multilingual``: the pair that decides it/es/pt conversations) are this
    stack's data: the features of another bundle are not its policy's.
    """
    from datasets import Dataset

    stack_of(stack)
    rows: list[dict] = []
    other_stack = 0
    for item in _labelled(database_url):
        escalated, previous = item.decision, item.previous
        if _stack_name(escalated.model_stack) != stack:
            other_stack += 1  # features of another NLU bundle: not this policy's data
            continue
        base = {"ticket_id": item.ticket_id, "conversation_id": item.conversation_id,
                "team": item.team, "at": item.ticket_created_at.isoformat(),
                "escalation_needed": item.escalation_needed,
                "corrected_intent": item.corrected_intent or "",
                "frustrated": -1 if item.frustrated is None else int(item.frustrated)}
        rows.append({**base, "decision_id": escalated.id, "intent": escalated.intent,
                     "text": escalated.text, "p_escalate_then": escalated.p_escalate,
                     "role": "escalated", "label": int(item.escalation_needed != "no"),
                     "features": _features(escalated)})
        if item.escalation_needed == "earlier" and previous is not None \
                and not previous.escalate and _stack_name(previous.model_stack) == stack:
            rows.append({**base, "decision_id": previous.id, "intent": previous.intent,
                         "text": previous.text, "p_escalate_then": previous.p_escalate,
                         "role": "previous", "label": 1, "corrected_intent": "",
                         "frustrated": -1, "features": _features(previous)})
    if other_stack:
        log.info("%d labels skipped: decided by another model stack than %s, whose features "
                 "this policy does not read", other_stack, stack)
    if not rows:
        raise NotEnoughLabels(f"no agent labels in the database for the {stack} model stack")
    for r in rows:
        r["slice"] = slice_of(r["features"])
    return Dataset.from_list(rows)


def dataset_version(ds) -> dict:
    """Row count and content hash of a labels dataset (its data version)."""
    h = hashlib.sha256()
    for r in ds:
        h.update(json.dumps([r["ticket_id"], r["decision_id"], r["label"], r["corrected_intent"]]
                            ).encode())
    return {"rows": len(ds), "sha256_16": h.hexdigest()[:16]}


def split_recent(ds, holdout_share: float):
    """(train, holdout): the most recent ``holdout_share`` of tickets are held out, whole."""
    tickets = list(dict.fromkeys(ds["ticket_id"]))
    cut = int(round(len(tickets) * (1 - holdout_share)))
    held = set(tickets[cut:])
    flags = [t in held for t in ds["ticket_id"]]
    train = ds.select([i for i, f in enumerate(flags) if not f])
    holdout = ds.select([i for i, f in enumerate(flags) if f])
    return train, holdout


def describe_labels(rows: list[dict], champion: EscalationPolicy, worst: int = 10) -> dict:
    """What a data scientist looks at before retraining: label balance, where agents disagree
    with the champion (and most strongly), its reliability on the labels, intent confusions."""
    from collections import Counter

    from tierline.training.calibration import reliability_curve

    escalated = [r for r in rows if r["role"] == "escalated"]
    p = np.array([champion.probability(r["features"]) for r in rows])
    y = np.array([r["label"] for r in rows])
    by_slice: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_slice.setdefault(r["slice"], []).append(i)
    gap = np.abs(p - y)
    confusions = Counter((r["intent"], r["corrected_intent"]) for r in escalated
                         if r["corrected_intent"] and r["corrected_intent"] != r["intent"])
    return {
        "balance": dict(Counter(r["escalation_needed"] for r in escalated)),
        "rows": len(rows), "positive_rate": float(y.mean()),
        "champion_mean_p": float(p.mean()),
        "by_slice": {name: {"labels": len(idx), "agent_yes_rate": float(y[idx].mean()),
                            "champion_mean_p": float(p[idx].mean())}
                     for name, idx in sorted(by_slice.items())},
        "worst_disagreements": [
            {"ticket_id": rows[i]["ticket_id"], "slice": rows[i]["slice"],
             "intent": rows[i]["intent"], "agent": rows[i]["escalation_needed"],
             "champion_p": float(p[i])} for i in np.argsort(-gap)[:worst]],
        "reliability": dict(zip(("confidence", "accuracy", "count"),
                                (a.tolist() for a in reliability_curve(p, y)))),
        "ece": expected_calibration_error(p, y, bins=10),
        "intent_confusions": [{"predicted": a, "agent": b, "count": n}
                              for (a, b), n in confusions.most_common(worst)],
    }


def plot_label_reliability(summary: dict, path: Path | None = None):
    """Reliability diagram of the champion's P(escalate) against agent labels."""
    rel = summary["reliability"]
    return plot_reliability(rel["confidence"], rel["accuracy"], rel["count"], path=path,
                            title=f"Champion vs agent labels (ECE {summary['ece']:.3f})",
                            xlabel="champion P(escalate)", ylabel="share agents said 'needed'",
                            label="champion (size = labels)", size_by_count=True, figsize=4.5)


# --- disputes and fitting -------------------------------------------------------------------

@dataclass
class SliceDispute:
    slice: str
    labels: int
    agent_yes_rate: float
    champion_mean_p: float


def find_disputes(rows: list[dict], champion: EscalationPolicy, config: RetrainConfig
                  ) -> dict[str, SliceDispute]:
    """Slices where agents' verdicts differ from the champion's probabilities by the margin."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["slice"], []).append(r)
    disputes = {}
    for name, members in sorted(groups.items()):
        yes = float(np.mean([r["label"] for r in members]))
        mean_p = float(np.mean([champion.probability(r["features"]) for r in members]))
        if len(members) >= config.min_slice_labels and abs(yes - mean_p) >= config.dispute_margin:
            disputes[name] = SliceDispute(name, len(members), yes, mean_p)
    return disputes


def fit_challenger(bootstrap_rows: list[dict], agent_rows: list[dict],
                   disputed: set[str], config: RetrainConfig) -> PolicyArtifact:
    """Refit the policy on the bootstrap rows outside disputed slices plus the agent labels."""
    kept = [r for r in bootstrap_rows if slice_of(r["features"]) not in disputed]
    rows = kept + agent_rows
    weight = np.array([1.0] * len(kept) + [config.agent_weight] * len(agent_rows))
    log.info("challenger: %d bootstrap rows (%d dropped in disputed slices) + %d agent labels",
             len(kept), len(bootstrap_rows) - len(kept), len(agent_rows))
    return to_artifact(fit_policy(rows, C=config.C, sample_weight=weight), {})


# --- the gate -------------------------------------------------------------------------------

def operating_decisions(policy: EscalationPolicy, rows: list[dict], flow: BotFlow) -> np.ndarray:
    """What the policy does at its operating point: tier thresholds plus the hard rules."""
    esc = flow.escalation
    out = []
    for r in rows:
        f = r["features"]
        rules = f["explicit_request"] > 0 or round(f["failed_attempts"] * 5) >= esc.max_failed_attempts
        out.append(rules or policy.probability(f) >= esc.threshold_for(tier_of(f)))
    return np.array(out, dtype=bool)


def policy_metrics(policy: EscalationPolicy, frozen: list[dict], holdout: list[dict],
                   flow: BotFlow) -> dict[str, float]:
    """The gate's numbers for one policy: frozen-set recall/ECE, agent-slice Brier/ECE/agreement."""
    m: dict[str, float] = {}
    if frozen:
        y = np.array([r["label"] for r in frozen])
        p = np.array([policy.probability(r["features"]) for r in frozen])
        decided = operating_decisions(policy, frozen, flow)
        m["frozen_recall"] = float(decided[y == 1].mean())
        m["frozen_escalation_rate"] = float(decided.mean())
        m["frozen_ece"] = expected_calibration_error(p, y, bins=10)
        m["frozen_brier"] = float(brier_score_loss(y, p))
    if holdout:
        y = np.array([r["label"] for r in holdout])
        p = np.clip(np.array([policy.probability(r["features"]) for r in holdout]), 1e-4, 1 - 1e-4)
        m["agent_brier"] = float(brier_score_loss(y, p))
        m["agent_log_loss"] = float(log_loss(y, p, labels=[0, 1]))
        m["agent_ece"] = expected_calibration_error(p, y, bins=10)
        m["agent_agreement"] = float((operating_decisions(policy, holdout, flow) == (y == 1)).mean())
        m["agent_mean_p"] = float(p.mean())
    return m


def intent_accuracy(holdout: list[dict]) -> float | None:
    """Accuracy of the NLU intent against agents' corrected intents on the held-out labels."""
    pairs = [(r["intent"], r["corrected_intent"]) for r in holdout if r.get("corrected_intent")]
    return float(np.mean([a == b for a, b in pairs])) if pairs else None


@dataclass
class GateDecision:
    """The gate's verdict with every number it used."""

    promote: bool
    reasons: list[str]
    champion: dict[str, float]
    challenger: dict[str, float]
    disputed_slices: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


#: metric -> (+1 higher is better / -1 lower is better, tolerance field (None: not guarded),
#: whether a gain counts as "better"). Only proper scores count as an improvement: recall at the
#: operating point rises by escalating more, which is no progress in itself.
GATE_METRICS = {
    "frozen_recall": (+1, "recall_tolerance", False),
    "frozen_ece": (-1, "ece_tolerance", False),
    "agent_brier": (-1, "brier_tolerance", True),
    "agent_log_loss": (-1, None, True),
    "agent_ece": (-1, "agent_ece_tolerance", False),
    "intent_accuracy": (+1, "intent_tolerance", True),
    "frozen_brier": (-1, None, True),
}


def row_losses(policy: EscalationPolicy, frozen: list[dict], holdout: list[dict]
               ) -> dict[str, np.ndarray]:
    """Each row's share of the proper scores the gate compares (their means are
    :func:`policy_metrics`' ``frozen_brier``, ``agent_brier`` and ``agent_log_loss``)."""
    out = {}
    for prefix, rows, names in (("frozen", frozen, ("brier",)),
                                ("agent", holdout, ("brier", "log_loss"))):
        if not rows:
            continue
        y = np.array([r["label"] for r in rows])
        p = np.array([policy.probability(r["features"]) for r in rows])
        out[f"{prefix}_brier"] = (p - y) ** 2
        if "log_loss" in names:
            p = np.clip(p, 1e-4, 1 - 1e-4)
            out[f"{prefix}_log_loss"] = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    return out


def paired_z(champion_losses: np.ndarray, challenger_losses: np.ndarray) -> float:
    """How many standard errors the challenger's mean loss is below the champion's, label by
    label (a paired comparison: both score the same labels)."""
    gain = champion_losses - challenger_losses
    se = gain.std(ddof=1) / np.sqrt(len(gain)) if len(gain) > 1 else 0.0
    return float(gain.mean() / se) if se > 0 else (np.inf if gain.mean() > 0 else 0.0)


def gate(champion: EscalationPolicy, challenger: EscalationPolicy, frozen_rows: list[dict],
         holdout: list[dict], disputes: dict[str, SliceDispute], flow: BotFlow,
         config: RetrainConfig, challenger_intent_accuracy: float | None = None) -> GateDecision:
    """Promote only if no guarded metric is worse beyond its tolerance and one is better.

    Guarded: escalation recall at the operating point and ECE on the frozen set (outside the
    disputed slices), Brier and ECE on the held-out agent labels, intent accuracy on agents'
    corrected intents. "Better" means a proper score (Brier, log-loss) or intent accuracy
    improved by ``min_gain``; a proper score's gain must also be ``min_gain_z`` standard errors
    above zero, label by label (:func:`paired_z`).

    Why the second condition: a few hundred agent labels are a small, noisy set, and a
    challenger fitted on them moves towards their yes-rate in each slice even when the labels
    are shuffled; such a challenger gained 0.005-0.02 log-loss on held-out Italian labels
    (paired z 0.5-1.3), the challenger of real labels 0.04 (z 1.9; Brier z 2.3).
    """
    frozen = [r for r in frozen_rows if slice_of(r["features"]) not in disputes]
    a = policy_metrics(champion, frozen, holdout, flow)
    b = policy_metrics(challenger, frozen, holdout, flow)
    losses_a, losses_b = row_losses(champion, frozen, holdout), row_losses(challenger, frozen, holdout)
    champion_intent = intent_accuracy(holdout)
    if champion_intent is not None:
        a["intent_accuracy"] = champion_intent
        b["intent_accuracy"] = champion_intent if challenger_intent_accuracy is None \
            else challenger_intent_accuracy
    worse, better, not_significant = [], [], []
    for name, (sign, tol_field, improvement) in GATE_METRICS.items():
        if name not in a or name not in b:
            continue
        gain = sign * (b[name] - a[name])
        if tol_field is not None and gain < -getattr(config, tol_field):
            worse.append(f"{name} worse: {a[name]:.4f} -> {b[name]:.4f} "
                         f"(tolerance {getattr(config, tol_field)})")
        if improvement and gain >= config.min_gain:
            z = paired_z(losses_a[name], losses_b[name]) if name in losses_a else np.inf
            b[f"{name}_gain_z"] = z if np.isfinite(z) else 99.0
            if z < config.min_gain_z:
                not_significant.append(f"{name} better by noise only: {a[name]:.4f} -> "
                                       f"{b[name]:.4f} (paired z {z:.2f} < {config.min_gain_z})")
            else:
                better.append(f"{name} better: {a[name]:.4f} -> {b[name]:.4f} (z {z:.2f})")
    promote = not worse and bool(better)
    reasons = worse + better + not_significant or ["no metric moved by min_gain"]
    return GateDecision(promote, reasons, a, b, [asdict(d) for d in disputes.values()])


# --- the whole retrain ----------------------------------------------------------------------

@dataclass
class RetrainResult:
    gate: GateDecision
    challenger: PolicyArtifact
    labels_version: dict
    counts: dict
    nlu_retrain_due: bool
    labels_summary: dict = field(default_factory=dict)
    nlu_run: Path | None = None
    registered_version: str | None = None
    promoted: bool = False
    stack: str = DEFAULT_STACK
    dry_run: bool = False
    run_id: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["challenger"] = self.challenger.model_dump()
        return d


def load_champion(flow: BotFlow, policy_dir: Path | None = None, registry: bool = True,
                  stack: str = DEFAULT_STACK) -> tuple[EscalationPolicy, str]:
    """The current champion policy of ``stack``: the registry's ``<its policy model>@champion``
    (``tierline-policy``, ``tierline-policy-multilingual``) when one exists, else the shipped
    (or given) policy folder; returns it with where it came from."""
    spec = stack_of(stack)
    if policy_dir is None and registry:
        from mlflow.exceptions import MlflowException

        from tierline.training import tracking
        try:
            folder = tracking.download_version(spec.policy_model, "champion",
                                               Path(_tmpdir()) / "champion")
            return (EscalationPolicy.load(flow.escalation, folder),
                    f"registry:{spec.policy_model}@champion")
        except MlflowException:
            log.info("no registered champion %s; using the shipped one", spec.policy_model)
    folder = policy_dir or spec.policy_dir
    return EscalationPolicy.load(flow.escalation, folder), f"folder:{folder}"


def _tmpdir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="tierline-retrain-")


def simulated_rows(stack: str, part: str) -> list[dict]:
    """The simulated rows ``stack``'s policy was fitted on (``part="train"``: the bootstrap) or
    evaluated on (``"test"``: the frozen guard).

    The English pair's ship in ``data/simulated``. The multilingual pair's
    (``data/simulated/multilingual``, not in the repository) are simulated on first use with the
    recipe its policy was fitted with (``tierline train policy --nlu-model
    models/nlu-multilingual ...``: 2,500 + 1,000 conversations played through its bundle, XLM-T
    it/es/pt tweets among the frustrated messages) and saved there; a few minutes, once.
    """
    from tierline.training.simulator import load_rows

    spec = stack_of(stack)
    path = spec.simulated_dir / f"policy_{part}.jsonl"
    if not path.is_file():
        _simulate_stack_sets(spec)
    return load_rows(path)


def _simulate_stack_sets(spec: Stack, n_train: int = 2500, n_test: int = 1000, seed: int = 29
                         ) -> None:
    from tierline.nlu.engine import TurnEngine
    from tierline.nlu.policy import PolicyArtifact
    from tierline.training.simulator import save_rows, simulate

    log.info("simulating the %s stack's bootstrap and frozen sets into %s (once)", spec.name,
             spec.simulated_dir)
    engine = TurnEngine.load(nlu_dir=spec.nlu_dir, policy_artifact=PolicyArtifact.untrained())
    for part, n, part_seed in (("train", n_train, seed), ("test", n_test, seed + 1)):
        save_rows(simulate(engine, part, n, part_seed, spec.xlmt_languages),
                  spec.simulated_dir / f"policy_{part}.jsonl")


def fit_nlu_challenger(train_rows: list[dict], holdout_rows: list[dict], run_dir: Path,
                       config: RetrainConfig, stack: str = DEFAULT_STACK
                       ) -> tuple[Path, float | None]:
    """Fine-tune ``stack``'s NLU on its original data plus the agents' training rows; return the
    run folder and its intent accuracy on the agents' held-out corrections.

    The multilingual NLU is trained like the shipped one: on the pruned e5 encoder
    (``config.nlu_encoder``; the default folder is built when missing), the XLM-T tweets of its
    four languages and the hand-written it/es/pt intent rows (each three times), so that a
    retrain keeps what it knew of those languages.
    """
    from tierline.nlu.analyzer import BundleAnalyzer
    from tierline.training.pipeline import train_nlu
    from tierline.training.trainer import TrainConfig

    spec = stack_of(stack)
    extra = nlu_corrections(train_rows)
    log.info("%s NLU challenger: +%d intent and +%d frustration rows from agents", stack,
             len(extra["intent"]), len(extra["frustration"]))
    encoder = None
    if spec.encoder_dir is not None:
        encoder = Path(config.nlu_encoder or spec.encoder_dir)
        if not encoder.is_dir():
            from tierline.training.vocab_prune import build_multilingual_encoder

            log.info("building the %s NLU's encoder into %s", stack, encoder)
            build_multilingual_encoder(encoder)
    if spec.handwritten_intents:
        from tierline.training.data import handwritten_intent_rows

        extra["intent"] = handwritten_intent_rows() * 3 + extra["intent"]
    train_config = TrainConfig(epochs=config.nlu_epochs, max_steps=config.nlu_max_steps)
    run = train_nlu(run_dir, train_config, encoder_path=encoder,
                    rows_per_split=config.nlu_rows_per_split,
                    xlmt_languages=spec.xlmt_languages, extra_train=extra)
    held = nlu_corrections(holdout_rows)["intent"]
    if not held:
        return run, None
    predicted = [r.intent for r in BundleAnalyzer.load(run).analyze([h["text"] for h in held])]
    return run, float(np.mean([p == h["label"] for p, h in zip(predicted, held)]))


def _gate_nlu_test_accuracy(decision: GateDecision, nlu_run: Path, champion_dir: Path,
                            config: RetrainConfig) -> None:
    """Guard the NLU challenger's accuracy on the frozen intent test split too."""
    from tierline.nlu.bundle import load_bundle_config

    name = "frozen_intent_accuracy"
    a = load_bundle_config(champion_dir).metrics.get("int8_intent_accuracy")
    b = load_bundle_config(nlu_run).metrics.get("int8_intent_accuracy")
    if a is None or b is None:
        return
    decision.champion[name], decision.challenger[name] = a, b
    if b < a - config.intent_tolerance:
        decision.promote = False
        decision.reasons.insert(0, f"{name} worse: {a:.4f} -> {b:.4f} "
                                   f"(tolerance {config.intent_tolerance})")


def retrain(database_url: str, out_dir: Path, config: RetrainConfig | None = None,
            bootstrap_rows: list[dict] | None = None, frozen_rows: list[dict] | None = None,
            flow_path: Path | None = None, champion_dir: Path | None = None,
            dry_run: bool = False, track: bool = True, shuffle_labels_seed: int | None = None,
            retrain_nlu: bool = True, champion_nlu_dir: Path | None = None,
            stack: str = DEFAULT_STACK) -> RetrainResult:
    """Export ``stack``'s labels, fit a challenger, gate it against that stack's champion, log,
    maybe promote.

    ``stack`` is the model stack whose decisions the labels are about and whose models are
    retrained (:data:`STACKS`: ``default``, the English pair; ``multilingual``, the it/es/pt
    pair), each under its own registered names. Fewer than ``config.min_labels`` labels raise
    :class:`NotEnoughLabels` before anything is fitted or logged.
    ``shuffle_labels_seed`` trains the challenger on shuffled agent labels (the gate still
    judges it on the real ones): the negative control that a working gate must reject.
    With ``config.nlu_min_corrections`` corrected intents or more (and ``retrain_nlu``), the
    intent/frustration model is fine-tuned again too (original data + agents' rows) and the
    gate also guards intent accuracy: on agents' held-out corrections and on the frozen test
    split, against ``champion_nlu_dir`` (default: the stack's shipped bundle).
    A ``dry_run`` is logged (tagged ``dry_run=true``, ``gate=dry_run``, run name
    ``dry-run-...``) but registers and promotes nothing.
    """
    spec = stack_of(stack)
    config = config or RetrainConfig()
    labels = export_labels(database_url, stack)
    escalated = sum(1 for r in labels if r["role"] == "escalated")
    if escalated < config.min_labels:
        raise NotEnoughLabels(f"{escalated} agent label{'s' * (escalated != 1)} for the {stack} "
                              f"model stack, at least {config.min_labels} needed (min_labels)")
    flow = load_flow(flow_path)
    bootstrap_rows = bootstrap_rows if bootstrap_rows is not None else simulated_rows(stack, "train")
    frozen_rows = frozen_rows if frozen_rows is not None else simulated_rows(stack, "test")
    champion, champion_source = load_champion(flow, champion_dir, registry=track, stack=stack)

    out_dir.mkdir(parents=True, exist_ok=True)
    labels.save_to_disk(str(out_dir / "labels"))
    train_ds, holdout_ds = split_recent(labels, config.holdout_share)
    train_rows, holdout_rows = list(train_ds), list(holdout_ds)
    disputes = find_disputes(list(labels), champion, config)
    fit_rows = train_rows
    if shuffle_labels_seed is not None:
        shuffled = np.random.default_rng(shuffle_labels_seed).permutation([r["label"] for r in train_rows])
        fit_rows = [{**r, "label": int(y)} for r, y in zip(train_rows, shuffled)]
        disputes_for_fit = find_disputes(fit_rows, champion, config)
    else:
        disputes_for_fit = find_disputes(train_rows, champion, config)
    artifact = fit_challenger(bootstrap_rows, fit_rows, set(disputes_for_fit), config)
    challenger = EscalationPolicy(artifact, flow.escalation)
    corrections = sum(1 for r in labels if r["corrected_intent"] and r["corrected_intent"] != r["intent"])
    nlu_run = challenger_intent = None
    if retrain_nlu and corrections >= config.nlu_min_corrections:
        nlu_run, challenger_intent = fit_nlu_challenger(train_rows, holdout_rows, out_dir / "nlu",
                                                        config, stack)
    decision = gate(champion, challenger, frozen_rows, holdout_rows, disputes, flow, config,
                    challenger_intent_accuracy=challenger_intent)
    if nlu_run is not None:
        _gate_nlu_test_accuracy(decision, nlu_run, champion_nlu_dir or spec.nlu_dir, config)
    artifact.metrics = {f"gate_{k}": v for k, v in decision.challenger.items()}
    result = RetrainResult(
        gate=decision, challenger=artifact, labels_version=dataset_version(labels),
        counts={"labels": len(labels), "train": len(train_rows), "holdout": len(holdout_rows),
                "bootstrap": len(bootstrap_rows), "frozen": len(frozen_rows),
                "intent_corrections": corrections, "champion_source": champion_source},
        nlu_retrain_due=corrections >= config.nlu_min_corrections, nlu_run=nlu_run,
        labels_summary=describe_labels(list(labels), champion), stack=stack, dry_run=dry_run)
    plot_label_reliability(result.labels_summary, out_dir / "label_reliability.png")
    (out_dir / "policy").mkdir(exist_ok=True)
    (out_dir / "policy" / "policy.json").write_text(json.dumps(artifact.model_dump(), indent=2) + "\n")
    (out_dir / "gate.json").write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    log.info("%s gate: %s (%s)%s", stack, "PROMOTE" if decision.promote else "REJECT",
             "; ".join(decision.reasons), " [dry run: nothing registered]" if dry_run else "")
    if track:
        result.run_id, result.registered_version, result.promoted = _track(
            result, out_dir, config, dry_run)
    return result


def run_name(stack: str, dry_run: bool) -> str:
    """The MLflow run name of a retrain: ``retrain-policy`` (English pair),
    ``retrain-policy-multilingual``; prefixed ``dry-run-`` for a dry run."""
    name = "retrain-policy" + ("" if stack == DEFAULT_STACK else f"-{stack}")
    return f"dry-run-{name}" if dry_run else name


def _track(result: RetrainResult, out_dir: Path, config: RetrainConfig, dry_run: bool
           ) -> tuple[str, str | None, bool]:
    """Log the retrain to MLflow; register the challenger under its stack's names and move
    ``champion`` if promoted. A dry run is logged as one (tags ``dry_run=true`` and
    ``gate=dry_run``, the verdict in ``gate_verdict``, no ``promote`` metric) and registers
    nothing. Returns the run id, the registered version and whether it was promoted."""
    import mlflow

    from tierline.training import tracking

    spec = stack_of(result.stack)
    verdict = "promote" if result.gate.promote else "reject"
    with tracking.tracked_run("tierline-retrain", run_name(result.stack, dry_run),
                              {**config.model_dump(), "dry_run": dry_run, "stack": result.stack}
                              ) as run:
        tracking.log_data_versions({"agent_labels": result.labels_version})
        tracking.log_metrics({f"champion_{k}": v for k, v in result.gate.champion.items()})
        tracking.log_metrics({f"challenger_{k}": v for k, v in result.gate.challenger.items()})
        tracking.log_metrics({f"count_{k}": v for k, v in result.counts.items()
                              if isinstance(v, int)})
        tracking.log_metrics({"gate_passed": float(result.gate.promote)} if dry_run
                             else {"promote": float(result.gate.promote)})
        mlflow.set_tags({"stack": result.stack, "policy_model": spec.policy_model,
                         "dry_run": str(dry_run).lower(), "gate_verdict": verdict,
                         "gate": "dry_run" if dry_run else verdict})
        mlflow.log_dict(result.gate.to_dict(), "gate.json")
        mlflow.log_artifact(str(out_dir / "policy" / "policy.json"), artifact_path="policy")
        mlflow.log_artifact(str(out_dir / "label_reliability.png"), artifact_path="reports")
        run_id = run.info.run_id
    if dry_run:
        return run_id, None, False
    version = tracking.register(spec.policy_model, run_id, "policy", ship=result.gate.promote)
    if result.nlu_run is not None:
        from tierline.training.pipeline import track_nlu_run

        track_nlu_run(result.nlu_run, ship=result.gate.promote, model_name=spec.nlu_model)
    return run_id, version, result.gate.promote
