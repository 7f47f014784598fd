"""Batch evaluation of a chat log: streaming, report contents, bad input with line numbers."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tierline.nlu.engine import TurnEngine
from tierline.nlu.bundle import DEFAULT_BUNDLE_DIR, DEFAULT_POLICY_DIR
from tierline.training.batch_eval import (
    InputError,
    engine_for,
    evaluate_conversations,
    read_conversations,
    read_input,
)
from tierline.training.simulator import SIMULATED_DIR, load_rows


def write_log(path: Path, conversations: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(c) for c in conversations) + "\n")
    return path


@pytest.fixture(scope="module")
def engine(analyzer):
    """The service's default engine (English pair; it/es/pt routed to the multilingual pair),
    which the batch job and its Ray version use unless told otherwise."""
    return TurnEngine.shipped(analyzer=analyzer)


def simulated_log(path: Path, limit: int = 120) -> Path:
    """Held-out simulated conversations as a chat log with the lead's labels."""
    convs: dict[str, dict] = {}
    for r in load_rows(SIMULATED_DIR / "policy_test.jsonl"):
        c = convs.setdefault(r["conversation_id"], {"conversation_id": r["conversation_id"],
                                                   "customer": {"id": "x", "tier": r["tier"]},
                                                   "messages": []})
        c["messages"].append({"text": r["text"], "at": r["at"], "escalate": bool(r["label"])})
    return write_log(path, list(convs.values())[:limit])


def test_report_on_labelled_log(engine, tmp_path):
    log = simulated_log(tmp_path / "log.jsonl")
    report = evaluate_conversations(log, engine, tmp_path / "out")
    assert report["conversations"] == 120 and report["turns"] > 120
    assert 0 < report["escalation_rate_conversations"] < 1
    assert report["handoff_reasons"] and sum(report["handoff_at_turn"].values()) > 0
    agreement = report["agreement_with_labels"]
    assert agreement["roc_auc"] > 0.8 and agreement["labelled_turns"] == report["turns"]
    assert report["throughput"]["messages_per_s"] > 0
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<img" in html and "Why the policy hands off" in html
    assert json.loads((tmp_path / "out" / "report.json").read_text())["turns"] == report["turns"]


def test_unlabelled_log_has_no_agreement_section(engine, tmp_path):
    log = write_log(tmp_path / "l.jsonl", [{"conversation_id": "a", "messages": [{"text": "hi"}]}])
    assert evaluate_conversations(log, engine, tmp_path / "o")["agreement_with_labels"] is None


@pytest.mark.parametrize("content,expected", [
    ('{"conversation_id": "a", "messages": [{"text": "hi"}]}\n{"conversation_id": "b", "mess', "line 2: not valid JSON"),
    ('{"conversation_id": "a", "messages": [{"text": "hi", "colour": "red"}]}\n', "line 1: Extra inputs are not permitted (at messages.0.colour)"),
    ('{"conversation_id": "a", "messages": []}\n', "line 1:"),
    ("\n\n", "empty file"),
])
def test_bad_logs_fail_with_line_numbers(tmp_path, content, expected):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        list(read_conversations(path))


