"""The pipeline trains, exports, fuses (12 heads), quantises and calibrates on the e5 encoder.

A tiny run (a few steps on a few rows, vocabulary pruned to those rows) checks the encoder-
configurable path end to end: the XLM-R tokenizer with its query prefix and <pad>, the fused
graph with 12 attention layers, ONNX parity with torch, and a bundle the Analyzer loads.
"""

from __future__ import annotations

import json

import pytest

from tierline.nlu import Analyzer
from tierline.training.data import XLMT_LANGUAGES, load_frustration_data, load_intent_data
from tierline.training.pipeline import PARITY_ATOL, train_nlu
from tierline.training.trainer import TrainConfig
from tierline.training.vocab_prune import build_pruned_encoder

ROWS = 48
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    intents = load_intent_data()
    frustration = load_frustration_data(xlmt_languages=tuple(XLMT_LANGUAGES))
    corpora = [t for ds in (intents, frustration) for split in ds for t in ds[split]["text"]]
    encoder = tmp_path_factory.mktemp("encoder")
    # Words of every split (this is a plumbing test, not a coverage one): a small vocabulary.
    build_pruned_encoder(encoder, corpora[:: max(1, len(corpora) // 3000)] + ["voglio un rimborso"],
                         heldout={}, words=[])
    return train_nlu(tmp_path_factory.mktemp("run"),
                     TrainConfig(max_steps=3, batch_size=8, threads=2), encoder_path=encoder,
                     rows_per_split=ROWS, xlmt_languages=tuple(XLMT_LANGUAGES))


def test_e5_run_is_a_loadable_calibrated_bundle(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    assert config["base_encoder"].startswith("multilingual-e5-small")
    assert config["metrics"]["fused_fp32_max_abs_logit_diff_vs_torch"] < PARITY_ATOL
    training = json.loads((run_dir / "training.json").read_text())
    assert training["fused_ops"]["Attention"] == 12
    assert training["xlmt_languages"] == list(XLMT_LANGUAGES)
    results = Analyzer.load(run_dir).analyze(["voglio un rimborso", "where is my order?"])
    assert all(0.0 <= r.frustration <= 1.0 and r.embedding.shape == (384,) for r in results)
