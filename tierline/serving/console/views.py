"""The agent console's pages: sign-in, queue, ticket (transcript, context, reply, label), KPIs.

Server-rendered Jinja2 (autoescaped: customer text is always shown as text) with a little
vanilla JavaScript for live updates (Server-Sent Events from ``/console/events``, see
:mod:`.live`), notifications and local times. Every ticket operation goes through the
tickets room (``tierline.serving.tickets``), like the JSON agent API, so access rules (another team's
ticket is not found), the 24-hour window and label storage are one implementation; its
refusals become pages and messages here (:func:`_act`).
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from tierline.nlu.labels import INTENT_LABELS
from tierline.serving.console import live
from tierline.serving.console import session as sessions
from tierline.serving.console.charts import bar_chart
from tierline.serving.console.panel import ticket_panel
from tierline.serving.console.i18n import FLASH_KEYS, LANGUAGES, format_duration, pick_language, translator
from tierline.serving.console.wording import cue_names, intent_name, number, reason_sentence
from tierline.serving.kpis import KpiReport, compute_kpis
from tierline.serving.api.agents import (
    ReplyIn,
    TicketId,
    TransferIn,
    get_db,
    reply_template,
    runtime_callback,
)
from tierline.serving.storage.models import Agent, Ticket, as_utc, utcnow
from tierline.serving.tickets import (
    AlreadyClaimed,
    InvalidTransition,
    Label,
    NotYourTeam,
    TicketError,
    TicketNotFound,
    agent_for_token,
    claim_ticket,
    known_teams,
    queue_for,
    resolve_ticket,
    save_label,
    send_reply,
    ticket_detail,
    transfer_ticket,
)
from tierline.serving.tickets.queue import visible

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
STATIC_FILES = {"console.css": "text/css", "console.js": "text/javascript"}
router = APIRouter(prefix="/console", include_in_schema=False)
templates = Jinja2Templates(env=jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
    trim_blocks=True, lstrip_blocks=True))
templates.env.globals.update(duration=format_duration, intents=INTENT_LABELS, languages=LANGUAGES,
                             say_reason=reason_sentence, intent_name=intent_name,
                             cue_names=cue_names, number=number)
QueueStatus = Literal["active", "open", "claimed", "resolved"]
#: Every console page: scripts and styles from /console/static only (an injected <script> or
#: inline handler would not run even if escaping failed), no framing (clickjacking), and no
#: caching of pages that show customers' messages.
PAGE_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "x-frame-options": "DENY", "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin", "cache-control": "no-store"}


class _SignInFirst(HTTPException):
    """Pages of a signed-out browser answer with a redirect to the sign-in page."""

    def __init__(self) -> None:
        super().__init__(303, "sign in first", headers={"Location": "/console/login"})


def _signed_in(request: Request) -> tuple[sessions.ConsoleSession, Agent]:
    session = sessions.read_session(request)
    agent = session and sessions.session_agent(get_db(request), session)
    if agent is None:
        raise _SignInFirst()
    return session, agent


def _page(request: Request, name: str, session: sessions.ConsoleSession | None,
          agent: Agent | None, status_code: int = 200, **context) -> HTMLResponse:
    lang = session.lang if session else pick_language(request.query_params.get("lang"),
                                                      request.headers.get("accept-language"))
    done, error = request.query_params.get("done"), request.query_params.get("error")
    return templates.TemplateResponse(request, name, {
        "t": translator(lang), "lang": lang, "agent": agent,
        "csrf": session.csrf if session else "", "path": request.url.path,
        "done": done if done in FLASH_KEYS else None,
        "error": error if error in FLASH_KEYS else None, **context}, status_code=status_code,
        headers=PAGE_HEADERS)


def _back(ticket_id: int, **flash: str) -> RedirectResponse:
    return RedirectResponse(f"/console/tickets/{ticket_id}?{urlencode(flash)}", status_code=303)


def _refused(request: Request, session, agent) -> HTMLResponse:
    return _page(request, "error.html", session, agent, status_code=403, message="err_csrf")


# --- sign-in, sign-out, language -------------------------------------------------------------

@router.get("", response_class=RedirectResponse)
@router.get("/", response_class=RedirectResponse)
def home() -> RedirectResponse:
    return RedirectResponse("/console/queue", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request):
    return _page(request, "login.html", None, None)


@router.post("/login")
def login(request: Request, token: str = Form("", max_length=200), lang: str = Form("")):
    """Exchange the agent's token for a signed session cookie (the token is not kept)."""
    if not sessions.same_origin(request):
        return _refused(request, None, None)
    agent = agent_for_token(get_db(request), token) if token.strip() else None
    if agent is None:
        log.info("console sign-in refused")
        return _page(request, "login.html", None, None, status_code=401, bad_token=True)
    response = RedirectResponse("/console/queue", status_code=303)
    lang = pick_language(lang, request.headers.get("accept-language"))
    sessions.write_cookie(request, response, sessions.new_session(agent, lang))
    log.info("agent %s signed in to the console", agent.id)
    return response


