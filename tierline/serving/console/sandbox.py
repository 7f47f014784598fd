"""Try the bot: admins chat with the live flow as a customer, at ``/console/sandbox``.

The admin picks the conversation's language (or lets the bot detect it, as it does on
WhatsApp), the customer's tier and the time of day (inside or outside the flow's business
hours), and writes messages or taps the bot's buttons. Each turn shows what the engine saw and
decided: intent, frustration and its cues, P(escalate) against the tier's threshold, the
reasons and the decision (the bot answers, or a handoff to a team).

Nothing is stored and nobody is messaged: the page carries the conversation itself (the
customer's messages, in a hidden field), and every request plays it again from a fresh state
through the service's own :class:`~tierline.nlu.engine.TurnEngine`, in memory (the engine's
turn does no I/O). So no row is written (no conversation, decision, ticket, outbox row, KPI or
training label), and changing the tier or the hours plays the same messages again under the
new settings. The conversation exports as a test case in the conversation-suite JSONL format
(``data/dev/conversations.jsonl``; :func:`test_case`), with the handoff turn and team the
admin expects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from tierline.nlu.engine import TurnEngine
from tierline.nlu.flow import BusinessHours
from tierline.serving.console import session as sessions
from tierline.serving.console.views import _page, _refused, _signed_in
from tierline.serving.tickets.lifecycle import known_teams

router = APIRouter()
#: Customer messages one sandbox conversation may hold.
MAX_MESSAGES = 40
Hours = Literal["open", "closed"]
AUTO = "auto"


class SandboxMessage(BaseModel):
    """A customer message of the sandbox: typed text, or a tapped button (its id and title)."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field("", max_length=4096)
    button_id: str | None = Field(None, max_length=200)


MESSAGES = TypeAdapter(list[SandboxMessage])


@dataclass(frozen=True)
class Setup:
    """How the conversation is played: language (``auto``: detected), tier, hours, and the
    moment of its first message (the others follow a minute apart)."""

    language: str
    tier: str
    hours: Hours
    start: datetime


def pick_start(hours: BusinessHours, wanted: Hours, now: datetime) -> datetime:
    """The first moment from ``now`` (in half hours) at which the team is open (``open``) or
    closed (``closed``) for the next hour, so a conversation of a few turns stays on its side;
    in the flow's timezone."""
    local = now.astimezone(ZoneInfo(hours.timezone)).replace(second=0, microsecond=0)
    for step in range(2 * 24 * 10):
        at = local + timedelta(minutes=30 * step)
        if all(hours.is_open(at + timedelta(minutes=m)) == (wanted == "open") for m in (0, 30, 60)):
            return at
    return local


def play(engine: TurnEngine, setup: Setup, messages: list[SandboxMessage]) -> list[dict]:
    """Every turn of the conversation, played from a fresh state: what the customer said, the
    bot's replies and what the engine saw and decided."""
    flow = engine.flow
    state = engine.new_state("sandbox", customer_id="sandbox", tier=setup.tier,
                             language=None if setup.language == AUTO else setup.language)
    turns: list[dict] = []
    for n, message in enumerate(messages):
        at = setup.start + timedelta(minutes=n)
        with_agent = state.step == "with_agent"
        result = engine.turn(state, message.text, now=at, button_id=message.button_id)
        state, a, d = result.state, result.analysis, result.decision
        turns.append({
            "n": n + 1, "text": message.text, "button_id": message.button_id, "at": at,
            "replies": [{"text": r.text, "buttons": list(r.buttons)} for r in result.replies],
            "intent": a.intent, "intent_confidence": a.intent_confidence,
            "frustration": a.frustration, "frustrated": a.frustrated, "cues": list(a.cues),
            "p_escalate": d.p_escalate, "threshold": flow.escalation.threshold_for(setup.tier),
            "reasons": list(d.reasons), "team": d.team, "priority": d.priority,
            "decision": ("with_agent" if with_agent else
                         "handoff" if result.handoff is not None else "bot"),
            "off_hours": bool(result.handoff and result.handoff.off_hours),
            "bot_failed": result.bot_failed, "language": state.language})
    return turns


