"""Fitting and evaluating the escalation policy on simulated conversations, and on labelled
conversations written as customers type (``--labelled``: each turn is labelled 1 from the
turn a human was needed by, 0 before it).

Model: :class:`MonotoneLogisticRegression` (logistic regression whose weights on "more reason
to escalate" features are bounded at zero from below) inside scikit-learn's
``CalibratedClassifierCV`` (isotonic, 5-fold, one final model). Both stages are monotone, so
``p_escalate`` never falls when frustration, failures or the tier rise. The fitted numbers are
exported to ``models/policy/policy.json`` for the numpy-only run time (``tierline.nlu.policy``).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import brier_score_loss, roc_auc_score

from tierline.nlu.bundle import POLICY_FILE
from tierline.nlu.flow import load_flow
from tierline.nlu.policy import FEATURE_NAMES, MONOTONE, PolicyArtifact
from tierline.training.calibration import expected_calibration_error, plot_reliability, reliability_curve
from tierline.training.evaluate import keyword_frustration

log = logging.getLogger(__name__)

#: The seed products' rule: these words, three failed replies, or caps / a negative word.
BASELINE_KEYWORDS = ("agent", "human", "operator", "operatore", "person", "representative",
                     "refund", "rimborso", "complaint", "reclamo")


class MonotoneLogisticRegression(ClassifierMixin, BaseEstimator):
    """L2-regularised logistic regression with ``coef_[j] >= 0`` where ``monotone[j]``.

    Fitted with L-BFGS-B on the mean log-loss; scikit-learn estimator contract.
    """

    def __init__(self, C: float = 1.0, monotone: tuple[bool, ...] = MONOTONE) -> None:
        self.C = C
        self.monotone = monotone

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
            ) -> MonotoneLogisticRegression:
        X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
        self.classes_ = np.array([0, 1])
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
        w = w / w.sum()
        n_features = X.shape[1]

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            coef, b = theta[:-1], theta[-1]
            z = X @ coef + b
            # log(1 + e^z) - y z, stably
            nll = np.logaddexp(0.0, z) - y * z
            p = 1.0 / (1.0 + np.exp(-z))
            grad_z = w * (p - y)
            reg = 0.5 / (self.C * len(y))
            value = float(w @ nll) + reg * float(coef @ coef)
            grad = np.concatenate([X.T @ grad_z + 2 * reg * coef, [grad_z.sum()]])
            return value, grad

        bounds = [(0.0, None) if m else (None, None) for m in self.monotone[:n_features]]
        bounds.append((None, None))
        result = minimize(loss, np.zeros(n_features + 1), jac=True, method="L-BFGS-B",
                          bounds=bounds)
        self.coef_ = result.x[:-1].reshape(1, -1)
        self.intercept_ = np.array([result.x[-1]])
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=float) @ self.coef_[0] + self.intercept_[0]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1 - p, p])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[(self.decision_function(X) >= 0).astype(int)]


def feature_matrix(rows: list[dict]) -> np.ndarray:
    """Rows' recorded policy features in FEATURE_NAMES order."""
    return np.array([[r["features"][name] for name in FEATURE_NAMES] for r in rows], dtype=float)


def fit_policy(rows: list[dict], C: float = 1.0, sample_weight: np.ndarray | None = None
               ) -> CalibratedClassifierCV:
    """Fit the monotone LR + isotonic calibration on labelled rows (simulated or agent-labelled;
    ``sample_weight`` lets a retrain weigh agents' verdicts above the bootstrap labels)."""
    X, y = feature_matrix(rows), np.array([r["label"] for r in rows])
    model = CalibratedClassifierCV(MonotoneLogisticRegression(C=C), method="isotonic", cv=5,
                                   ensemble=False)
    return model.fit(X, y, sample_weight=sample_weight)


