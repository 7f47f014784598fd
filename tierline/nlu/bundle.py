"""The shipped artefacts and their one loader.

An NLU bundle is ``config.json`` (this schema), ``tokenizer.json`` and the ONNX model(s);
the policy artefact is ``policy.json``. Training writes them (``tierline.training.pipeline``,
``tierline.training.policy_fit``); the Analyzer, the policy, the evaluation and the benchmark read them
through :func:`load_bundle_config` and :func:`read_policy_json`, beside each other in
``models/``.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field

from tierline import paths
from tierline.nlu.cues import CUE_NAMES
from tierline.nlu.labels import INTENT_LABELS

MODELS_DIR = paths.MODELS_DIR
#: The shipped default bundle (``models/nlu`` in the repository).
DEFAULT_BUNDLE_DIR = MODELS_DIR / "nlu"
#: The multilingual bundle (multilingual-e5-small, en/it/es/pt; see models/README.md).
MULTILINGUAL_BUNDLE_DIR = MODELS_DIR / "nlu-multilingual"
#: The shipped escalation policy (``models/policy``).
DEFAULT_POLICY_DIR = MODELS_DIR / "policy"
#: The policy fitted on the multilingual bundle's outputs (a policy runs with its own bundle).
MULTILINGUAL_POLICY_DIR = MODELS_DIR / "policy-multilingual"
#: Languages the shipped service sends to the multilingual pair; English stays on the default.
MULTILINGUAL_LANGUAGES = ("it", "es", "pt")
POLICY_FILE = "policy.json"
#: Names of the models in an MLflow registry (training registers, serving loads champions):
#: the English pair, and the multilingual pair that serves it/es/pt conversations.
REGISTERED_NLU_MODEL = "tierline-nlu"
REGISTERED_POLICY_MODEL = "tierline-policy"
REGISTERED_MULTILINGUAL_NLU_MODEL = "tierline-nlu-multilingual"
REGISTERED_MULTILINGUAL_POLICY_MODEL = "tierline-policy-multilingual"

CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
INT8_MODEL_FILE = "model.int8.onnx"
FP32_MODEL_FILE = "model.fp32.onnx"


class FrustrationCalibration(BaseModel):
    """Platt scaling of the frustration logit: ``p = sigmoid(scale * logit + shift)``."""

    scale: float = 1.0
    shift: float = 0.0


class BundleConfig(BaseModel):
    """What a bundle's ``config.json`` holds; validated on load so a broken bundle fails early."""

    format_version: int = 1
    base_encoder: str = Field(description="where the encoder weights came from")
    name: str | None = Field(None, description="bundle name in results (default: its folder)")
    version: str | None = Field(
        None, description="bundle version in results (default: a hash of the ONNX file)")
    languages: list[str] = Field(
        default_factory=lambda: ["en"],
        description="ISO 639-1 languages it was trained and validated on; analysing another "
                    "language adds a warning to the result")
    intent_labels: list[str]
    cue_names: list[str]
    max_length: int = Field(gt=2, le=512, description="token window; longer input is truncated")
    intent_temperature: float = Field(gt=0, description="temperature scaling fitted on validation")
    frustration_calibration: FrustrationCalibration = FrustrationCalibration()
    frustration_threshold: float = Field(0.5, ge=0, le=1)
    model_file: str = INT8_MODEL_FILE
    metrics: dict[str, float] = Field(default_factory=dict)


def load_bundle_config(bundle_dir: Path) -> BundleConfig:
    """Read and validate ``bundle_dir/config.json``; refuse a bundle built for other labels or cues."""
    path = Path(bundle_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no model bundle at {bundle_dir} (missing {CONFIG_FILE})")
    config = BundleConfig.model_validate(json.loads(path.read_text(encoding="utf-8")))
    if tuple(config.intent_labels) != INTENT_LABELS:
        raise ValueError(f"bundle {bundle_dir} was trained for another intent label set")
    if tuple(config.cue_names) != CUE_NAMES:
        raise ValueError(f"bundle {bundle_dir} was trained for another cue set")
    return config


def save_bundle_config(bundle_dir: Path, config: BundleConfig) -> Path:
    """Write ``config.json`` into ``bundle_dir`` (pretty-printed: it is read by people too)."""
    path = Path(bundle_dir) / CONFIG_FILE
    path.write_text(json.dumps(config.model_dump(), indent=2) + "\n", encoding="utf-8")
    return path


def read_policy_json(folder: Path | None = None) -> dict:
    """The raw ``policy.json`` of a policy folder (default: the shipped ``models/policy``)."""
    folder = Path(folder) if folder is not None else DEFAULT_POLICY_DIR
    path = folder / POLICY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no policy artefact at {folder} (missing {POLICY_FILE})")
    return json.loads(path.read_text(encoding="utf-8"))