def first_handoff(turns: list[dict]) -> dict | None:
    """The turn the conversation went to a human, if it did."""
    return next((t for t in turns if t["decision"] == "handoff"), None)


def test_case(setup: Setup, messages: list[SandboxMessage], turns: list[dict],
              expected_turn: int | None, expected_team: str | None, note: str,
              conversation_id: str) -> dict:
    """The conversation as a line of the conversation suite (``tierline evaluate
    conversations``): the customer's messages with their times, the tier, the language and
    what should happen (the turn by which a human must have it, or none, and the team)."""
    language = setup.language if setup.language != AUTO else (
        turns[-1]["language"] if turns else None)
    handoff = expected_turn is not None
    return {
        "conversation_id": conversation_id, "language": language,
        "customer": {"id": "sandbox", "tier": setup.tier},
        "messages": [{"text": m.text, **({"button_id": m.button_id} if m.button_id else {}),
                      "at": t["at"].isoformat()} for m, t in zip(messages, turns)],
        "expected": {"handoff_by_turn": expected_turn, "team": expected_team if handoff else None,
                     "trigger": "sandbox", "kind": "positive" if handoff else "negative",
                     "note": note.strip()[:300]}}


def _tiers(engine: TurnEngine) -> list[str]:
    return list(engine.flow.escalation.thresholds)


def _setup(engine: TurnEngine, language: str, tier: str, hours: str, start: str,
           played: str) -> Setup:
    """The settings as asked (unknown values fall back to the defaults); the start moment is
    kept while language, tier and hours stay as they were played, and picked afresh else."""
    flow = engine.flow
    language = language if language in (AUTO, *flow.languages) else AUTO
    tier = tier if tier in _tiers(engine) else "standard"
    hours = hours if hours in ("open", "closed") else "open"
    key = f"{language}|{tier}|{hours}"
    try:
        kept = datetime.fromisoformat(start) if played == key else None
    except ValueError:
        kept = None
    if kept is not None and kept.tzinfo is None:
        kept = None
    return Setup(language, tier, hours,  # type: ignore[arg-type]
                 kept or pick_start(flow.business_hours, hours, datetime.now(timezone.utc)))


def _messages(raw: str) -> list[SandboxMessage]:
    try:
        return MESSAGES.validate_json(raw or "[]")[:MAX_MESSAGES]
    except ValidationError:
        return []


def _admin(request: Request):
    """The signed-in admin, or the page that refuses anyone else (403)."""
    session, agent = _signed_in(request)
    if not agent.is_admin:
        return session, agent, _page(request, "error.html", session, agent, status_code=403,
                                     message="err_admin_only")
    return session, agent, None


def _render(request: Request, session, agent, setup: Setup, messages: list[SandboxMessage],
            status_code: int = 200, full: bool = False) -> HTMLResponse:
    engine: TurnEngine = request.app.state.services.engine
    turns = play(engine, setup, messages)
    handoff = first_handoff(turns)
    case = test_case(setup, messages, turns, handoff and handoff["n"],
                     handoff and handoff["team"], "", "sandbox")
    return _page(request, "sandbox.html", session, agent, status_code=status_code,
                 setup=setup, turns=turns, handoff=handoff, full=full,
                 messages_json=json.dumps([m.model_dump(exclude_none=True) for m in messages],
                                          ensure_ascii=False),
                 played=f"{setup.language}|{setup.tier}|{setup.hours}",
                 case_json=json.dumps(case, ensure_ascii=False) if messages else "",
                 flow_languages=engine.flow.languages, tiers=_tiers(engine),
                 teams=known_teams(engine.flow.escalation.routing),
                 timezone=engine.flow.business_hours.timezone, max_messages=MAX_MESSAGES)


@router.get("/sandbox", response_class=HTMLResponse)
def sandbox_page(request: Request):
    session, agent, refused = _admin(request)
    if refused is not None:
        return refused
    engine = request.app.state.services.engine
    return _render(request, session, agent, _setup(engine, AUTO, "standard", "open", "", ""), [])


