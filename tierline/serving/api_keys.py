"""Client credentials of the inference APIs (``/v1/analyze``, ``/v1/decide``).

Why: both routes answered anyone, and ``/v1/decide`` turned (and answered with the stored
state of) any conversation whose id a caller sent. Now a caller sends an API key, as
``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; keys are made with
``tierline api-keys add --name N --scopes analyze,decide`` (printed once), stored as their
SHA-256 like agent tokens, scoped (a key for ``analyze`` cannot ``decide``) and revocable
(``tierline api-keys revoke ID``). Missing, unknown or revoked: 401; wrong scope: 403.

A valid key is remembered for ``api_key_cache_seconds`` (5 s by default), so the hot path
(hundreds of calls a second) costs no database round trip per call; a revocation therefore
takes effect within that time in every process. Unknown keys are never cached.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from tierline.serving.storage.db import Database
from tierline.serving.storage.models import ApiKey, utcnow
from tierline.serving.tickets.agents import token_hash

#: What a key may call: ``analyze`` (``POST /v1/analyze``), ``decide`` (``POST /v1/decide``).
SCOPES = ("analyze", "decide")
#: Keys start with this, so a leaked one is recognisable (secret scanners, logs).
KEY_PREFIX = "tlk_"
_bearer = HTTPBearer(auto_error=False, description="an API key (tierline api-keys add)")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")


@dataclass(frozen=True)
class Client:
    """The caller behind a valid key."""

    key_id: int
    name: str
    scopes: frozenset[str]


def parse_scopes(text: str) -> list[str]:
    """'analyze, decide' -> ['analyze', 'decide']; ValueError on an unknown or empty set."""
    scopes = sorted({s.strip() for s in text.split(",") if s.strip()})
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"scopes must be a comma-separated subset of {', '.join(SCOPES)}")
    return scopes


def create_api_key(db: Database, name: str, scopes: list[str]) -> tuple[int, str]:
    """Register a key; returns its id and the key itself (shown once, stored hashed)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with db.session() as s:
        row = ApiKey(name=name, key_sha256=token_hash(key), scopes=list(scopes))
        s.add(row)
        s.flush()
        return row.id, key


def list_api_keys(db: Database) -> list[dict]:
    """Every key (never the key itself): id, name, scopes, created, revoked."""
    with db.session() as s:
        return [{"id": k.id, "name": k.name, "scopes": k.scopes,
                 "created_at": k.created_at.isoformat(),
                 "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None}
                for k in s.scalars(select(ApiKey).order_by(ApiKey.id))]


def revoke_api_key(db: Database, key_id: int) -> bool:
    """Revoke a key (refused from then on); False when there is no such key."""
    with db.session() as s:
        row = s.get(ApiKey, key_id)
        if row is None:
            return False
        row.revoked_at = row.revoked_at or utcnow()
        return True


class ApiKeys:
    """Looks keys up by hash, remembering valid ones for ``cache_seconds``."""

    def __init__(self, db: Database, cache_seconds: float = 5.0) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[Client, float]] = {}
        self._lock = threading.Lock()

    def cached(self, digest: str) -> Client | None:
        """The client of a key looked up less than ``cache_seconds`` ago."""
        with self._lock:
            hit = self._cache.get(digest)
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    def lookup(self, digest: str) -> Client | None:
        """The client of an unrevoked key with this hash, from the database."""
        with self.db.session() as s:
            row = s.scalars(select(ApiKey).where(ApiKey.key_sha256 == digest)).first()
        if row is None or row.revoked_at is not None:
            return None
        # Constant-time compare of what was found, like the agent tokens' check.
        if not hmac.compare_digest(row.key_sha256, digest):
            return None
        client = Client(row.id, row.name, frozenset(row.scopes or ()))
        with self._lock:
            if len(self._cache) > 10_000:  # keys are few; a bound all the same
                self._cache.clear()
            self._cache[digest] = (client, time.monotonic() + self.cache_seconds)
        return client


def require_scope(scope: str) -> Callable:
    """A route dependency: the caller's key must be valid (401) and carry ``scope`` (403)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def client(request: Request,
                     bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
                     header: str | None = Depends(_header)) -> Client:
        key = header or (bearer.credentials if bearer is not None else None)
        if not key:
            raise HTTPException(401, "missing API key (Authorization: Bearer or X-API-Key)",
                                headers={"WWW-Authenticate": "Bearer"})
        keys: ApiKeys = request.app.state.services.api_keys
        digest = token_hash(key.strip())
        found = keys.cached(digest) or await run_in_threadpool(keys.lookup, digest)
        if found is None:
            raise HTTPException(401, "invalid or revoked API key",
                                headers={"WWW-Authenticate": "Bearer"})
        if scope not in found.scopes:
            raise HTTPException(403, f"this API key lacks the {scope!r} scope")
        return found

    return Depends(client)

