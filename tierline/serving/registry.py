"""Serving the registry's champions: resolve ``tierline-nlu@champion`` and
``tierline-policy@champion`` in an MLflow model registry, download them once into a local cache,
and watch for a new champion.

Only used when ``TIERLINE_MODEL_REGISTRY_URI`` is set (``mlflow`` is then needed: the
``registry`` extra); otherwise the service serves the folders of its settings. A model without a
champion falls back to its folder, so a fresh registry never stops the service from starting.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tierline.nlu.bundle import REGISTERED_NLU_MODEL, REGISTERED_POLICY_MODEL
from tierline.serving.queue.loops import BackgroundLoop

if TYPE_CHECKING:
    from tierline.serving.services import Services

log = logging.getLogger(__name__)
CHAMPION = "champion"
#: What MLflow answers for "no such model" and "no such alias" (anything else is an outage).
NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


@dataclass(frozen=True)
class ModelChoice:
    """Where the service's models come from: two folders and, from a registry, their versions."""

    nlu_dir: Path
    policy_dir: Path
    nlu_version: str | None = None
    policy_version: str | None = None

    def describe(self) -> dict:
        return {"nlu_model_dir": str(self.nlu_dir), "nlu_version": self.nlu_version,
                "policy_dir": str(self.policy_dir), "policy_version": self.policy_version}


class RegistryError(RuntimeError):
    """The registry could not be read or a version not downloaded (the service keeps serving)."""


class ChampionRegistry:
    """Champion versions of the two registered models, downloaded into ``cache_dir/<model>/<v>``."""

    def __init__(self, uri: str, cache_dir: Path) -> None:
        from mlflow import MlflowClient

        self.uri = uri
        self.cache_dir = cache_dir
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)

    def champion_version(self, model: str) -> str | None:
        """The version the ``champion`` alias points at (None when there is none)."""
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(model, CHAMPION).version)
        except MlflowException as exc:
            if exc.error_code in NOT_FOUND:
                return None
            raise

    def fetch(self, model: str, version: str) -> Path:
        """The version's artefact folder, downloaded once (atomically renamed into the cache)."""
        import mlflow

        target = self.cache_dir / model / version
        if target.exists():
            return target
        partial = self.cache_dir / model / f".{version}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        source = self.client.get_model_version(model, version).source
        downloaded = Path(mlflow.artifacts.download_artifacts(
            artifact_uri=source, dst_path=str(partial), tracking_uri=self.uri))
        downloaded.rename(target)
        shutil.rmtree(partial, ignore_errors=True)
        log.info("downloaded %s version %s into %s", model, version, target)
        return target

    def choose(self, fallback: ModelChoice) -> ModelChoice:
        """The champions where they exist, the fallback folders elsewhere."""
        try:
            nlu_v = self.champion_version(REGISTERED_NLU_MODEL)
            policy_v = self.champion_version(REGISTERED_POLICY_MODEL)
            return ModelChoice(
                nlu_dir=self.fetch(REGISTERED_NLU_MODEL, nlu_v) if nlu_v else fallback.nlu_dir,
                policy_dir=(self.fetch(REGISTERED_POLICY_MODEL, policy_v) if policy_v
                            else fallback.policy_dir),
                nlu_version=nlu_v, policy_version=policy_v)
        except Exception as exc:  # noqa: BLE001 - mlflow raises many kinds; all mean "not now"
            raise RegistryError(f"model registry {self.uri!r}: {exc}") from exc


class ChampionWatcher(BackgroundLoop):
    """Polls the registry; when a champion alias moves, the service reloads without a restart."""

    thread_name = "tierline-registry"

    def __init__(self, services: Services, poll_seconds: float) -> None:
        super().__init__(poll_seconds)
        self.services = services

    def step(self) -> bool:
        registry = self.services.registry
        current = self.services.models
        if (registry.champion_version(REGISTERED_NLU_MODEL) == current.nlu_version
                and registry.champion_version(REGISTERED_POLICY_MODEL) == current.policy_version):
            return False
        log.info("a champion moved in the registry; reloading")
        self.services.reload()
        return False
