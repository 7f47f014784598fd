"""Logging for the service: one format, phone numbers masked in every record.

Customer phone numbers are personal data: a filter rewrites any run of 8-15 digits (with an
optional +) in log messages and their arguments to its first 5 characters and asterisks.
The same filter blanks secrets passed in query strings (Meta's handshake sends
``hub.verify_token`` in the URL, which the access log would otherwise print).
"""

from __future__ import annotations

import json
import logging
import logging.config
import re

_PHONE = re.compile(r"\+?\d{8,15}")
_SECRET_PARAM = re.compile(r"((?:hub\.verify_token|verify_token|access_token|token)=)[^&\s\"']+",
                           re.IGNORECASE)


def mask_phone(text: str) -> str:
    """'+447700900123' -> '+4477*******' (also inside longer strings)."""
    return _PHONE.sub(lambda m: m.group(0)[:5] + "*" * (len(m.group(0)) - 5), text)


def redact_query_secrets(text: str) -> str:
    """'...?hub.verify_token=abc&x=1' -> '...?hub.verify_token=***&x=1'."""
    return _SECRET_PARAM.sub(r"\1***", text)


class MaskPhoneNumbers(logging.Filter):
    """Rewrites the formatted message of each record with phone numbers masked and secrets in
    query strings blanked."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is logged as it is
            return True
        record.msg, record.args = redact_query_secrets(mask_phone(message)), None
        if record.exc_info and not record.exc_text:
            # Tracebacks can quote SQL parameters or payloads: mask them too (the formatter
            # uses this cached text instead of formatting the exception again).
            record.exc_text = mask_phone(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = mask_phone(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (+ exception), for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname,
                 "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = mask_phone(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_config(level: str = "INFO", fmt: str = "text") -> dict:
    """The service's logging as a ``logging.config.dictConfig`` dict: one root handler with
    the masking filter, in ``text`` or ``json``; uvicorn's loggers (its access log included)
    propagate to it.

    Given to uvicorn as ``log_config``, which applies it in every process it runs: with
    ``--workers N`` the workers are spawned fresh, and a setup done in the parent never
    reached them (no INFO lines, no access log, unformatted and unmasked warnings).
    """
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"mask": {"()": f"{__name__}.MaskPhoneNumbers"}},
        "formatters": {"text": {"format": TEXT_FORMAT}, "json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": fmt,
                                 "filters": ["mask"], "stream": "ext://sys.stderr"}},
        "root": {"level": level, "handlers": ["default"]},
        "loggers": {**{name: {"level": level, "handlers": [], "propagate": True}
                       for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
                    # httpx logs every request's URL at INFO: a Slack webhook's URL is a secret.
                    "httpx": {"level": "WARNING", "handlers": [], "propagate": True}},
    }


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Root handler with the masking filter (idempotent); ``fmt`` is ``text`` or ``json``."""
    root = logging.getLogger()
    if not any(isinstance(f, MaskPhoneNumbers) for h in root.handlers for f in h.filters):
        logging.config.dictConfig(log_config(level, fmt))
    root.setLevel(level)
