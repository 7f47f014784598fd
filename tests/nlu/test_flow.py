"""The bot-flow YAML: validation errors name the bad field; business hours are timezone-aware."""

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from tierline.nlu.flow import DEFAULT_FLOW_PATH, FlowError, load_flow

ROME = ZoneInfo("Europe/Rome")


def write_flow(tmp_path: Path, change) -> Path:
    raw = yaml.safe_load(DEFAULT_FLOW_PATH.read_text())
    change(raw)
    path = tmp_path / "bot.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


def test_shipped_flow_loads():
    flow = load_flow()
    assert flow.languages == ["en", "it", "es", "pt"]
    assert flow.escalation.routing.team_for("payment_issue") == "billing"
    assert flow.escalation.routing.team_for("recover_password") == "technical"
    assert flow.escalation.routing.team_for("track_order") == "general"


@pytest.mark.parametrize("change,field", [
    (lambda r: r["escalation"]["thresholds"].update(vip=1.5), "escalation.thresholds"),
    (lambda r: r["escalation"]["routing"]["teams"]["billing"].append("refund_pls"), "escalation"),
    (lambda r: r["business_hours"].update(timezone="Mars/Olympus"), "business_hours.timezone"),
    (lambda r: r["business_hours"]["weekly"].update(mon=[["18:00", "09:00"]]), "business_hours.weekly"),
    (lambda r: r["business_hours"]["weekly"].update(funday=[]), "business_hours.weekly"),
    (lambda r: r["messages"]["it"].pop("handoff"), "messages.it.handoff"),
    (lambda r: r.update(languages=["en", "it", "es", "pt", "fr"]), "messages missing"),
    (lambda r: r["orders"].update(number_pattern="ND-(["), "orders.number_pattern"),
    (lambda r: r.pop("brand"), "brand"),
])
def test_invalid_flows_name_the_bad_field(tmp_path, change, field):
    with pytest.raises(FlowError, match=field.replace(".", r"\.")):
        load_flow(write_flow(tmp_path, change))


def test_unreadable_flows_are_clear_errors(tmp_path):
    with pytest.raises(FlowError, match="not found"):
        load_flow(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("brand: [unclosed")
    with pytest.raises(FlowError, match="not valid YAML"):
        load_flow(bad)


def test_business_hours_in_the_flow_timezone():
    hours = load_flow().business_hours
    assert hours.is_open(datetime(2026, 11, 24, 10, 0, tzinfo=ROME))  # Tuesday morning
    assert not hours.is_open(datetime(2026, 11, 24, 19, 0, tzinfo=ROME))  # Tuesday evening
    assert not hours.is_open(datetime(2026, 11, 29, 11, 0, tzinfo=ROME))  # Sunday
    assert hours.is_open(datetime(2026, 11, 28, 12, 30, tzinfo=ROME))  # Saturday morning
    # 08:30 UTC is 09:30 in Rome (CET): open. Naive datetimes mean UTC.
    assert hours.is_open(datetime(2026, 11, 24, 8, 30))


def test_holidays_are_closed_and_next_opening_skips_them():
    hours = load_flow().business_hours
    assert not hours.is_open(datetime(2026, 12, 25, 11, 0, tzinfo=ROME))
    back = hours.next_opening(datetime(2026, 12, 24, 19, 0, tzinfo=ROME))
    assert back == datetime(2026, 12, 28, 9, 0, tzinfo=ROME)  # 25, 26 holidays, 27 Sunday


def test_a_routed_cue_needs_its_topic_in_its_own_message():
    """A lawyer threatened about a late parcel is no billing matter, even when the intent
    routed by came from an earlier message (whose topics are not this message's)."""
    from tierline.nlu.flow import Routing

    routing = Routing(teams={"billing": ["payment_issue"]}, cues={"dispute": "billing"},
                      needs_topic={"billing": "money"})
    assert routing.team_for("place_order", ["dispute"], None, cue_topics=()) == "general"
    assert routing.team_for("place_order", ["dispute"], None, cue_topics=("money",)) == "billing"
    assert routing.team_for("place_order", ["dispute"], ("money",)) == "billing"
