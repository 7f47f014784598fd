"""The one typed settings object of the service, read from ``TIERLINE_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from nlu.bundle import DEFAULT_BUNDLE_DIR


class Settings(BaseSettings):
    """Service configuration. Every field can be set as ``TIERLINE_<NAME>`` (or in ``.env``)."""

    model_config = SettingsConfigDict(env_prefix="TIERLINE_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_level: str = "INFO"
    nlu_model_dir: Path = DEFAULT_BUNDLE_DIR
    nlu_threads: int = Field(1, ge=1, le=64, description="onnxruntime intra-op threads")
    max_texts_per_request: int = Field(64, ge=1, le=1024)
    max_text_chars: int = Field(50_000, ge=1)


@lru_cache
def get_settings() -> Settings:
    """Settings read once per process (tests build their own ``Settings`` instead)."""
    return Settings()