def to_artifact(model: CalibratedClassifierCV, metrics: dict[str, float]) -> PolicyArtifact:
    """The fitted numbers as a run-time artefact (no scikit-learn needed to use it)."""
    calibrated = model.calibrated_classifiers_[0]
    lr, iso = calibrated.estimator, calibrated.calibrators[0]
    return PolicyArtifact(feature_names=list(FEATURE_NAMES), coef=lr.coef_[0].tolist(),
                          intercept=float(lr.intercept_[0]),
                          calibration_x=iso.X_thresholds_.tolist(),
                          calibration_y=iso.y_thresholds_.tolist(), metrics=metrics)


def baseline_escalates(row: dict, max_failed: int = 3) -> bool:
    """The seed products' rule on one turn."""
    text = row["text"]
    words = set(re.findall(r"\w+", text.lower()))
    return bool(words & set(BASELINE_KEYWORDS)
                or row["failed_before"] >= max_failed
                or keyword_frustration(text)
                or text.strip() == "3")


def top_share(p: np.ndarray, rate: float, seed: int = 0) -> np.ndarray:
    """Escalate exactly ``round(rate * n)`` turns, highest ``p`` first.

    Ties (isotonic calibration is piecewise constant) are broken at random with a fixed seed,
    so the escalation rate really equals ``rate``.
    """
    k = int(round(rate * len(p)))
    order = np.lexsort((np.random.default_rng(seed).random(len(p)), -p))
    chosen = np.zeros(len(p), dtype=bool)
    chosen[order[:k]] = True
    return chosen


def turns_to_handoff(rows: list[dict], escalates: np.ndarray) -> tuple[float, float]:
    """Mean turns from the first truly frustrated message to the first handoff at/after it,
    and the share of such conversations never handed off."""
    by_conv: dict[str, list[tuple[dict, bool]]] = {}
    for row, e in zip(rows, escalates):
        by_conv.setdefault(row["conversation_id"], []).append((row, bool(e)))
    delays, missed = [], 0
    for turns in by_conv.values():
        first = next((i for i, (r, _) in enumerate(turns) if r["frustrated"]), None)
        if first is None:
            continue
        hit = next((i for i, (_, e) in enumerate(turns) if e and i >= first), None)
        if hit is None:
            missed += 1
        else:
            delays.append(hit - first)
    total = len(delays) + missed
    return (float(np.mean(delays)) if delays else float("nan"),
            missed / total if total else float("nan"))


def evaluate_policy(artifact: PolicyArtifact, rows: list[dict], flow_path: Path | None = None
                    ) -> dict:
    """Policy vs the seed-product rule on held-out simulated turns, measured in one run."""
    from tierline.nlu.policy import EscalationPolicy

    flow = load_flow(flow_path)
    policy = EscalationPolicy(artifact, flow.escalation)
    y = np.array([r["label"] for r in rows])
    p = np.array([policy.probability(r["features"]) for r in rows])
    thresholds = np.array([flow.escalation.threshold_for(r["tier"]) for r in rows])
    explicit = np.array([r["features"]["explicit_request"] > 0 for r in rows])
    failed = np.array([r["failed_before"] >= flow.escalation.max_failed_attempts for r in rows])
    ours = (p >= thresholds) | explicit | failed
    base = np.array([baseline_escalates(r, flow.escalation.max_failed_attempts) for r in rows])

    base_rate = float(base.mean())
    at_equal = top_share(p, base_rate)
    oracle = top_share(np.array([r["p_lead"] for r in rows]), base_rate)
    truth = y == 1
    ours_delay, ours_missed = turns_to_handoff(rows, ours)
    base_delay, base_missed = turns_to_handoff(rows, base)
    p_lead = np.array([r["p_lead"] for r in rows])
    return {
        "turns": len(rows), "conversations": len({r["conversation_id"] for r in rows}),
        "positive_rate": float(y.mean()),
        "policy": {
            "roc_auc": float(roc_auc_score(y, p)), "brier": float(brier_score_loss(y, p)),
            "ece": expected_calibration_error(p, y, bins=10),
            "escalation_rate": float(ours.mean()),
            "recall": float(ours[truth].mean()), "precision": float(y[ours].mean()),
            "recall_at_baseline_rate": float(at_equal[truth].mean()),
            "oracle_recall_at_baseline_rate": float(oracle[truth].mean()),
            "mean_turns_frustration_to_handoff": ours_delay,
            "frustrated_conversations_never_handed_off": ours_missed,
            "mae_vs_lead_probability": float(np.abs(p - p_lead).mean()),
        },
        "rule_baseline": {
            "roc_auc": float(roc_auc_score(y, base.astype(float))),
            "brier": float(brier_score_loss(y, base.astype(float))),
            "escalation_rate": base_rate,
            "recall": float(base[truth].mean()), "precision": float(y[base].mean()),
            "mean_turns_frustration_to_handoff": base_delay,
            "frustrated_conversations_never_handed_off": base_missed,
        },
        "reliability": dict(zip(("confidence", "accuracy", "count"),
                                (a.tolist() for a in reliability_curve(p, y)))),
    }


