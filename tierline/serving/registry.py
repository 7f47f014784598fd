"""Serving the registry's champions: resolve ``tierline-nlu@champion`` and
``tierline-policy@champion`` (the English pair) and, for the multilingual route (it/es/pt),
``tierline-nlu-multilingual@champion`` and ``tierline-policy-multilingual@champion`` in an MLflow
model registry and download them once into a local cache.

Only used when ``TIERLINE_MODEL_REGISTRY_URI`` is set (``mlflow`` is then needed: the
``registry`` extra); otherwise the service serves the folders of its settings. A model without a
champion falls back to its folder, so a fresh registry never stops the service from starting.
The multilingual champions are asked for only when the service has a multilingual route.
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
from typing import NamedTuple

from tierline.nlu.bundle import (
    REGISTERED_MULTILINGUAL_NLU_MODEL,
    REGISTERED_MULTILINGUAL_POLICY_MODEL,
    REGISTERED_NLU_MODEL,
    REGISTERED_POLICY_MODEL,
)

log = logging.getLogger(__name__)
CHAMPION = "champion"
#: What MLflow answers for "no such model" and "no such alias" (anything else is an outage).
NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


class Champions(NamedTuple):
    """Registry versions of the four served models (None: no champion, the folder serves)."""

    nlu: str | None = None
    policy: str | None = None
    multilingual_nlu: str | None = None
    multilingual_policy: str | None = None

    @classmethod
    def of(cls, holder) -> Champions:
        """The versions ``holder`` names (a :class:`ModelChoice`, a live generation)."""
        return cls(holder.nlu_version, holder.policy_version, holder.multilingual_nlu_version,
                   holder.multilingual_policy_version)


#: The registered model of each :class:`Champions` field.
REGISTERED_MODELS = Champions(REGISTERED_NLU_MODEL, REGISTERED_POLICY_MODEL,
                              REGISTERED_MULTILINGUAL_NLU_MODEL,
                              REGISTERED_MULTILINGUAL_POLICY_MODEL)


@dataclass(frozen=True)
class ModelChoice:
    """Where the service's models come from: the English pair's folders, the multilingual
    route's (None: no route), and, from a registry, their versions."""

    nlu_dir: Path
    policy_dir: Path
    nlu_version: str | None = None
    policy_version: str | None = None
    multilingual_nlu_dir: Path | None = None
    multilingual_policy_dir: Path | None = None
    multilingual_nlu_version: str | None = None
    multilingual_policy_version: str | None = None

    @property
    def versions(self) -> Champions:
        return Champions.of(self)

    def describe(self) -> dict:
        out = {"nlu_model_dir": str(self.nlu_dir), "nlu_version": self.nlu_version,
               "policy_dir": str(self.policy_dir), "policy_version": self.policy_version}
        if self.multilingual_nlu_dir is not None:
            out.update({"multilingual_nlu_model_dir": str(self.multilingual_nlu_dir),
                        "multilingual_nlu_version": self.multilingual_nlu_version,
                        "multilingual_policy_dir": str(self.multilingual_policy_dir),
                        "multilingual_policy_version": self.multilingual_policy_version})
        return out


class RegistryError(RuntimeError):
    """The registry could not be read or a version not downloaded (the service keeps serving)."""


class ChampionRegistry:
    """Champion versions of the registered models, downloaded into ``cache_dir/<model>/<v>``.
    ``multilingual``: whether the service has a multilingual route whose champions count."""

    def __init__(self, uri: str, cache_dir: Path, multilingual: bool = True) -> None:
        from mlflow import MlflowClient

        self.uri = uri
        self.cache_dir = cache_dir
        self.multilingual = multilingual
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

    def champions(self) -> Champions:
        """The champion versions of the English NLU bundle and policy and, with a multilingual
        route, of the multilingual ones (None: no champion)."""
        with self._unavailable():
            models = REGISTERED_MODELS if self.multilingual else REGISTERED_MODELS[:2]
            return Champions(*(self.champion_version(model) for model in models))

    def pinned(self, versions: Champions, fallback: ModelChoice) -> ModelChoice:
        """These versions (downloaded once), the fallback folders where a version is None
        (and for the multilingual pair when the fallback has no multilingual route)."""
        versions = Champions(*versions)
        if fallback.multilingual_nlu_dir is None:
            versions = versions._replace(multilingual_nlu=None, multilingual_policy=None)
        with self._unavailable():
            folders = [self.fetch(model, version) if version else folder for model, version, folder
                       in zip(REGISTERED_MODELS, versions,
                              (fallback.nlu_dir, fallback.policy_dir, fallback.multilingual_nlu_dir,
                               fallback.multilingual_policy_dir))]
        return ModelChoice(*folders[:2], versions.nlu, versions.policy, *folders[2:],
                           versions.multilingual_nlu, versions.multilingual_policy)

    def choose(self, fallback: ModelChoice) -> ModelChoice:
        """The champions where they exist, the fallback folders elsewhere."""
        return self.pinned(self.champions(), fallback)

    @contextmanager
    def _unavailable(self) -> Iterator[None]:
        """Any failure of the registry (mlflow raises many kinds; all mean "not now") as a
        :class:`RegistryError`."""
        try:
            yield
        except Exception as exc:  # noqa: BLE001
            raise RegistryError(f"model registry {self.uri!r}: {exc}") from exc
