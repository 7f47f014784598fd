"""Export to ONNX, fuse transformer subgraphs, quantise to int8.

The fp32 export is checked against torch; the fused graph (onnxruntime's BERT optimizer: fused
attention, SkipLayerNorm, GELU) is what gets quantised, because fusion first and dynamic int8
quantisation second is what brings a MiniLM pass to a few milliseconds on one CPU thread.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from pathlib import Path

import onnx
import torch

from tierline.training.modeling import IntentFrustrationModel

log = logging.getLogger(__name__)

INPUT_NAMES = ["input_ids", "attention_mask", "cues"]
OUTPUT_NAMES = ["intent_logits", "frustration_logit", "sentence_embedding"]


def export_fp32(model: IntentFrustrationModel, path: Path, n_cues: int) -> Path:
    """Trace ``model`` to a single-file ONNX graph with dynamic batch and sequence axes."""
    model.eval()
    ids = torch.ones((2, 8), dtype=torch.long)
    mask = torch.ones((2, 8), dtype=torch.long)
    cues = torch.zeros((2, n_cues), dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (ids, mask, cues), str(path),
            input_names=INPUT_NAMES, output_names=OUTPUT_NAMES,
            dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                          "attention_mask": {0: "batch", 1: "sequence"},
                          "cues": {0: "batch"},
                          "intent_logits": {0: "batch"}, "frustration_logit": {0: "batch"},
                          "sentence_embedding": {0: "batch"}},
            opset_version=17, do_constant_folding=True, dynamo=False,
        )
    onnx.checker.check_model(str(path))
    return path


def fuse_transformer_ops(src: Path, dst: Path, num_heads: int, hidden_size: int) -> dict[str, int]:
    """Run onnxruntime's BERT graph optimizer; return the fused-operator counts."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(str(src), model_type="bert", num_heads=num_heads,
                               hidden_size=hidden_size, opt_level=1)
    optimized.save_model_to_file(str(dst))
    counts = Counter(n.op_type for n in onnx.load(str(dst)).graph.node)
    fused = {op: counts[op] for op in ("Attention", "MultiHeadAttention", "SkipLayerNormalization",
                                        "LayerNormalization", "Gelu", "FastGelu", "BiasGelu",
                                        "EmbedLayerNormalization") if counts[op]}
    log.info("fused graph ops: %s", fused)
    return fused


def quantise_int8(src: Path, dst: Path) -> Path:
    """Dynamic int8 quantisation of the MatMul weights (activations quantised at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)  # the quantizer logs every tensor at INFO on the root logger
    try:
        # Fused contrib ops defeat ONNX shape inference; their outputs are float tensors.
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=False,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.setLevel(level)
    return dst