def save_policy(artifact: PolicyArtifact, folder: Path) -> Path:
    """Write ``policy.json`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / POLICY_FILE
    path.write_text(json.dumps(artifact.model_dump(), indent=2) + "\n", encoding="utf-8")
    return path


def plot_policy_reliability(report: dict, path: Path) -> None:
    """Reliability diagram of P(escalate) on the held-out simulated turns."""
    rel = report["reliability"]
    plot_reliability(rel["confidence"], rel["accuracy"], rel["count"], path=path,
                     title=f"Escalation policy reliability (ECE {report['policy']['ece']:.3f})",
                     xlabel="P(escalate)", ylabel="share labelled 'escalate'", label="policy")


def train_policy(out_dir: Path, n_train: int = 2500, n_test: int = 1000, seed: int = 29,
                 data_dir: Path | None = None, report_dir: Path = Path("reports"),
                 flow_path: Path | None = None, track: bool = False, ship: bool = False,
                 nlu_dir: Path | None = None, xlmt_languages: tuple[str, ...] = ("english",),
                 conversations: tuple[Path, ...] = (),
                 conversation_languages: tuple[str, ...] = (),
                 conversation_weight: float = 1.0) -> dict:
    """Simulate, label, fit, evaluate and write ``policy.json``; returns the evaluation report.

    The simulated sets are saved (JSON lines, fixed seed) under ``data_dir`` so a fit can be
    repeated and inspected without re-simulating. A policy is fitted on the features of one NLU
    bundle (``nlu_dir``, default the shipped English one) and must run with that bundle: the
    multilingual bundle has its own (``models/policy-multilingual``, simulated with the XLM-T
    tweets of its languages among the frustrated messages).

    ``conversations``: labelled conversation logs whose turns join the simulated training rows
    (those in ``conversation_languages``, default the bundle's languages), each weighing
    ``conversation_weight`` simulated rows. The evaluation stays on simulated test rows; the
    conversations' own figures come from ``tierline evaluate conversations`` on a set not
    fitted on.
    """
    from tierline.nlu.engine import TurnEngine
    from tierline.training.simulator import SIMULATED_DIR, save_rows, simulate

    data_dir = data_dir or SIMULATED_DIR
    if track and nlu_dir is not None:
        log.warning("a policy for %s is not registered: tierline-policy pairs with tierline-nlu",
                    nlu_dir)
        track = False
    engine = TurnEngine.load(flow_path, nlu_dir=nlu_dir, policy_artifact=PolicyArtifact.untrained())
    train_rows = simulate(engine, "train", n_train, seed, xlmt_languages)
    test_rows = simulate(engine, "test", n_test, seed + 1, xlmt_languages)
    save_rows(train_rows, data_dir / "policy_train.jsonl")
    save_rows(test_rows, data_dir / "policy_test.jsonl")
    weights = None
    if conversations:
        languages = conversation_languages or tuple(engine.analyzer.languages)
        labelled = conversation_rows(engine, list(conversations), languages)
        log.info("%d labelled turns (%d to hand off) from %d file(s) in %s join %d simulated",
                 len(labelled), sum(r["label"] for r in labelled), len(conversations),
                 ",".join(languages), len(train_rows))
        weights = np.array([1.0] * len(train_rows) + [conversation_weight] * len(labelled))
        train_rows = train_rows + labelled
    model = fit_policy(train_rows, sample_weight=weights)
    artifact = to_artifact(model, {})
    report = evaluate_policy(artifact, test_rows, flow_path)
    artifact.metrics = {f"test_{k}": float(v) for k, v in report["policy"].items()}
    save_policy(artifact, out_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "policy_eval.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_policy_reliability(report, report_dir / "policy_reliability.png")
    if track:
        report["registered_version"] = track_policy_run(
            out_dir, report_dir, train_rows, test_rows, report,
            {"n_train": n_train, "n_test": n_test, "seed": seed, "C": 1.0,
             "xlmt_languages": ",".join(xlmt_languages),
             "conversations": ",".join(str(p) for p in conversations),
             "conversation_weight": conversation_weight,
             "calibration": "isotonic, 5-fold, ensemble=False"}, ship)
    log.info("policy written to %s: %s", out_dir, report["policy"])
    return report


def rows_fingerprint(rows: list[dict]) -> str:
    """Content hash of training rows (the policy's data version)."""
    import hashlib

    h = hashlib.sha256()
    for r in rows:
        h.update(f"{r['conversation_id']}\t{r['turn']}\t{r['text']}\t{r['label']}\n".encode())
    return h.hexdigest()[:16]


def conversation_rows(engine, paths: list[Path], languages: tuple[str, ...]) -> list[dict]:
    """One labelled row per customer turn of the labelled conversations in ``paths`` (JSON
    lines with ``expected``) whose language is in ``languages``, with the policy features
    ``engine`` computes for it (``act=False``, as the simulator plays). Turns after the one a
    human was needed by are left out: in service the conversation is with an agent by then.
    Why: the simulated conversations teach the score what the simulator's customers do; these
    teach it how people really write, and calibrate P(escalate) against their labels."""
    from tierline.training.chat_logs import read_conversations
    from tierline.training.expected_handoffs import turn_labels

    rows = []
    for path in paths:
        for conv in read_conversations(Path(path)):
            if conv.expected is None or conv.language not in languages:
                continue
            state = engine.new_state(conv.conversation_id, customer_id=conv.customer.id,
                                     tier=conv.customer.tier, language=conv.language)
            turns = [m for m in conv.messages if m.role == "customer"]
            by = conv.expected.handoff_by_turn
            for n, (msg, label) in enumerate(zip(turns, turn_labels(conv.expected, len(turns)))):
                result = engine.turn(state, msg.text, now=msg.at, button_id=msg.button_id,
                                     act=False)
                state = result.state
                rows.append({"conversation_id": conv.conversation_id, "turn": n,
                             "text": msg.text, "language": conv.language, "tier": state.tier,
                             "label": label, "source": str(path),
                             "features": {k: round(v, 5)
                                          for k, v in result.decision.features.items()}})
                if by is not None and n + 1 >= by:
                    break
    return rows


def track_policy_run(out_dir: Path, report_dir: Path, train_rows: list[dict],
                     test_rows: list[dict], report: dict, params: dict, ship: bool) -> str:
    """Log a policy fit to MLflow (params, data versions, metrics, artefacts) and register it."""
    import mlflow

    from tierline.training import tracking

    with tracking.tracked_run("tierline-policy", "policy", params) as run:
        tracking.log_data_versions({
            "policy/train": {"rows": len(train_rows), "sha256_16": rows_fingerprint(train_rows)},
            "policy/test": {"rows": len(test_rows), "sha256_16": rows_fingerprint(test_rows)}})
        tracking.log_metrics({f"test_{k}": v for k, v in report["policy"].items()})
        tracking.log_metrics({f"baseline_{k}": v for k, v in report["rule_baseline"].items()})
        mlflow.log_artifact(str(out_dir / POLICY_FILE), artifact_path="policy")
        for name in ("policy_eval.json", "policy_reliability.png"):
            mlflow.log_artifact(str(report_dir / name), artifact_path="reports")
        tracking.log_model_card()
        run_id = run.info.run_id
    return tracking.register(tracking.POLICY_MODEL, run_id, "policy", ship=ship)