@router.post("/logout")
def logout(request: Request, csrf: str = Form("")):
    session, agent = _signed_in(request)
    if not sessions.form_is_genuine(request, session, csrf):
        return _refused(request, session, agent)
    sessions.revoke(get_db(request), session, request.app.state.settings.console_session_hours)
    log.info("agent %s signed out of the console", agent.id)
    response = RedirectResponse("/console/login", status_code=303)
    sessions.clear_cookie(response)
    return response


@router.post("/language")
def set_language(request: Request, lang: str = Form(""), csrf: str = Form(""),
                 next: str = Form("/console/queue")):
    """Switch the console's language; back to the page the agent was on (console pages only)."""
    session, agent = _signed_in(request)
    if not sessions.form_is_genuine(request, session, csrf):
        return _refused(request, session, agent)
    target = next if next.startswith("/console/") and "//" not in next else "/console/queue"
    response = RedirectResponse(target, status_code=303)
    sessions.write_cookie(request, response, sessions.with_language(session, lang))
    return response


# --- queue -----------------------------------------------------------------------------------

@router.get("/queue", response_class=HTMLResponse)
def queue_page(request: Request, status: QueueStatus = "active"):
    session, agent = _signed_in(request)
    tickets = queue_for(get_db(request), agent, status=status)
    return _page(request, "queue.html", session, agent, tickets=tickets, status=status)


def _rendered_queue(request: Request, agent: Agent, lang: str, status: str) -> dict:
    """The queue as the page shows it: ticket ids (to spot new ones) and the rendered rows."""
    tickets = queue_for(get_db(request), agent, status=status)
    rows = templates.env.get_template("_queue_rows.html").render(
        tickets=tickets, t=translator(lang), lang=lang)
    return {"ids": [t["id"] for t in tickets], "rows_html": rows}


def _session_or_401(request: Request) -> tuple[sessions.ConsoleSession, Agent] | JSONResponse:
    """Scripts' routes: the session and agent, or a 401 (a script cannot follow a redirect
    to the sign-in page)."""
    session = sessions.read_session(request)
    agent = session and sessions.session_agent(get_db(request), session)
    if agent is None:
        return JSONResponse({"detail": "sign in first"}, status_code=401)
    return session, agent


@router.get("/queue.json")
def queue_json(request: Request, status: QueueStatus = "active") -> Response:
    """The queue's ids and rendered rows, for a script (the page itself listens to
    ``/console/events``)."""
    signed_in = _session_or_401(request)
    if isinstance(signed_in, Response):
        return signed_in
    session, agent = signed_in
    return JSONResponse(_rendered_queue(request, agent, session.lang, status),
                        headers={"cache-control": "no-store"})


