"""Console sessions: a signed, HTTP-only cookie instead of the bearer token in the browser.

The cookie holds the agent id, a prefix of the stored token hash (rotating the agent's token
ends its sessions), a per-session CSRF token and the chosen language, signed and time-stamped
with ``itsdangerous``; it expires after ``console_session_hours``. Signing out also ends the
session on the server (the hash of its CSRF token is recorded as revoked until the cookie
would have expired), so a copy of the cookie is refused too. Nothing secret is in it: the
token itself never leaves the sign-in form. POST forms carry the CSRF token and are refused when
their ``Origin`` is another site (SameSite=Lax already keeps cross-site POSTs cookie-less).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, replace
from datetime import timedelta

from fastapi import Request
from fastapi.responses import Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete

from tierline.serving.console.i18n import pick_language
from tierline.serving.storage.db import dialect_insert
from tierline.serving.storage.models import Agent, RevokedConsoleSession, utcnow

log = logging.getLogger(__name__)
COOKIE = "tierline_console"
_SALT = "tierline-console-session"


@dataclass(frozen=True)
class ConsoleSession:
    """Who is signed in, the CSRF token of their forms and their language."""

    agent_id: int
    token_prefix: str
    csrf: str
    lang: str


def _serializer(request: Request) -> URLSafeTimedSerializer:
    """One signer per app: from ``console_secret``, or a random per-process key."""
    app = request.app
    signer = getattr(app.state, "console_signer", None)
    if signer is None:
        settings = app.state.settings
        if settings.console_secret is not None:
            key = settings.console_secret.get_secret_value()
        else:
            key = secrets.token_urlsafe(32)
            if settings.workers > 1:
                log.warning("TIERLINE_CONSOLE_SECRET is unset with %d workers: console sessions "
                            "signed by one worker are refused by the others", settings.workers)
        signer = URLSafeTimedSerializer(key, salt=_SALT)
        app.state.console_signer = signer
    return signer


def new_session(agent: Agent, lang: str) -> ConsoleSession:
    """A fresh session (fresh CSRF token) for an agent who just signed in."""
    return ConsoleSession(agent.id, agent.token_sha256[:16], secrets.token_urlsafe(24), lang)


def with_language(session: ConsoleSession, lang: str) -> ConsoleSession:
    return replace(session, lang=pick_language(lang))


def write_cookie(request: Request, response: Response, session: ConsoleSession) -> None:
    """Set the signed session cookie: HTTP-only, SameSite=Lax, scoped to /console."""
    settings = request.app.state.settings
    value = _serializer(request).dumps([session.agent_id, session.token_prefix, session.csrf,
                                        session.lang])
    response.set_cookie(COOKIE, value, max_age=int(settings.console_session_hours * 3600),
                        path="/console", httponly=True, samesite="lax",
                        secure=settings.console_secure_cookie)


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="lax")


def read_session(request: Request) -> ConsoleSession | None:
    """The session of a valid, unexpired, untampered cookie; None otherwise."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    max_age = int(request.app.state.settings.console_session_hours * 3600)
    try:
        agent_id, prefix, csrf, lang = _serializer(request).loads(raw, max_age=max_age)
    except (BadSignature, ValueError, TypeError):
        return None
    if not isinstance(agent_id, int) or not all(isinstance(v, str) for v in (prefix, csrf, lang)):
        return None
    return ConsoleSession(agent_id, prefix, csrf, pick_language(lang))


def _session_sha256(session: ConsoleSession) -> str:
    """The session's id on the server: the SHA-256 of its random CSRF token."""
    return hashlib.sha256(session.csrf.encode()).hexdigest()


def session_agent(db, session: ConsoleSession) -> Agent | None:
    """The agent of the session, if it still exists with the same token, may sign in (not
    expired, disabled or removed) and the session was not signed out of."""
    with db.session() as s:
        agent = s.get(Agent, session.agent_id)
        revoked = s.get(RevokedConsoleSession, _session_sha256(session)) is not None
    if agent is None or revoked or not agent.may_sign_in() or \
            not hmac.compare_digest(agent.token_sha256[:16], session.token_prefix):
        return None
    return agent


def revoke(db, session: ConsoleSession, hours: float) -> None:
    """End ``session`` on the server (sign-out): its cookie is refused from now on, until it
    would have expired anyway; records of sessions past that are dropped."""
    now = utcnow()
    with db.session() as s:
        s.execute(delete(RevokedConsoleSession).where(RevokedConsoleSession.expires_at < now))
        s.execute(dialect_insert(s, RevokedConsoleSession).values(
            session_sha256=_session_sha256(session), expires_at=now + timedelta(hours=hours))
            .on_conflict_do_nothing(index_elements=["session_sha256"]))


def same_origin(request: Request) -> bool:
    """False when the browser says the form came from another origin, or hides it
    (``Origin: null``: a sandboxed frame, a data: URL or a redirect chain from another site,
    all ways for a foreign page to post a form)."""
    origin = request.headers.get("origin")
    return not origin or origin.rstrip("/") == str(request.base_url).rstrip("/")


def form_is_genuine(request: Request, session: ConsoleSession, submitted: str | None) -> bool:
    """True when the form carries this session's CSRF token and comes from our origin."""
    return same_origin(request) and bool(submitted) and hmac.compare_digest(
        str(submitted), session.csrf)
