"""ONNX export of a tiny random model matches torch; fusion and int8 keep it working."""

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from tierline.nlu.analyzer import BundleAnalyzer
from tierline.nlu.bundle import BundleConfig, save_bundle_config
from tierline.nlu.cues import CUE_NAMES
from tierline.nlu.labels import INTENT_LABELS
from tierline.training.export_onnx import export_fp32, fuse_transformer_ops, quantise_int8
from tierline.training.modeling import IntentFrustrationModel, default_encoder_path
from tierline.training.trainer import predict_logits

TEXTS = ["where is my order", "THIS IS USELESS!!!", "hi", "refund " * 40, "😡 ok?"]


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    torch.manual_seed(0)
    encoder = BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=4, intermediate_size=64,
                                   attn_implementation="eager"))
    model = IntentFrustrationModel(encoder, len(INTENT_LABELS), len(CUE_NAMES)).eval()
    folder = tmp_path_factory.mktemp("tiny")
    (folder / "tokenizer.json").write_bytes((default_encoder_path() / "tokenizer.json").read_bytes())
    save_bundle_config(folder, BundleConfig(base_encoder="random tiny BERT",
                                            intent_labels=list(INTENT_LABELS),
                                            cue_names=list(CUE_NAMES), max_length=32,
                                            intent_temperature=1.0))
    export_fp32(model, folder / "model.fp32.onnx", len(CUE_NAMES))
    fused = fuse_transformer_ops(folder / "model.fp32.onnx", folder / "model.fused.onnx", 4, 32)
    quantise_int8(folder / "model.fused.onnx", folder / "model.int8.onnx")
    return model, folder, fused


@pytest.mark.parametrize("file", ["model.fp32.onnx", "model.fused.onnx"])
def test_onnx_matches_torch(tiny_bundle, file):
    model, folder, _ = tiny_bundle
    ref_intent, ref_frus = predict_logits(model, folder / "tokenizer.json", TEXTS, max_length=32)
    intent, frus = BundleAnalyzer.load(folder, model_file=file).raw_logits(TEXTS)
    np.testing.assert_allclose(intent, ref_intent, atol=1e-4)
    np.testing.assert_allclose(frus, ref_frus, atol=1e-4)


def test_fusion_produced_fused_attention(tiny_bundle):
    _, _, fused = tiny_bundle
    assert fused.get("Attention", 0) == 2
    assert fused.get("SkipLayerNormalization", 0) >= 2


def test_int8_model_runs_and_stays_close(tiny_bundle):
    model, folder, _ = tiny_bundle
    ref_intent, _ = predict_logits(model, folder / "tokenizer.json", TEXTS, max_length=32)
    intent, frus = BundleAnalyzer.load(folder, model_file="model.int8.onnx").raw_logits(TEXTS)
    assert intent.shape == ref_intent.shape and frus.shape == (len(TEXTS),)
    # A random 2-layer model has logits of spread 0.35, so int8's rounding shows in them: on one
    # CPU the largest gap was 0.65 (the 40-word text), on another under 0.5. What must hold is
    # that int8 keeps the model's answers: the logits move together and the top intent stays.
    assert np.abs(intent - ref_intent).mean() < 0.15
    assert np.corrcoef(intent.ravel(), ref_intent.ravel())[0, 1] > 0.9
    assert (intent.argmax(axis=1) == ref_intent.argmax(axis=1)).mean() >= 0.8


def test_cues_can_only_raise_the_frustration_logit(tiny_bundle):
    model, _, _ = tiny_bundle
    ids = torch.ones((1, 4), dtype=torch.long)
    mask = torch.ones((1, 4), dtype=torch.long)
    with torch.no_grad():
        _, calm, _ = model(ids, mask, torch.zeros((1, len(CUE_NAMES))))
        for k in range(len(CUE_NAMES)):
            cues = torch.zeros((1, len(CUE_NAMES)))
            cues[0, k] = 1.0
            _, loud, _ = model(ids, mask, cues)
            assert loud.item() > calm.item()