@router.get("/events")
def events(request: Request, status: QueueStatus = "active",
           ticket: int | None = Query(None, ge=1, le=2_147_483_647),
           after: int = Query(0, ge=0, le=2**63 - 1)) -> Response:
    """Server-Sent Events for the page the agent has open (:mod:`.live`): the queue of its
    teams (``status`` as on the queue page), or with ``ticket`` that ticket's new messages
    (after message ``after``, the page's last) and changes. 401 without a session, 404 for a
    ticket the agent may not see."""
    signed_in = _session_or_401(request)
    if isinstance(signed_in, Response):
        return signed_in
    session, agent = signed_in
    db, t = get_db(request), translator(session.lang)
    if ticket is None:
        watch = live.QueueWatch(db, agent, status, lambda a: _rendered_queue(
            request, a, session.lang, status))
    else:
        try:
            with db.session() as s:
                visible(agent, s.get(Ticket, ticket))
        except TicketNotFound:
            return JSONResponse({"detail": "no such ticket"}, status_code=404)
        bubble = templates.env.get_template("_bubble.html")
        watch = live.TicketWatch(
            db, agent, ticket, after,
            lambda m: bubble.render(line={"id": m.id, "role": m.role, "text": m.text,
                                          "at": as_utc(m.at)}, t=t),
            lambda status_: t(f"status_{status_}"))
    return StreamingResponse(
        live.stream(watch, lambda: sessions.session_agent(db, session)),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"})


# --- ticket ----------------------------------------------------------------------------------

@router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
def ticket_page(ticket_id: TicketId, request: Request):
    session, agent = _signed_in(request)
    try:
        ticket = ticket_detail(get_db(request), agent, ticket_id)
    except TicketNotFound:
        return _page(request, "error.html", session, agent, status_code=404, message="not_found")
    engine = request.app.state.services.engine
    return _page(request, "ticket.html", session, agent, ticket=ticket,
                 teams=[team for team in known_teams(engine.flow.escalation.routing)
                        if team != ticket["team"]],
                 template_name=request.app.state.settings.whatsapp_reopen_template,
                 # the label form's default is the model's own verdict, at the model's threshold
                 frustration_threshold=engine.analyzer.config.frustration_threshold,
                 **ticket_panel(request, agent, ticket))  # customer panel, notes, media, canned


def _act(request: Request, ticket_id: int, csrf: str, operation, done) -> Response:
    """Run one ticket operation from a form: CSRF check, then redirect back with a message."""
    session, agent = _signed_in(request)
    if not sessions.form_is_genuine(request, session, csrf):
        return _refused(request, session, agent)
    try:
        result = operation(agent)
    except ValidationError:
        return _back(ticket_id, error="err_input")
    except (TicketNotFound, NotYourTeam):
        return _page(request, "error.html", session, agent, status_code=404, message="not_found")
    except InvalidTransition:
        return _back(ticket_id, error="err_resolved")
    except AlreadyClaimed:
        return _back(ticket_id, error="err_claimed")
    except TicketError:
        return _back(ticket_id, error="err_input")
    return _back(ticket_id, done=done(result) if callable(done) else done)


@router.post("/tickets/{ticket_id}/claim")
def claim(ticket_id: TicketId, request: Request, csrf: str = Form("")):
    flow = request.app.state.services.engine.flow
    return _act(request, ticket_id, csrf,
                lambda agent: claim_ticket(get_db(request), agent, ticket_id, flow,
                                           runtime_callback(request)), "claimed")


@router.post("/tickets/{ticket_id}/reply")
def reply(ticket_id: TicketId, request: Request, csrf: str = Form(""), text: str = Form("")):
    template = reply_template(request)
    return _act(request, ticket_id, csrf,
                lambda agent: send_reply(get_db(request), agent, ticket_id,
                                         ReplyIn(text=text).text, template,
                                         runtime_callback(request)),
                lambda result: f"sent_{result['sent_as']}")


@router.post("/tickets/{ticket_id}/transfer")
def transfer(ticket_id: TicketId, request: Request, csrf: str = Form(""), team: str = Form("")):
    routing = request.app.state.services.engine.flow.escalation.routing
    return _act(request, ticket_id, csrf,
                lambda agent: transfer_ticket(get_db(request), routing, agent, ticket_id,
                                              TransferIn(team=team).team), "transferred")


@router.post("/tickets/{ticket_id}/resolve")
def resolve(ticket_id: TicketId, request: Request, csrf: str = Form("")):
    flow = request.app.state.services.engine.flow
    return _act(request, ticket_id, csrf,
                lambda agent: resolve_ticket(get_db(request), flow, agent, ticket_id,
                                             runtime_callback(request)), "resolved")


@router.post("/tickets/{ticket_id}/label")
def label(ticket_id: TicketId, request: Request, csrf: str = Form(""),
          escalation_needed: str = Form(""), corrected_intent: str = Form(""),
          frustrated: str = Form(""), note: str = Form("")):
    """One click saves the whole label (the form comes pre-filled, so it is also the edit)."""
    def save(agent: Agent) -> dict:
        body = Label(escalation_needed=escalation_needed, corrected_intent=corrected_intent or None,
                       frustrated={"yes": True, "no": False}.get(frustrated),
                       note=note.strip() or None)
        return save_label(get_db(request), agent, ticket_id, body)

    return _act(request, ticket_id, csrf, save, "label_saved")


# --- KPIs ------------------------------------------------------------------------------------

def _percent(value: float) -> str:
    return f"{value * 100:.0f}%"


def _charts(report: KpiReport, t, lang: str) -> list:
    days = [(d.day.strftime("%m-%d"), d) for d in report.by_day]
    minutes = lambda v: format_duration(v, lang)  # noqa: E731 - a formatter for bar labels
    return [
        bar_chart(t("escalation_rate"), [(k, d.escalation_rate) for k, d in days], _percent),
        bar_chart(t("containment"), [(k, d.containment) for k, d in days], _percent),
        bar_chart(t("queue_depth"), [(k, float(d.queue_depth)) for k, d in days], lambda v: f"{v:.0f}"),
        bar_chart(t("first_reply"), [(k, d.first_reply_median_s) for k, d in days], minutes),
        bar_chart(t("resolution"), [(k, d.resolution_median_s) for k, d in days], minutes),
        bar_chart(t("csat"), [(k, d.csat_mean) for k, d in days], lambda v: f"{v:.1f}"),
        bar_chart(f"{t('escalations')} · {t('by_team')}",
                  [(r.team, float(r.escalations)) for r in report.by_team], lambda v: f"{v:.0f}"),
        bar_chart(f"{t('first_reply')} · {t('by_team')}",
                  [(r.team, r.first_reply_median_s) for r in report.by_team], minutes),
    ]


@router.get("/kpis", response_class=HTMLResponse)
def kpi_page(request: Request, start: date | None = Query(None), end: date | None = Query(None),
             team: str = Query("", max_length=60)):
    """Service KPIs by day and team, with charts (default: the last 14 days, all teams)."""
    session, agent = _signed_in(request)
    # A plain agent reads its own teams' KPIs only (another team's answers 404, like its
    # tickets); admins read every team's.
    mine = None if agent.is_admin else set(agent.teams)
    if team and mine is not None and team not in mine:
        raise HTTPException(404, "no such team")
    end = end or utcnow().date()
    start = start or end - timedelta(days=13)
    try:
        report = compute_kpis(get_db(request), start, end, team=team or None, teams=mine)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    t = translator(session.lang)
    routing = request.app.state.services.engine.flow.escalation.routing
    teams = [name for name in known_teams(routing) if mine is None or name in mine]
    return _page(request, "kpis.html", session, agent, report=report, start=start, end=end,
                 team=team, teams=teams, charts=_charts(report, t, session.lang))


# --- static files ----------------------------------------------------------------------------

@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    """The console's CSS and JavaScript (a fixed list: no path from the URL reaches the disk)."""
    if name not in STATIC_FILES:
        raise HTTPException(404, "no such file")
    return FileResponse(HERE / "static" / name, media_type=STATIC_FILES[name],
                        headers={"cache-control": "max-age=300"})
