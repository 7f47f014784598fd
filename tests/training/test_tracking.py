"""MLflow logging and registry aliases against a local store (a temporary SQLite database)."""

from pathlib import Path

import pytest
from mlflow import MlflowClient

from tierline.nlu import Analyzer
from tierline.training import tracking
from tierline.training.pipeline import track_nlu_run, train_nlu
from tierline.training.trainer import TrainConfig


@pytest.fixture()
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def test_nlu_run_is_logged_registered_and_loadable(store, tmp_path):
    run_dir = train_nlu(tmp_path / "run", TrainConfig(max_steps=4, batch_size=16), rows_per_split=120)
    first = track_nlu_run(run_dir)
    second = track_nlu_run(run_dir, ship=True)
    client = MlflowClient(store)
    assert str(client.get_model_version_by_alias("tierline-nlu", "challenger").version) == second
    assert str(client.get_model_version_by_alias("tierline-nlu", "champion").version) == second
    assert first != second
    run = client.get_run(client.get_model_version("tierline-nlu", second).run_id)
    assert run.data.params["data.intent.train.rows"] == "120"
    assert len(run.data.params["data.intent.train.sha256_16"]) == 16
    assert "int8_intent_accuracy" in run.data.metrics
    assert run.data.params["batch_size"] == "16"
    assert run.data.tags["code_version"]
    bundle = tracking.download_version("tierline-nlu", "champion", tmp_path / "dl")
    results = Analyzer.load(bundle).analyze(["where is my order"])
    assert results[0].intent  # the registered bundle loads and runs


def test_tracking_uri_defaults_to_the_repository_store(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri() == f"sqlite:///{Path(tracking.REPO) / 'mlflow.db'}"


def test_a_sqlite_store_keeps_its_artifacts_beside_it(store, tmp_path):
    assert tracking.artifacts_location(store) == (tmp_path / "mlartifacts").as_uri()
    assert tracking.artifacts_location("http://127.0.0.1:5000") is None


def test_policy_fit_is_logged_and_registered(store, tmp_path):
    from tierline.training.policy_fit import train_policy

    report = train_policy(tmp_path / "policy", n_train=80, n_test=40, data_dir=tmp_path / "sim",
                          report_dir=tmp_path / "reports", track=True)
    client = MlflowClient(store)
    version = client.get_model_version_by_alias("tierline-policy", "challenger")
    assert str(version.version) == report["registered_version"]
    run = client.get_run(version.run_id)
    assert "test_ece" in run.data.metrics and "baseline_recall" in run.data.metrics
    assert run.data.params["data.policy.train.rows"] == str(
        sum(1 for _ in open(tmp_path / "sim" / "policy_train.jsonl")))
    artifacts = {a.path for a in client.list_artifacts(version.run_id, "policy")}
    assert artifacts == {"policy/policy.json"}
    assert {a.path for a in client.list_artifacts(version.run_id, "model_card")} == {
        "model_card/README.md"}