class SandboxForm(BaseModel):
    """What every sandbox form posts: the session's CSRF token, the settings, and the
    conversation so far (the customer's messages as JSON, the start moment and the settings it
    was played with)."""

    csrf: str = ""
    language: str = AUTO
    tier: str = "standard"
    hours: str = "open"
    start: str = ""
    played: str = ""
    messages: str = "[]"


class TurnForm(SandboxForm):
    """A step: a typed message, a tapped button, ``replay`` (new settings) or ``reset``."""

    text: str = ""
    button_id: str = ""
    action: str = "send"


class ExportForm(SandboxForm):
    """An export: the turn by which a human must have it (empty: never), the team, a note."""

    expected_turn: str = ""
    expected_team: str = ""
    note: str = Field("", max_length=300)


def _opened(request: Request, form: SandboxForm):
    """(session, agent, setup, messages, refusal): the admin's genuine form, read; a refusal
    page for anyone else or a forged form."""
    session, agent, refused = _admin(request)
    if refused is None and not sessions.form_is_genuine(request, session, form.csrf):
        refused = _refused(request, session, agent)
    if refused is not None:
        return session, agent, None, [], refused
    engine = request.app.state.services.engine
    setup = _setup(engine, form.language, form.tier, form.hours, form.start, form.played)
    return session, agent, setup, _messages(form.messages), None


@router.post("/sandbox", response_class=HTMLResponse)
def sandbox_turn(request: Request, form: Annotated[TurnForm, Form()]):
    """One step of the sandbox: send a message (or a tapped button), play the conversation
    again under new settings, or start over. Stateless: the page posts the conversation."""
    session, agent, setup, so_far, refused = _opened(request, form)
    if refused is not None:
        return refused
    engine = request.app.state.services.engine
    if form.action == "reset":
        setup, so_far = _setup(engine, setup.language, setup.tier, setup.hours, "", ""), []
    elif form.button_id or form.text.strip():
        if len(so_far) >= MAX_MESSAGES:
            return _render(request, session, agent, setup, so_far, status_code=422, full=True)
        try:
            message = (_tapped(engine, setup, so_far, form.button_id) if form.button_id
                       else SandboxMessage(text=form.text.strip()))
        except ValidationError:
            message = None
        if message is None:
            return _render(request, session, agent, setup, so_far, status_code=422)
        so_far.append(message)
    return _render(request, session, agent, setup, so_far)


def _tapped(engine: TurnEngine, setup: Setup, so_far: list[SandboxMessage],
            button_id: str) -> SandboxMessage | None:
    """A tapped button of the bot's last replies, as WhatsApp delivers it (its id and title);
    None when the last replies showed no such button."""
    turns = play(engine, setup, so_far)
    shown = [button for t in turns[-1:] for r in t["replies"] for button in r["buttons"]]
    title = next((title for bid, title in shown if bid == button_id), None)
    return None if title is None else SandboxMessage(text=title, button_id=button_id)


@router.post("/sandbox/export")
def sandbox_export(request: Request, form: Annotated[ExportForm, Form()]) -> Response:
    """The conversation as one line of the conversation suite, to download (JSONL)."""
    session, agent, setup, so_far, refused = _opened(request, form)
    if refused is not None:
        return refused
    engine = request.app.state.services.engine
    if not so_far:
        return _render(request, session, agent, setup, so_far, status_code=422)
    turns = play(engine, setup, so_far)
    wanted = form.expected_turn
    turn = int(wanted) if wanted.isdigit() and 1 <= int(wanted) <= len(so_far) else None
    routing = engine.flow.escalation.routing
    team = form.expected_team if form.expected_team in known_teams(routing) else routing.default_team
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    case = test_case(setup, so_far, turns, turn, team, form.note, f"sandbox-{stamp}")
    return Response(json.dumps(case, ensure_ascii=False) + "\n", media_type="application/x-ndjson",
                    headers={"content-disposition": f'attachment; filename="sandbox-{stamp}.jsonl"',
                             "cache-control": "no-store", "x-content-type-options": "nosniff"})
