"""Support KPIs over the service database, by day and by team.

Plain functions over a :class:`~serving.storage.db.Database` and a date range, so the agent
console's KPI page and the batch evaluation job report the same figures from the same rows.

Definitions (days are UTC calendar days, ``start`` and ``end`` both included):

- *conversations*: conversations with at least one customer message that day (over a range,
  conversation-days: one active on two days counts twice, so the rates add up across days).
- *escalations*: tickets opened that day; *escalation rate* = escalations / conversations.
- *containment*: share of those conversations that got no ticket that day (the bot handled them
  alone); it is ``1 - escalation rate`` when each conversation escalates at most once a day.
- *queue depth*: tickets open or claimed at the end of the day (created before, not yet
  resolved); the ``by_team`` rows and the total take the end of the range.
- *time to first agent reply* and *resolution time*: medians, in seconds, over the tickets
  opened that day that have the event; *CSAT*: mean 1-5 score of the tickets opened that day.

Teams are the tickets' current teams (a transfer moves the ticket's history with it). By team,
*escalation rate* is the team's share of all escalations, and containment does not apply.
With ``team=`` the whole report is one team's (day by team): escalation rate is then the share
of conversations handed to that team, and containment again does not apply.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import or_, select

from tierline.serving.storage.db import Database
from tierline.serving.storage.models import MessageLog, Ticket, as_utc

#: The longest range one report may cover: a bound on rows read and on chart widths.
MAX_DAYS = 366


@dataclass(frozen=True)
class KpiRow:
    """The KPIs of one day, one team, or the whole range (``day`` and ``team`` both None)."""

    day: date | None
    team: str | None
    conversations: int
    escalations: int
    escalation_rate: float | None
    containment: float | None
    queue_depth: int
    first_reply_median_s: float | None
    resolution_median_s: float | None
    csat_mean: float | None
    csat_count: int


@dataclass(frozen=True)
class KpiReport:
    """KPIs of a date range: the total, one row per day, one row per team."""

    start: date
    end: date
    total: KpiRow
    by_day: list[KpiRow] = field(default_factory=list)
    by_team: list[KpiRow] = field(default_factory=list)


@dataclass(frozen=True)
class _TicketFacts:
    team: str
    conversation_id: str
    created: datetime
    first_reply: datetime | None
    resolved: datetime | None
    csat: int | None


def check_range(start: date, end: date) -> None:
    """Reject empty, reversed or over-long ranges with a message that says which."""
    if end < start:
        raise ValueError(f"end ({end}) is before start ({start})")
    if (end - start).days + 1 > MAX_DAYS:
        raise ValueError(f"at most {MAX_DAYS} days per report, asked for {(end - start).days + 1}")


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[midnight, next midnight) of a UTC day."""
    begin = datetime.combine(day, time.min, tzinfo=timezone.utc)
    return begin, begin + timedelta(days=1)


def compute_kpis(db: Database, start: date, end: date, team: str | None = None,
                 teams: Collection[str] | None = None) -> KpiReport:
    """The KPIs of ``start`` .. ``end`` (UTC days, inclusive): total, by day, by team;
    only ``team``'s tickets when given, only ``teams``' tickets when given (a plain agent's
    view: other teams' figures are not theirs to read)."""
    check_range(start, end)
    range_begin, range_end = day_bounds(start)[0], day_bounds(end)[1]
    active = _active_conversations(db, range_begin, range_end)
    tickets = _tickets(db, range_begin, range_end, team)
    if teams is not None:
        tickets = [t for t in tickets if t.team in teams]
        team = team or ",".join(sorted(teams))  # a subset: containment is not theirs either
    opened = [t for t in tickets if range_begin <= t.created < range_end]

    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    by_day, contained_per_day = [], []
    for day in days:
        begin, finish = day_bounds(day)
        todays = [t for t in opened if begin <= t.created < finish]
        conversations = active.get(day, set())
        contained = None if team else len(conversations - {t.conversation_id for t in todays})
        contained_per_day.append(contained)
        by_day.append(_row(day, team, len(conversations), todays, contained=contained,
                           depth=_queue_depth(tickets, finish)))

    total_conversations = sum(r.conversations for r in by_day)
    total = _row(None, team, total_conversations, opened,
                 contained=None if team else sum(contained_per_day),
                 depth=_queue_depth(tickets, range_end))

    by_team = []
    for name in sorted({t.team for t in tickets}):
        mine = [t for t in opened if t.team == name]
        row = _row(None, name, total_conversations, mine, contained=None,
                   depth=_queue_depth([t for t in tickets if t.team == name], range_end))
        share = len(mine) / len(opened) if opened else None
        by_team.append(replace(row, escalation_rate=share))
    return KpiReport(start=start, end=end, total=total, by_day=by_day, by_team=by_team)


def _row(day: date | None, team: str | None, conversations: int, opened: list[_TicketFacts],
         contained: int | None, depth: int) -> KpiRow:
    first_replies = [(t.first_reply - t.created).total_seconds() for t in opened if t.first_reply]
    resolutions = [(t.resolved - t.created).total_seconds() for t in opened if t.resolved]
    scores = [t.csat for t in opened if t.csat is not None]
    return KpiRow(
        day=day, team=team, conversations=conversations, escalations=len(opened),
        escalation_rate=len(opened) / conversations if conversations else None,
        containment=(contained / conversations if conversations and contained is not None else None),
        queue_depth=depth,
        first_reply_median_s=statistics.median(first_replies) if first_replies else None,
        resolution_median_s=statistics.median(resolutions) if resolutions else None,
        csat_mean=statistics.fmean(scores) if scores else None, csat_count=len(scores))


def _queue_depth(tickets: list[_TicketFacts], at: datetime) -> int:
    """Tickets created before ``at`` and not resolved by then."""
    return sum(1 for t in tickets if t.created < at and (t.resolved is None or t.resolved >= at))


def _active_conversations(db: Database, begin: datetime, end: datetime) -> dict[date, set[str]]:
    """Per UTC day, the conversations with a customer message that day."""
    out: dict[date, set[str]] = defaultdict(set)
    q = (select(MessageLog.conversation_id, MessageLog.at)
         .where(MessageLog.role == "customer", MessageLog.at >= begin, MessageLog.at < end))
    with db.session() as s:
        for conversation_id, at in s.execute(q.execution_options(yield_per=5000)):
            out[as_utc(at).date()].add(conversation_id)
    return out


def _tickets(db: Database, begin: datetime, end: datetime, team: str | None) -> list[_TicketFacts]:
    """Tickets opened in the range, and older ones still unresolved at its start (queue depth)."""
    q = select(Ticket.team, Ticket.conversation_id, Ticket.created_at, Ticket.first_agent_reply_at,
               Ticket.resolved_at, Ticket.csat).where(
        Ticket.created_at < end,
        or_(Ticket.created_at >= begin, Ticket.resolved_at.is_(None), Ticket.resolved_at >= begin))
    if team is not None:
        q = q.where(Ticket.team == team)
    with db.session() as s:
        return [_TicketFacts(team, conv, as_utc(created), as_utc(reply), as_utc(resolved), csat)
                for team, conv, created, reply, resolved, csat in s.execute(q)]
