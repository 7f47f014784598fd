"""Policy fitting: constraints hold, the exported artefact equals scikit-learn, calibration holds."""

import numpy as np
import pytest

from tierline.nlu.flow import load_flow
from tierline.nlu.policy import FEATURE_NAMES, MONOTONE, EscalationPolicy, PolicyArtifact
from tierline.training.labelling import TurnTruth, lead_probability
from tierline.training.policy_fit import (
    MonotoneLogisticRegression,
    evaluate_policy,
    feature_matrix,
    fit_policy,
    to_artifact,
)
from tierline.training.simulator import SIMULATED_DIR, load_rows


@pytest.fixture(scope="module")
def test_rows():
    return load_rows(SIMULATED_DIR / "policy_test.jsonl")


@pytest.fixture(scope="module")
def train_rows():
    return load_rows(SIMULATED_DIR / "policy_train.jsonl")[:3000]


def test_monotone_weights_are_non_negative_even_against_the_data():
    rng = np.random.default_rng(0)
    X = rng.random((2000, 2))
    y = (rng.random(2000) < 1 / (1 + np.exp(-(2 - 3 * X[:, 0] + 2 * X[:, 1])))).astype(int)
    free = MonotoneLogisticRegression(monotone=(False, False)).fit(X, y)
    constrained = MonotoneLogisticRegression(monotone=(True, True)).fit(X, y)
    assert free.coef_[0, 0] < -1.0  # the data says "negative"
    assert constrained.coef_[0, 0] == 0.0 and constrained.coef_[0, 1] > 1.0


def test_exported_artifact_reproduces_scikit_learn(train_rows):
    model = fit_policy(train_rows)
    artifact = to_artifact(model, {})
    policy = EscalationPolicy(artifact, load_flow().escalation)
    X = feature_matrix(train_rows[:500])
    expected = model.predict_proba(X)[:, 1]
    got = np.array([policy.probability(r["features"]) for r in train_rows[:500]])
    np.testing.assert_allclose(got, expected, atol=1e-9)
    coef = np.array(artifact.coef)
    assert (coef[np.array(MONOTONE)] >= 0).all()


def test_shipped_policy_is_calibrated_and_beats_the_rule_baseline(test_rows):
    artifact = EscalationPolicy.load(load_flow().escalation).artifact
    report = evaluate_policy(artifact, test_rows)
    assert report["policy"]["ece"] <= 0.05
    assert report["policy"]["roc_auc"] > report["rule_baseline"]["roc_auc"] + 0.1
    ours = report["policy"]["recall_at_baseline_rate"]
    assert ours >= report["rule_baseline"]["recall"] + 0.05
    # The labelling function's own probabilities bound what any model can reach.
    assert ours >= report["policy"]["oracle_recall_at_baseline_rate"] - 0.06
    assert report["policy"]["mean_turns_frustration_to_handoff"] <= \
        report["rule_baseline"]["mean_turns_frustration_to_handoff"]


def test_labelling_function_orders_the_triggers():
    calm = TurnTruth("routine", "track_order", False, 0, 0, False)
    angry = TurnTruth("frustrated", None, True, 0, 0, False)
    angry_again = TurnTruth("frustrated", None, True, 0, 1, False)
    explicit = TurnTruth("explicit", "contact_human_agent", False, 0, 0, False)
    assert lead_probability(calm, "standard") < 0.05
    assert lead_probability(angry, "standard") < lead_probability(angry_again, "standard")
    assert lead_probability(angry, "standard") < lead_probability(angry, "vip")
    assert lead_probability(explicit, "standard") > 0.95


def test_untrained_artifact_matches_the_feature_set():
    assert PolicyArtifact.untrained().feature_names == list(FEATURE_NAMES)


def _labelled_log(tmp_path):
    import json

    path = tmp_path / "labelled.jsonl"
    conversations = [
        {"conversation_id": "c1", "language": "en", "customer": {"id": "+447700912345"},
         "messages": [{"text": "where is ND-100000?"}, {"text": "I want a human now"},
                      {"text": "hello??"}],
         "expected": {"handoff_by_turn": 2, "team": "general", "trigger": "explicit",
                      "kind": "positive"}},
        {"conversation_id": "c2", "language": "en", "customer": {"id": "+447700912346"},
         "messages": [{"text": "hi"}, {"text": "thanks, bye"}],
         "expected": {"handoff_by_turn": None, "team": None, "trigger": "none",
                      "kind": "routine"}},
        {"conversation_id": "c3", "language": "it", "customer": {"id": "+393331234567"},
         "messages": [{"text": "ciao"}],
         "expected": {"handoff_by_turn": None, "team": None, "trigger": "none",
                      "kind": "routine"}},
    ]
    path.write_text("".join(json.dumps(c) + "\n" for c in conversations))
    return path


def test_labelled_conversations_give_a_row_per_turn_until_a_human_was_needed(tmp_path):
    from tierline.nlu.engine import TurnEngine
    from tierline.training.policy_fit import conversation_rows

    engine = TurnEngine.load(policy_artifact=PolicyArtifact.untrained())
    rows = conversation_rows(engine, [_labelled_log(tmp_path)], ("en",))
    assert [(r["conversation_id"], r["turn"], r["label"]) for r in rows] == [
        ("c1", 0, 0), ("c1", 1, 1), ("c2", 0, 0), ("c2", 1, 0)]  # no Italian, nothing after turn 2
    assert all(set(r["features"]) == set(FEATURE_NAMES) for r in rows)
    assert rows[1]["features"]["explicit_request"] == 1.0


def test_a_policy_fits_on_simulated_and_labelled_turns(tmp_path):
    from tierline.training.policy_fit import train_policy

    report = train_policy(tmp_path / "policy", n_train=60, n_test=30, data_dir=tmp_path / "sim",
                          report_dir=tmp_path / "reports", conversations=(_labelled_log(tmp_path),),
                          conversation_languages=("en",), conversation_weight=3.0)
    artifact = PolicyArtifact.model_validate_json((tmp_path / "policy" / "policy.json").read_text())
    assert artifact.feature_names == list(FEATURE_NAMES)
    assert 0.0 <= report["policy"]["ece"] <= 1.0
