"""Batch evaluation of a chat log: streaming, report contents, bad input with line numbers."""

import json
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
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
    assert "<svg" in html and "Why the policy hands off" in html
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
    problems = []  # given a list, the file is reported there and the rest read
    assert list(read_input(tmp_path, problems)) == []
    assert [str(p) for p in problems][0].startswith(expected)


def test_an_empty_folder_or_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="no webhook payloads"):
        list(read_input(tmp_path))
    with pytest.raises(InputError, match="no such file"):
        list(read_input(tmp_path / "missing.jsonl"))


DAY = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)


def service_database(tmp_path: Path, rows: list) -> str:
    """The URL of a migrated SQLite service database holding ``rows``."""
    from tierline.serving.storage.db import Database

    url = f"sqlite:///{tmp_path / 'svc.db'}"
    db = Database(url)
    db.migrate()
    with db.session() as s:
        s.add_all(rows)
    db.dispose()
    return url


def test_report_includes_the_service_kpis(engine, tmp_path):
    from tierline.serving.storage.models import MessageLog, Ticket

    day = DAY
    url = service_database(tmp_path, [  # four conversations that day, one escalated and resolved
        *(MessageLog(conversation_id=f"wa:1:{n}", role="customer", text="hi", at=day) for n in range(4)),
        Ticket(conversation_id="wa:1:0", team="billing", priority="normal", priority_rank=1,
               context={}, created_at=day, first_agent_reply_at=day + timedelta(minutes=2),
               resolved_at=day + timedelta(minutes=10), status="resolved", csat=4)])
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
    assert 'id="kpis"' in (tmp_path / "o" / "report.html").read_text()


def test_the_ray_engine_gives_the_same_report(engine, tmp_path):
    ray = pytest.importorskip("ray")
    from tierline.training.batch_eval import evaluate_conversations_ray

    log = simulated_log(tmp_path / "log.jsonl", limit=150)
    with log.open("a") as fh:
        fh.write('{"conversation_id": "broken", "messages": [\n')  # line 151: reported by both
    local = evaluate_conversations(log, engine, tmp_path / "local")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=200 * 1024 * 1024)
    try:
        remote = evaluate_conversations_ray(log, tmp_path / "ray")
    finally:
        ray.shutdown()
    assert remote["engine"] == "ray" and local["engine"] == "local"
    assert remote["unreadable"] == local["unreadable"] == [
        {"source": "log.jsonl", "line": 151, "reason": "not valid JSON", "unit": "line"}]
    assert remote["models"]["default"]["models_that_ran"] == local["models"]["default"]["models_that_ran"]
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
    assert 'id="languages"' in html and "Recall by the expected turn" in html
    assert 'id="reliability"' in html and "it: expected turn labels" in html


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "chat_logs"


