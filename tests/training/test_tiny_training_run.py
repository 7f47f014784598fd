"""A tiny end-to-end training run produces a loadable, calibrated ONNX bundle."""

import json

import pytest

from tierline.nlu import Analyzer
from tierline.nlu.labels import INTENT_LABELS
from tierline.training.pipeline import PARITY_ATOL, ship_bundle, train_nlu
from tierline.training.trainer import TrainConfig


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    return train_nlu(folder, TrainConfig(max_steps=8, batch_size=16, threads=2), rows_per_split=160)


def test_run_writes_a_loadable_bundle(run_dir, tmp_path):
    shipped = ship_bundle(run_dir, tmp_path / "bundle")
    assert {p.name for p in shipped.iterdir()} == {"model.int8.onnx", "tokenizer.json",
                                                    "config.json", "training.json"}
    results = Analyzer.load(shipped).analyze(["where is my order", "THIS IS USELESS!!!"])
    assert [len(r.intents) for r in results] == [len(INTENT_LABELS)] * 2


def test_run_records_parity_calibration_and_data_versions(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    metrics = config["metrics"]
    assert metrics["fp32_max_abs_logit_diff_vs_torch"] < PARITY_ATOL
    assert metrics["fused_fp32_max_abs_logit_diff_vs_torch"] < PARITY_ATOL
    assert config["intent_temperature"] > 0
    assert 0 < config["frustration_threshold"] < 1
    training = json.loads((run_dir / "training.json").read_text())
    assert training["data"]["intent/train"]["rows"] == 160
    assert len(training["data"]["intent/train"]["sha256_16"]) == 16
    assert training["fused_ops"]["Attention"] == 6
