"""The one typed settings object of the service, read from ``TIERLINE_*`` environment variables."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tierline.nlu.bundle import (
    DEFAULT_BUNDLE_DIR,
    DEFAULT_POLICY_DIR,
    MULTILINGUAL_BUNDLE_DIR,
    MULTILINGUAL_LANGUAGES,
    MULTILINGUAL_POLICY_DIR,
)
from tierline.nlu.engine import LanguageRoute
from tierline.nlu.flow import DEFAULT_FLOW_PATH


class Settings(BaseSettings):
    """Service configuration. Every field can be set as ``TIERLINE_<NAME>`` (or in ``.env``)."""

    model_config = SettingsConfigDict(env_prefix="TIERLINE_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64, description="service processes (uvicorn workers)")
    forwarded_allow_ips: str = Field(
        "127.0.0.1,::1",
        description="comma-separated addresses (or networks) of the reverse proxies whose "
                    "X-Forwarded-Proto and X-Forwarded-For are believed (uvicorn's "
                    "forwarded_allow_ips): the scheme decides whether a console form's https "
                    "Origin is ours. '*' believes any peer (only when nothing but the proxy "
                    "can reach the port); empty: the headers are ignored")
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    nlu_model_dir: Path = DEFAULT_BUNDLE_DIR
    nlu_threads: int = Field(1, ge=1, le=64, description="messages of one analysis call scored "
                                                          "at once, each on one onnxruntime thread")
    policy_dir: Path = DEFAULT_POLICY_DIR
    multilingual_nlu_dir: Path | None = Field(
        MULTILINGUAL_BUNDLE_DIR,
        description="conversations in multilingual_languages use this NLU bundle and "
                    "multilingual_policy_dir (loaded on the first such message); empty: "
                    "nlu_model_dir and policy_dir serve every language")
    multilingual_policy_dir: Path = MULTILINGUAL_POLICY_DIR
    multilingual_languages: list[str] = Field(list(MULTILINGUAL_LANGUAGES))
    flow_path: Path = DEFAULT_FLOW_PATH
    max_texts_per_request: int = Field(64, ge=1, le=1024)
    max_text_chars: int = Field(50_000, ge=1)
    max_body_bytes: int = Field(1_048_576, ge=1024, description="larger request bodies get 413")

    database_url: str = "sqlite:///./tierline.db"
    database_connect_timeout_seconds: float = Field(5.0, gt=0, description="PostgreSQL connect")
    database_statement_timeout_seconds: float = Field(
        30.0, gt=0, description="PostgreSQL statement_timeout (server side)")
    database_tcp_user_timeout_seconds: float = Field(
        10.0, gt=0, description="PostgreSQL: unacknowledged data or failed keepalives for this "
                                "long drop the connection (a silent network drop)")
    intake_queue_max: int = Field(
        1000, ge=1, description="webhook deliveries waiting for the intake's commit; more are "
                                "answered 503 at once (Meta delivers again)")
    intake_timeout_seconds: float = Field(
        10.0, gt=0, description="a webhook waits this long for its commit, then answers 503 "
                                "(Meta delivers again; a late commit makes it a duplicate)")
    api_key_cache_seconds: float = Field(
        5.0, ge=0, description="a valid API key is remembered this long per process (no "
                               "database read per call); a revocation takes effect within it")

    # MLflow model registry (optional, needs the ``registry`` extra): serve the champions.
    model_registry_uri: str | None = Field(
        None, description="MLflow tracking/registry URI; when set, the service serves "
                          "tierline-nlu@champion and tierline-policy@champion")
    model_registry_poll_seconds: float = Field(
        0.0, ge=0, description="how often to look for a new champion (0: only on admin reload)")
    model_cache_dir: Path = Field(Path(".tierline/models"),
                                  description="where registry versions are downloaded")

    # Every process follows one generation of models and flow (serving/live.py).
    live_poll_seconds: float = Field(
        1.0, gt=0, le=60,
        description="how often each process reads the live_versions row: an admin reload or a "
                    "champion move reaches every process within this, plus its model load time")

    # Prometheus (serving/metrics_dir.py): with workers > 1, every process's values are here.
    metrics_dir: Path | None = Field(
        None, description="folder of prometheus_client's multiprocess files when workers > 1, "
                          "emptied at each start (one service per folder); empty: a temporary "
                          "folder per run, removed at exit")

    # WhatsApp Cloud API. Without the app secret and verify token the webhook is disabled.
    whatsapp_app_secret: SecretStr | None = None
    whatsapp_verify_token: SecretStr | None = None
    whatsapp_access_token: SecretStr | None = None
    whatsapp_phone_number_id: str | None = None
    whatsapp_api_base: str = "https://graph.facebook.com/v21.0"
    whatsapp_send_rate: float = Field(80.0, gt=0, description="messages/s to the Graph API")
    whatsapp_send_timeout: float = Field(10.0, gt=0)
    whatsapp_max_send_age_seconds: float = Field(
        86_400.0, gt=0,
        description="a reply that could not be delivered (5xx, 429, 130429, timeouts, refused "
                    "connections) is retried until it is this old, then reported as expired "
                    "(metric, log line, its ticket); only permanent errors end it sooner")
    whatsapp_retry_base_seconds: float = Field(1.0, gt=0)
    whatsapp_retry_max_seconds: float = Field(
        300.0, gt=0, description="cap of the retry backoff, and of a Retry-After Meta asks for")
    #: Template used for agent replies outside the 24-hour customer-service window.
    whatsapp_reopen_template: str = "support_follow_up"
    whatsapp_reopen_template_language: str = "en"

    # Background work.
    worker_poll_seconds: float = Field(0.05, gt=0)
    job_lease_seconds: float = Field(60.0, gt=0, description="a 'running' job older than this is retried")
    job_max_attempts: int = Field(5, ge=1)
    sending_lease_seconds: float = Field(60.0, gt=0)
    worker_batch_size: int = Field(
        64, ge=1, le=1000,
        description="jobs one worker step claims and turns together: one model call and one "
                    "write transaction for all of them (1: one job at a time)")
    worker_threads: int = Field(
        2, ge=1, le=16,
        description="worker threads per process: a batch's database round trips and model "
                    "call overlap with the next batch's")
    sender_batch_size: int = Field(
        64, ge=1, le=1000,
        description="outbound rows one sender claim takes at most (fewer when fewer send "
                    "slots are free)")
    sender_concurrency: int = Field(
        64, ge=1, le=1024,
        description="Graph API requests in flight at once per process (keep-alive connections): "
                    "a send that hangs until whatsapp_send_timeout holds one, the others go on, "
                    "so allow for rate x timeout x the share of slow sends (80/s x 10 s x 5 % = "
                    "40) on top of the fast ones")

    # Notifications and ticket exports (all optional): each configured target gets one row of
    # the notify outbox per ticket, written with the ticket (serving/notify/outbox.py).
    public_url: str | None = Field(
        None, description="the service's address as agents reach it (https://support.example.com, "
                          "with the path prefix a proxy adds, if any): each notification links "
                          "its ticket's console page, <public_url>/console/tickets/<id>; unset: "
                          "notifications carry no link")
    notify_slack_url: str | None = None
    notify_webhook_url: str | None = None
    notify_webhook_secret: SecretStr | None = None
    zendesk_base_url: str | None = None
    zendesk_email: str | None = None
    zendesk_api_token: SecretStr | None = None
    notify_timeout_seconds: float = Field(
        10.0, gt=0, description="one HTTP delivery to Slack, the webhook or Zendesk; at most "
                                "half of notify_lease_seconds")
    notify_lease_seconds: float = Field(
        60.0, gt=0, description="a claimed delivery not recorded within this (its process "
                                "died) is tried again")
    notify_max_age_seconds: float = Field(
        86_400.0, gt=0, description="a delivery still failing (peer down, 5xx, 429, timeouts) "
                                    "is retried until it is this old, then kept as failed; "
                                    "4xx answers other than 408, 409, 425 and 429 fail it at once")
    notify_retry_base_seconds: float = Field(1.0, gt=0)
    notify_retry_max_seconds: float = Field(
        300.0, gt=0, description="cap of the retry backoff, and of a Retry-After a peer asks for")
    notify_poll_seconds: float = Field(
        0.5, gt=0, description="how often the notify outbox looks for due deliveries (a ticket "
                               "opened in this process wakes it at once)")

    # Bot runtime callback (optional): what the ticket side says to a /v1/decide conversation
    # (an agent joined, the agent's replies, the hand-back with its satisfaction question) is
    # POSTed, HMAC-signed, to the runtime that owns it, through the notify outbox (target
    # "runtime", serving/handoff/runtime.py). Unset: nothing reaches a runtime (replies are
    # reported not_sent and no score is awaited).
    runtime_callback_url: str | None = Field(
        None, description="the bot runtime's endpoint for conversation events; needs "
                          "runtime_callback_secret")
    runtime_callback_secret: SecretStr | None = Field(
        None, description="key of the X-Tierline-Signature-256 HMAC-SHA256 of each callback body")

    # Agent console (/console): signed session cookies.
    console_secret: SecretStr | None = Field(
        None, description="key that signs console session cookies; unset: a random key per "
                          "process (sessions end at restart; set it when running several workers)")
    console_session_hours: float = Field(12.0, gt=0, le=24 * 30)
    console_secure_cookie: bool = Field(False, description="mark the cookie Secure (behind HTTPS)")

    # Agent console tools: canned replies, customers' media (serving/tickets/canned.py,
    # serving/channels/whatsapp/media.py).
    canned_replies_path: Path = Field(
        DEFAULT_FLOW_PATH.parent / "canned.yaml",
        description="YAML of the canned replies agents insert, per team and language (checked "
                    "at start, read again when changed; missing: none offered)")
    media_cache_dir: Path = Field(
        Path(".tierline/media"), description="where customers' media fetched from the Graph API "
                                             "are kept (one file each, named by a hash of the "
                                             "media id)")
    media_max_bytes: int = Field(
        16 * 1024 * 1024, ge=1, description="a customer's file over this is not downloaded: the "
                                            "console shows a notice instead")

    @model_validator(mode="after")
    def _delivery_fits_its_lease(self) -> Settings:
        """A batch of deliveries stops at half its lease: one delivery must fit in that half,
        or its lease could expire while it runs and another process deliver it again."""
        if self.notify_timeout_seconds > self.notify_lease_seconds / 2:
            raise ValueError("notify_timeout_seconds must be at most half of notify_lease_seconds")
        return self

    @model_validator(mode="after")
    def _callback_is_signed(self) -> Settings:
        """A runtime callback URL without its secret would send events nobody can verify."""
        if self.runtime_callback_url and not self.runtime_callback_secret:
            raise ValueError("runtime_callback_url needs runtime_callback_secret")
        return self

    @field_validator("multilingual_nlu_dir", "runtime_callback_url", "metrics_dir", "public_url",
                     mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value in ("", None) else value

    @field_validator("public_url")
    @classmethod
    def _an_http_address(cls, value: str | None) -> str | None:
        """An http(s) address without a trailing slash (links are built by appending paths)."""
        if value is None:
            return None
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError("public_url must be an http:// or https:// address, without query "
                             "or fragment")
        return value.rstrip("/")

    def language_route(self) -> LanguageRoute | None:
        """Which conversations leave the default pair for the multilingual one (None: none)."""
        if self.multilingual_nlu_dir is None or not self.multilingual_languages:
            return None
        return LanguageRoute(tuple(self.multilingual_languages), self.multilingual_nlu_dir,
                             self.multilingual_policy_dir)

    @property
    def webhook_enabled(self) -> bool:
        """The webhook needs the app secret (signatures) and the verify token (handshake)."""
        return self.whatsapp_app_secret is not None and self.whatsapp_verify_token is not None

    @property
    def runtime_callback_enabled(self) -> bool:
        """Ticket messages of API conversations go to the bot runtime's callback."""
        return bool(self.runtime_callback_url and self.runtime_callback_secret)

    @property
    def zendesk_enabled(self) -> bool:
        """Tickets are exported to Zendesk with a base URL, an agent's email and an API token."""
        return bool(self.zendesk_base_url and self.zendesk_email and self.zendesk_api_token)

    @property
    def sending_enabled(self) -> bool:
        """Replies go out only with an access token and a phone number id."""
        return self.whatsapp_access_token is not None and self.whatsapp_phone_number_id is not None


@lru_cache
def get_settings() -> Settings:
    """Settings read once per process (tests build their own ``Settings`` instead)."""
    return Settings()
