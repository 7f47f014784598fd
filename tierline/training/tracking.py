"""MLflow tracking and model registry for every training run.

Default store: local, in the repository's working folder (``sqlite:///<repo>/mlflow.db`` with
artefacts in ``<repo>/mlartifacts``), no server needed; ``MLFLOW_TRACKING_URI`` points it at a
team's MLflow server instead. Each run logs its parameters, the data versions (row counts and
content hashes of the exact splits), its metrics, its artefacts and the code version; the
artefact folder is registered as a model version (``tierline-nlu``, ``tierline-policy``; the
multilingual pair as ``tierline-nlu-multilingual``, ``tierline-policy-multilingual``) with the
alias ``challenger``, and ``champion`` when it ships.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from tierline.paths import PROJECT_ROOT
from tierline.nlu.bundle import (
    REGISTERED_MULTILINGUAL_NLU_MODEL,
    REGISTERED_MULTILINGUAL_POLICY_MODEL,
    REGISTERED_NLU_MODEL,
    REGISTERED_POLICY_MODEL,
)

log = logging.getLogger(__name__)

REPO = PROJECT_ROOT
DEFAULT_TRACKING_URI = f"sqlite:///{REPO / 'mlflow.db'}"
NLU_MODEL = REGISTERED_NLU_MODEL
POLICY_MODEL = REGISTERED_POLICY_MODEL
MULTILINGUAL_NLU_MODEL = REGISTERED_MULTILINGUAL_NLU_MODEL
MULTILINGUAL_POLICY_MODEL = REGISTERED_MULTILINGUAL_POLICY_MODEL


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the local SQLite store in the repository."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def code_version() -> str:
    """The git commit of the code that trained (``+dirty`` with uncommitted changes)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True,
                               text=True, timeout=5).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _experiment(name: str) -> str:
    """The experiment id, creating it with artefacts under ``mlartifacts`` for a local store."""
    mlflow.set_tracking_uri(tracking_uri())
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    return mlflow.create_experiment(name, artifact_location=artifacts_location(tracking_uri()))


def artifacts_location(uri: str) -> str | None:
    """Artefacts of a SQLite store live beside its file (``<dir>/mlartifacts``), not in the
    current directory; a server store decides for itself (None)."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()


@contextmanager
def tracked_run(experiment: str, run_name: str, params: dict) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run with the parameters and the code version logged up front."""
    experiment_id = _experiment(experiment)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.set_tag("code_version", code_version())
        yield run


def log_data_versions(versions: dict[str, dict]) -> None:
    """Row counts and content hashes of each split, as params (searchable) and a JSON file."""
    for name, v in versions.items():
        key = name.replace("/", ".")
        mlflow.log_param(f"data.{key}.rows", v["rows"])
        mlflow.log_param(f"data.{key}.sha256_16", v["sha256_16"])
    mlflow.log_dict(versions, "data_versions.json")


def log_metrics(metrics: dict[str, float]) -> None:
    """Numeric metrics only (NaN and non-numbers are skipped)."""
    clean = {k: float(v) for k, v in metrics.items()
             if isinstance(v, (int, float)) and v == v}
    mlflow.log_metrics(clean)


def log_model_card() -> None:
    """The model card (``models/README.md``) as it stood for this run, beside its artefacts."""
    card = REPO / "models" / "README.md"
    if card.is_file():
        mlflow.log_artifact(str(card), artifact_path="model_card")


def register(model_name: str, run_id: str, artifact_path: str, ship: bool = False) -> str:
    """Register ``runs:/<run>/<artifact_path>`` as a new version aliased ``challenger``
    (and ``champion`` when ``ship``); returns the version."""
    client = MlflowClient(tracking_uri())
    if not client.search_registered_models(filter_string=f"name = '{model_name}'"):
        client.create_registered_model(model_name)
    source = f"{client.get_run(run_id).info.artifact_uri}/{artifact_path}"
    version = client.create_model_version(model_name, source=source, run_id=run_id).version
    client.set_registered_model_alias(model_name, "challenger", version)
    if ship:
        client.set_registered_model_alias(model_name, "champion", version)
    log.info("registered %s version %s%s", model_name, version, " (champion)" if ship else "")
    return str(version)


def download_version(model_name: str, version: str, dst: Path) -> Path:
    """Download a registered version (a number, or an alias such as ``champion``) into ``dst``."""
    client = MlflowClient(tracking_uri())
    mv = client.get_model_version(model_name, version) if version.isdigit() else \
        client.get_model_version_by_alias(model_name, version)
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(dst),
                                                    tracking_uri=tracking_uri()))