def test_cli_reports_bad_input_clearly(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("{oops\n")
    exe = str(Path(sys.executable).parent / "tierline")
    out = subprocess.run([exe, "evaluate", "conversations", str(path), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "line 1: not valid JSON" in out.stderr


def test_a_folder_of_webhook_payloads_is_grouped_into_conversations(engine, tmp_path):
    from tests.serving.fakes import envelope, message

    folder = tmp_path / "webhooks"
    folder.mkdir()
    t0 = 1_790_000_000
    deliveries = [  # two customers, out of order across files, one redelivery, one image
        envelope([{**message(text="I was charged twice", wamid="w2", customer="447700900111"),
                   "timestamp": str(t0 + 60)}], customer="447700900111"),
        envelope([{**message(text="hi", wamid="w1", customer="447700900111"),
                   "timestamp": str(t0)}], customer="447700900111"),
        envelope([{**message(text="I was charged twice", wamid="w2", customer="447700900111"),
                   "timestamp": str(t0 + 60)}], customer="447700900111"),
        envelope([{**message(text="where is my order", wamid="w3", customer="447700900222"),
                   "timestamp": str(t0 + 5)},
                  {**message(kind="image", wamid="w4", customer="447700900222"),
                   "timestamp": str(t0 + 6)}], customer="447700900222"),
    ]
    for n, body in enumerate(deliveries):
        (folder / f"{n:03d}.json").write_text(json.dumps(body))
    report = evaluate_conversations(folder, engine, tmp_path / "out")
    assert report["conversations"] == 2 and report["turns"] == 3
    conversations = {c.customer.id: [m.text for m in c.messages] for c in read_input(folder)}
    assert conversations == {"+447700900111": ["hi", "I was charged twice"],  # E.164, as stored
                             "+447700900222": ["where is my order"]}


@pytest.mark.parametrize("content,expected", [
    ("{not json", "000.json: not valid JSON"),
    ('{"object": "page"}', "000.json: not a WhatsApp webhook payload"),
])
def test_bad_webhook_files_name_the_file(tmp_path, content, expected):
    (tmp_path / "000.json").write_text(content)
    with pytest.raises(InputError, match=expected):
        list(read_input(tmp_path))


def test_an_empty_folder_or_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="no webhook payloads"):
        list(read_input(tmp_path))
    with pytest.raises(InputError, match="no such file"):
        list(read_input(tmp_path / "missing.jsonl"))


def test_report_includes_the_service_kpis(engine, tmp_path):
    from datetime import date, datetime, timedelta, timezone

    from tierline.serving.storage.db import Database
    from tierline.serving.storage.models import MessageLog, Ticket

    url = f"sqlite:///{tmp_path / 'svc.db'}"
    db = Database(url)
    db.migrate()
    day = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
    with db.session() as s:
        for n in range(4):  # four conversations that day, one escalated and resolved
            s.add(MessageLog(conversation_id=f"wa:1:{n}", role="customer", text="hi", at=day))
        s.add(Ticket(conversation_id="wa:1:0", team="billing", priority="normal", priority_rank=1,
                     context={}, created_at=day, first_agent_reply_at=day + timedelta(minutes=2),
                     resolved_at=day + timedelta(minutes=10), status="resolved", csat=4))
    db.dispose()
    log = write_log(tmp_path / "l.jsonl", [{"conversation_id": "a", "messages": [{"text": "hi"}]}])
    report = evaluate_conversations(log, engine, tmp_path / "o", database_url=url,
                                    kpi_days=(date(2026, 11, 20), date(2026, 11, 20)))
    total = report["service_kpis"]["total"]
    assert total["conversations"] == 4 and total["escalations"] == 1
    assert total["escalation_rate"] == pytest.approx(0.25)
    assert total["containment"] == pytest.approx(0.75)
    assert total["first_reply_median_s"] == pytest.approx(120)
    assert total["resolution_median_s"] == pytest.approx(600)
    assert total["csat_mean"] == pytest.approx(4.0)
    assert [r["team"] for r in report["service_kpis"]["by_team"]] == ["billing"]
    assert "service_kpis" in (tmp_path / "o" / "report.html").read_text()


def test_the_ray_engine_gives_the_same_report(engine, tmp_path):
    ray = pytest.importorskip("ray")
    from tierline.training.batch_eval import evaluate_conversations_ray

    log = simulated_log(tmp_path / "log.jsonl", limit=150)
    local = evaluate_conversations(log, engine, tmp_path / "local")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=200 * 1024 * 1024)
    try:
        remote = evaluate_conversations_ray(log, tmp_path / "ray")
    finally:
        ray.shutdown()
    assert remote["engine"] == "ray" and local["engine"] == "local"
    for key in ("conversations", "turns", "escalation_rate_conversations", "handoff_at_turn",
                "handoff_reasons", "handoff_teams", "intent_distribution"):
        assert remote[key] == local[key], key
    for key, value in local["agreement_with_labels"].items():
        assert remote["agreement_with_labels"][key] == pytest.approx(value, abs=1e-9), key


def test_a_named_english_pair_leaves_italian_on_the_multilingual_pair():
    """``--nlu-version``/``--policy-version champion`` name the English pair: Italian, Spanish
    and Portuguese conversations still run on the multilingual pair, as in the service."""
    engine = engine_for(DEFAULT_BUNDLE_DIR, DEFAULT_POLICY_DIR, threads=1)
    italian = engine.turn(engine.new_state("it"), "È INUTILE!!! voglio parlare con qualcuno")
    english = engine.turn(engine.new_state("en"), "THIS IS USELESS!!! I want a human")
    assert (italian.model_stack, italian.analysis.model.name) == ("multilingual", "nlu-multilingual")
    assert (english.model_stack, english.analysis.model.name) == ("default", "nlu")


def test_expected_handoffs_per_language_beside_keyword_rules(engine, tmp_path):
    """Conversations labelled with the turn by which a human is needed: recall by that turn,
    false handoffs, team accuracy and calibration per language, engine and keyword rules
    measured in the same run (the held-out suite's shape)."""
    rows = [
        {"conversation_id": "it-1", "language": "it", "messages": [
            {"text": "ciao"}, {"text": "mi avete fatto pagare due volte, passami un operatore"}],
         "expected": {"handoff_by_turn": 2, "team": "billing", "trigger": "explicit"}},
        {"conversation_id": "it-2", "language": "it", "messages": [
            {"text": "GRAZIE MILLE!!! 😍"}], "expected": {"handoff_by_turn": None}},
        {"conversation_id": "en-1", "language": "en", "messages": [
            {"text": "my sister will pick up the parcel"}, {"text": "thanks, bye"}],
         "expected": {"handoff_by_turn": None, "kind": "hard_negative"}},
        {"conversation_id": "en-2", "language": "en", "messages": [
            {"text": "", "button_id": "menu_agent"}],
         "expected": {"handoff_by_turn": 1, "team": "general", "trigger": "explicit"}},
    ]
    log_file = tmp_path / "labelled.jsonl"
    log_file.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    report = evaluate_conversations(log_file, engine, out_dir=tmp_path / "out")
    summary = report["expected_handoffs"]
    assert set(summary) == {"en", "it", "all"}
    for lang in ("en", "it"):
        assert summary[lang]["conversations"] == 2 and summary[lang]["need_a_human"] == 1
        assert summary[lang]["engine"]["recall_by_expected_turn"] == 1.0
        assert summary[lang]["engine"]["false_handoffs"] == 0.0
    assert summary["it"]["engine"]["team_accuracy"] == 1.0
    # The keyword rules shout "GRAZIE MILLE!!!" into a handoff; the engine does not.
    assert summary["it"]["keyword_rules"]["false_handoffs"] == 1.0
    assert summary["all"]["calibration"]["turns"] >= 4
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Expected handoffs, per language" in html and "data:image/png;base64," in html