def business_flow(tmp_path: Path, change) -> Path:
    """A copy of the demo flow folder (FAQ, orders, customers) with ``change`` made to its
    bot.yaml: another business's flow."""
    import shutil

    import yaml

    from tierline.nlu.flow import DEFAULT_FLOW_PATH

    folder = tmp_path / "business"
    shutil.copytree(DEFAULT_FLOW_PATH.parent, folder)
    raw = yaml.safe_load((folder / "bot.yaml").read_text())
    change(raw)
    (folder / "bot.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
    return folder / "bot.yaml"


def test_every_conversation_says_which_models_ran(engine, tmp_path):
    """Each conversation runs on the stack of its language and says so (conversations.jsonl,
    the report's per-stack table); lines that cannot be read are in the report by number."""
    report = evaluate_conversations(FIXTURES / "conversations.jsonl", engine, tmp_path / "out")
    stacks = report["models"]
    assert stacks["default"]["serves"] == ["en"] and stacks["multilingual"]["serves"] == ["it", "es", "pt"]
    assert [m.split("@")[0] for m in stacks["default"]["models_that_ran"]] == ["nlu"]
    assert [m.split("@")[0] for m in stacks["multilingual"]["models_that_ran"]] == ["nlu-multilingual"]
    assert stacks["default"]["nlu_languages"] == ["en"] and stacks["default"]["policy"].startswith("sha256:")
    assert (stacks["default"]["conversations"], stacks["multilingual"]["conversations"]) == (3, 9)
    rows = [json.loads(line) for line in (tmp_path / "out" / "conversations.jsonl").open()]
    assert len(rows) == 12
    for row in rows:
        expected_stack = "default" if row["language"] == "en" else "multilingual"
        assert list(row["stacks"]) == [expected_stack], row
        assert row["models"][0].startswith("nlu@" if expected_stack == "default" else "nlu-multilingual@")
    assert [p["line"] for p in report["unreadable"]] == [5, 9, 12, 14]
    assert report["language_warnings"]["conversations"] == 0
    assert report["intent_confusion"]["labelled_turns"] == 21  # every customer line is labelled
    html = (tmp_path / "out" / "report.html").read_text()
    assert '<td class="num">9</td><td class="">not valid JSON</td>' in html


def test_a_bundle_named_for_the_wrong_stack_is_refused(tmp_path):
    from tierline.nlu.bundle import MULTILINGUAL_BUNDLE_DIR
    from tierline.training.batch_eval import ModelChoiceError

    with pytest.raises(ModelChoiceError, match=r"--multilingual-model .*models/nlu is trained for "
                                               r"en, but the multilingual stack plays this flow's "
                                               r"it, es, pt conversations"):
        engine_for(multilingual_nlu_dir=DEFAULT_BUNDLE_DIR)
    # The multilingual bundle knows English too: it may serve the default stack.
    engine = engine_for(nlu_dir=MULTILINGUAL_BUNDLE_DIR, policy_dir=DEFAULT_POLICY_DIR)
    assert engine.primary.analyzer.model_id.name == "nlu-multilingual"


def test_the_cli_refuses_a_model_for_the_wrong_stack_and_two_names_for_one(tmp_path):
    from typer.testing import CliRunner

    from tierline.cli import app

    log = FIXTURES / "conversations.jsonl"
    runner = CliRunner()
    wrong = runner.invoke(app, ["evaluate", "conversations", str(log), "--out", str(tmp_path),
                                "--multilingual-model", str(DEFAULT_BUNDLE_DIR)])
    assert wrong.exit_code == 2 and "is trained for en, but the multilingual stack" in wrong.output
    both = runner.invoke(app, ["evaluate", "conversations", str(log), "--out", str(tmp_path),
                               "--model", str(DEFAULT_BUNDLE_DIR), "--nlu-version", "3"])
    assert both.exit_code == 2 and "--model and --nlu-version name the same model" in both.output


def test_a_flow_without_a_labelled_language_says_where_it_ran(analyzer, tmp_path):
    """An English-only flow plays Italian conversations on the English stack, as the service
    with that flow would: the report says so instead of scoring them silently."""
    def english_only(raw):
        raw["languages"] = ["en"]
        for key in ("explicit_examples", "explicit_counterexamples"):
            raw["escalation"][key] = {"en": raw["escalation"][key]["en"]}

    flow = business_flow(tmp_path, english_only)
    engine = engine_for(flow_path=flow, analyzer=analyzer)
    log = write_log(tmp_path / "l.jsonl", [
        {"conversation_id": "it-1", "language": "it",
         "messages": [{"text": "mi avete addebitato due volte l'ordine"}]},
        {"conversation_id": "en-1", "language": "en", "messages": [{"text": "where is my parcel"}]}])
    report = evaluate_conversations(log, engine, tmp_path / "out", flow_path=flow)
    warned = report["language_warnings"]
    assert warned["conversations"] == 1 and warned["examples"][0]["conversation_id"] == "it-1"
    assert "labelled 'it' but played on the default stack" in warned["examples"][0]["warnings"][0]
    assert "(the flow's languages: en)" in warned["examples"][0]["warnings"][0]
    assert report["models"]["multilingual"] == {**report["models"]["multilingual"], "serves": [],
                                                 "loaded": False, "conversations": 0}
    assert "ran on a model not trained for their labelled language" in (
        tmp_path / "out" / "report.html").read_text()


def test_a_business_flow_with_its_own_teams(analyzer, tmp_path):
    """``--flow``: routing, team accuracy and the keyword baseline's teams come from the
    business's bot.yaml, not the demo's."""
    def own_teams(raw):
        routing = raw["escalation"]["routing"]
        routing["default_team"] = "front_desk"
        routing["teams"] = {"payments": routing["teams"]["billing"],
                            "accounts": routing["teams"]["technical"]}
        routing["cues"] = {"double_charge": "payments", "dispute": "payments"}

    flow = business_flow(tmp_path, own_teams)
    log = write_log(tmp_path / "l.jsonl", [
        {"conversation_id": "it-1", "language": "it",
         "messages": [{"text": "ciao"}, {"text": "mi avete fatto pagare due volte l'ordine ND-527626"}],
         "expected": {"handoff_by_turn": 2, "team": "payments"}},
        {"conversation_id": "en-1", "language": "en",
         "messages": [{"text": "can i talk to a real person pls"}],
         "expected": {"handoff_by_turn": 1, "team": "front_desk"}},
        {"conversation_id": "pt-1", "language": "pt",
         "messages": [{"text": "quero meu dinheiro de volta do pedido ND-734201"}],
         "expected": {"handoff_by_turn": 1, "team": "payments"}}])
    report = evaluate_conversations(log, engine_for(flow_path=flow, analyzer=analyzer),
                                    tmp_path / "out", flow_path=flow)
    assert set(report["handoff_teams"]) == {"payments", "front_desk"}
    assert report["expected_handoffs"]["all"]["engine"]["team_accuracy"] == 1.0
    assert report["flow"]["teams"] == ["accounts", "front_desk", "payments"]
    assert report["flow"]["path"] == str(flow)


def test_whatsapp_exports_through_the_engine(engine, tmp_path):
    report = evaluate_conversations(FIXTURES, engine, tmp_path / "out",
                                    business_names=("Negozio Demo",))
    assert report["input_format"] == "WhatsApp chat exports" and report["conversations"] == 6
    assert {p["line"] for p in report["unreadable"]} == {1, 8}
    assert report["export_lines_not_played"]["media_without_caption"] == 5
    rows = {json.loads(line)["conversation_id"]: json.loads(line)
            for line in (tmp_path / "out" / "conversations.jsonl").open()}
    assert list(rows["Chat WhatsApp con Giulia Rossi"]["stacks"]) == ["multilingual"]
    assert rows["Chat WhatsApp con Giulia Rossi"]["handoff_turn"] is not None  # "voglio un operatore"
    assert list(rows["ios_en_us_chat"]["stacks"]) == ["default"]
    # Nothing is labelled: the report shows the handed-off conversations' transcripts instead,
    # the business's lines among them as context.
    assert report["disagreements"] == [] and report["handoffs_without_labels"]
    shown = report["handoffs_without_labels"][0]["transcript"]
    assert {line["role"] for line in shown} == {"customer", "agent"}
    html = (tmp_path / "out" / "report.html").read_text()
    assert 'id="transcripts"' in html and "conversations the engine handed to a human" in html


def test_the_services_own_conversations(engine, tmp_path):
    from tierline.serving.storage.models import Conversation, MessageLog

    conversation = "wa:1:34612345678"
    url = service_database(tmp_path, [
        Conversation(id=conversation, channel="whatsapp", customer_id="+34612345678", state={},
                     created_at=DAY),
        MessageLog(conversation_id=conversation, role="customer", text="hola", at=DAY),
        MessageLog(conversation_id=conversation, role="bot", text="¡Hola!", at=DAY),
        MessageLog(conversation_id=conversation, role="customer", text="quiero hablar con un agente",
                   at=DAY)])
    report = evaluate_conversations(None, engine, tmp_path / "out", database_url=url,
                                    kpi_days=(date(2026, 11, 20), date(2026, 11, 20)))
    assert report["input_format"] == "service database"
    assert (report["conversations"], report["turns"]) == (1, 2)
    assert report["models"]["multilingual"]["conversations"] == 1
    assert report["service_kpis"]["total"]["conversations"] == 1
