"""KPIs from a known set of conversations and tickets, checked against figures worked out by
hand (the comments show the arithmetic), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from tierline.serving.kpis import compute_kpis
from tierline.serving.storage.db import Database
from tierline.serving.storage.models import MessageLog, Ticket

D1, D2, D3 = date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)


def at(day: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def db(database_url):
    database = Database(database_url)
    database.migrate()
    with database.session() as s:
        customer = [("c1", at(D1, 9)), ("c1", at(D1, 9, 30)), ("c2", at(D1, 11)), ("c3", at(D1, 15)),
                    ("c4", at(D1, 23, 59, 59)),
                    ("c1", at(D2, 8)), ("c5", at(D2, 8, 30)), ("c6", at(D2, 18)),
                    # outside the range: the second before it starts, the instant it ends
                    ("c7", datetime(2026, 3, 1, 23, 59, 59, tzinfo=timezone.utc)),
                    ("c7", datetime(2026, 3, 5, 0, 0, 0, tzinfo=timezone.utc))]
        s.add_all(MessageLog(conversation_id=c, role="customer", text="hi", at=t) for c, t in customer)
        s.add(MessageLog(conversation_id="c1", role="bot", text="hello", at=at(D3, 10)))  # not a customer
        ticket = dict(priority="normal", priority_rank=1, context={})
        s.add_all([
            Ticket(conversation_id="c1", team="billing", created_at=at(D1, 10),
                   first_agent_reply_at=at(D1, 10, 5), resolved_at=at(D1, 11), csat=4,
                   status="resolved", **ticket),
            Ticket(conversation_id="c2", team="general", created_at=at(D1, 12),
                   first_agent_reply_at=at(D1, 12, 20), resolved_at=at(D2, 12), csat=2,
                   status="resolved", **ticket),
            Ticket(conversation_id="c5", team="general", created_at=at(D2, 9), status="open", **ticket),
            # older: still open during the whole range (queue depth only) ...
            Ticket(conversation_id="c9", team="general", created_at=datetime(2026, 2, 20, tzinfo=timezone.utc),
                   status="open", **ticket),
            # ... and resolved before it (counts nowhere)
            Ticket(conversation_id="c8", team="billing", created_at=datetime(2026, 2, 20, tzinfo=timezone.utc),
                   resolved_at=datetime(2026, 2, 21, tzinfo=timezone.utc), status="resolved", **ticket),
        ])
    yield database
    database.dispose()


def test_kpis_by_day_match_hand_computed_figures(db):
    report = compute_kpis(db, D1, D3)
    day1, day2, day3 = report.by_day
    assert [d.day for d in report.by_day] == [D1, D2, D3]

    # Day 1: c1 c2 c3 c4 talked (c1 twice); c1 and c2 escalated -> 2/4; contained 2/4.
    assert (day1.conversations, day1.escalations) == (4, 2)
    assert day1.escalation_rate == pytest.approx(0.5) and day1.containment == pytest.approx(0.5)
    # Open at midnight: the old c9 ticket and c2's (resolved the next day); c1's closed at 11:00.
    assert day1.queue_depth == 2
    assert day1.first_reply_median_s == pytest.approx((300 + 1200) / 2)      # 5 min, 20 min
    assert day1.resolution_median_s == pytest.approx((3600 + 86400) / 2)    # 1 h, 24 h
    assert day1.csat_mean == pytest.approx(3.0) and day1.csat_count == 2     # (4 + 2) / 2

    # Day 2: c1 c5 c6 talked; c5 escalated -> 1/3, contained 2/3; c2 resolved, c5 opened.
    assert (day2.conversations, day2.escalations) == (3, 1)
    assert day2.escalation_rate == pytest.approx(1 / 3) and day2.containment == pytest.approx(2 / 3)
    assert day2.queue_depth == 2                                             # c9, c5
    assert day2.first_reply_median_s is None and day2.resolution_median_s is None
    assert day2.csat_mean is None and day2.csat_count == 0

    # Day 3: only a bot message: no conversations, rates undefined, the queue unchanged.
    assert (day3.conversations, day3.escalations, day3.queue_depth) == (0, 0, 2)
    assert day3.escalation_rate is None and day3.containment is None


def test_kpi_totals_and_teams_match_hand_computed_figures(db):
    report = compute_kpis(db, D1, D3)
    total = report.total
    assert (total.conversations, total.escalations) == (7, 3)                # 4 + 3 + 0 conversation-days
    assert total.escalation_rate == pytest.approx(3 / 7)
    assert total.containment == pytest.approx(4 / 7)                         # (2 + 2 + 0) / 7
    assert total.queue_depth == 2
    assert total.first_reply_median_s == pytest.approx(750)                  # c5 never answered
    assert total.resolution_median_s == pytest.approx(45000)
    assert total.csat_mean == pytest.approx(3.0)

    billing, general = report.by_team
    assert (billing.team, general.team) == ("billing", "general")
    assert (billing.escalations, general.escalations) == (1, 2)
    assert billing.escalation_rate == pytest.approx(1 / 3)                   # share of escalations
    assert general.escalation_rate == pytest.approx(2 / 3)
    assert billing.containment is None and general.containment is None
    assert (billing.queue_depth, general.queue_depth) == (0, 2)
    assert billing.first_reply_median_s == pytest.approx(300)
    assert general.first_reply_median_s == pytest.approx(1200)
    assert general.resolution_median_s == pytest.approx(86400)
    assert (billing.csat_mean, general.csat_mean) == (4.0, 2.0)


def test_a_one_day_range_sees_only_that_day(db):
    report = compute_kpis(db, D2, D2)
    assert [d.day for d in report.by_day] == [D2]
    assert (report.total.conversations, report.total.escalations) == (3, 1)
    # c1's ticket was resolved before D2 began and is gone from every figure of this range.
    assert [r.team for r in report.by_team] == ["general"]


def test_bad_ranges_are_refused_with_a_reason(db):
    with pytest.raises(ValueError, match="before start"):
        compute_kpis(db, D3, D1)
    with pytest.raises(ValueError, match="at most 366 days"):
        compute_kpis(db, date(2024, 1, 1), date(2026, 1, 1))


def test_one_teams_report_day_by_day(db):
    report = compute_kpis(db, D1, D3, team="general")
    day1, day2, day3 = report.by_day
    # general got c2's ticket on day 1 (1 of 4 conversations) and c5's on day 2 (1 of 3).
    assert (day1.team, day1.escalations, day2.escalations, day3.escalations) == ("general", 1, 1, 0)
    assert day1.escalation_rate == pytest.approx(1 / 4) and day2.escalation_rate == pytest.approx(1 / 3)
    assert day1.containment is None and report.total.containment is None
    assert (day1.queue_depth, day2.queue_depth, day3.queue_depth) == (2, 2, 2)   # c9+c2, c9+c5
    assert day1.first_reply_median_s == pytest.approx(1200) and day1.csat_mean == 2.0
    assert report.total.escalation_rate == pytest.approx(2 / 7)
    assert [r.team for r in report.by_team] == ["general"]
    assert compute_kpis(db, D1, D3, team="nobody").total.escalations == 0
