"""Serving the registry's champions: resolve ``tierline-nlu@champion`` and
``tierline-policy@champion`` in an MLflow model registry and download them once into a local
cache.

Only used when ``TIERLINE_MODEL_REGISTRY_URI`` is set (``mlflow`` is then needed: the
``registry`` extra); otherwise the service serves the folders of its settings. A model without a
champion falls back to its folder, so a fresh registry never stops the service from starting.
Watching for a new champion is :class:`tierline.serving.live.LiveWatcher`'s: an alias move is
announced to every process through the ``live_versions`` row, which pins the versions.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tierline.nlu.bundle import REGISTERED_NLU_MODEL, REGISTERED_POLICY_MODEL

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

    def champions(self) -> tuple[str | None, str | None]:
        """The champion versions of the NLU bundle and of the policy (None: no champion)."""
        with self._unavailable():
            return (self.champion_version(REGISTERED_NLU_MODEL),
                    self.champion_version(REGISTERED_POLICY_MODEL))

    def pinned(self, nlu_v: str | None, policy_v: str | None,
               fallback: ModelChoice) -> ModelChoice:
        """These versions (downloaded once), the fallback folders where a version is None."""
        with self._unavailable():
            return ModelChoice(
                nlu_dir=self.fetch(REGISTERED_NLU_MODEL, nlu_v) if nlu_v else fallback.nlu_dir,
                policy_dir=(self.fetch(REGISTERED_POLICY_MODEL, policy_v) if policy_v
                            else fallback.policy_dir),
                nlu_version=nlu_v, policy_version=policy_v)

    def choose(self, fallback: ModelChoice) -> ModelChoice:
        """The champions where they exist, the fallback folders elsewhere."""
        return self.pinned(*self.champions(), fallback)

    @contextmanager
    def _unavailable(self) -> Iterator[None]:
        """Any failure of the registry (mlflow raises many kinds; all mean "not now") as a
        :class:`RegistryError`."""
        try:
            yield
        except Exception as exc:  # noqa: BLE001
            raise RegistryError(f"model registry {self.uri!r}: {exc}") from exc
