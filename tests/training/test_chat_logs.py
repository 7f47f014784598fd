"""Chat logs as people have them: the JSONL format (roles, timestamps, labels), WhatsApp chat
exports from Android and iOS in four languages, and the service's own database. Lines that
cannot be read are reported with their line numbers (row ids for the database), never dropped
unsaid. The fixtures in ``tests/fixtures/chat_logs`` are written by hand the way the app and
people write them."""

from __future__ import annotations

import zipfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tierline.training.chat_logs import (
    ExportStats,
    InputError,
    read_conversations,
    read_database,
    read_input,
    read_whatsapp_export,
    read_whatsapp_exports,
)
from tests.serving.conftest import BACKENDS, fresh_database

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "chat_logs"
ROME = ZoneInfo("Europe/Rome")
BUSINESS = ["Negozio Demo"]


def export(name: str, problems: list | None = None, stats: ExportStats | None = None, **kw):
    return list(read_whatsapp_export(FIXTURES / name, BUSINESS, problems if problems is not None
                                     else [], ROME, stats=stats, **kw))


def lines(conversation) -> list[tuple[str, str]]:
    return [(m.role, m.text) for m in conversation.messages]


# --- JSONL ---------------------------------------------------------------------------------------

def test_jsonl_with_roles_timestamps_and_labels_and_its_unreadable_lines():
    problems = []
    conversations = list(read_conversations(FIXTURES / "conversations.jsonl", problems))
    assert [c.conversation_id for c in conversations] == [
        "en-1", "en-2", "en-3", "it-1", "it-2", "it-3", "es-1", "es-2", "es-3", "pt-1", "pt-2", "pt-3"]
    assert {c.language for c in conversations} == {"en", "it", "es", "pt"}
    en1 = conversations[0]
    assert [m.role for m in en1.messages] == ["customer", "bot", "customer"]
    assert [m.text for m in en1.turns] == ["hi there", "can i talk to a real person pls"]
    assert en1.turns[1].intent == "contact_human_agent" and en1.turns[1].escalate is True
    assert en1.messages[0].at == datetime(2026, 11, 23, 8, 2, tzinfo=timezone.utc)  # "timestamp"
    es3 = next(c for c in conversations if c.conversation_id == "es-3")
    assert es3.messages[-1].role == "agent" and len(es3.turns) == 2
    assert [(p.line, p.reason) for p in problems] == [
        (5, "Input should be 'customer', 'bot' or 'agent' (at messages.0.role)"),
        (9, "not valid JSON"),
        (12, "conversation_id 'it-1' already read at line 4"),
        (14, "Value error, intent 'refund_pls' is not one of the model's intents (at messages.0)"),
    ]
    assert str(problems[1]) == "conversations.jsonl, line 9: not valid JSON"


def test_without_a_list_for_problems_the_first_unreadable_line_raises():
    with pytest.raises(InputError, match="conversations.jsonl, line 5: Input should be"):
        list(read_conversations(FIXTURES / "conversations.jsonl"))


@pytest.mark.parametrize("line,reason", [
    ('{"conversation_id": "a", "messages": [{"role": "bot", "text": "hi"}]}',
     "no customer messages"),
    ('{"conversation_id": "a", "messages": [{"role": "agent", "text": "hi", "escalate": true}]}',
     "escalate, intent and button_id belong on customer lines"),
])
def test_a_conversation_needs_a_customer_line_and_labels_belong_on_them(tmp_path, line, reason):
    path = tmp_path / "log.jsonl"
    path.write_text('{"conversation_id": "ok", "messages": [{"text": "hi"}]}\n' + line + "\n")
    problems = []
    assert [c.conversation_id for c in read_conversations(path, problems)] == ["ok"]
    assert problems[0].line == 2 and reason in problems[0].reason


def test_a_line_that_is_not_utf8_is_reported_and_the_rest_read(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"conversation_id": "a", "messages": [{"text": "caf\xe9"}]}\n'
                     b'{"conversation_id": "b", "messages": [{"text": "ciao"}]}\n')
    problems = []
    assert [c.conversation_id for c in read_conversations(path, problems)] == ["b"]
    assert [(p.line, p.reason) for p in problems] == [(1, "not UTF-8 text")]


# --- WhatsApp chat exports -----------------------------------------------------------------------

def test_android_english_export_sessions_media_deletions_and_multiline_messages():
    stats = ExportStats()
    problems = []
    first, second = export("WhatsApp Chat with Emma Clarke.txt", problems, stats)
    assert problems == []
    assert first.conversation_id == "WhatsApp Chat with Emma Clarke" and first.customer.id == "Emma Clarke"
    assert lines(first) == [
        ("agent", "Hi Emma! Thanks for writing to Negozio Demo. How can we help?"),
        ("customer", "hi, my order ND-482913 was supposed to arrive yesterday"),
        ("customer", "tracking says delivered but there's nothing here\nI checked with the neighbours too"),
        ("agent", "Sorry to hear that! Let me check with the courier."),
        ("customer", "any news?? I NEED it for tomorrow"),  # "<This message was edited>" dropped
    ]
    # Three days of silence: the service would have met a new request.
    assert second.conversation_id == "WhatsApp Chat with Emma Clarke#2"
    assert [m.text for m in second.turns] == [
        "hello again, can I change the address for my next order?",
        "this is the new one: 14 Elm Road, Leeds",  # the caption of an attached photo
        "thanks!"]
    assert first.messages[1].at == datetime(2026, 3, 12, 9, 15, tzinfo=ROME)  # 12 March: day/month
    assert (stats.system_lines, stats.media, stats.deleted) == (1, 1, 1)


def test_android_italian_export_reports_its_unreadable_lines_by_number():
    problems, stats = [], ExportStats()
    (conversation,) = export("Chat WhatsApp con Giulia Rossi.txt", problems, stats)
    assert [(p.line, p.reason) for p in problems] == [
        (1, "not a WhatsApp message line (no date and time at its start)"),
        (8, "date 31/02/26 is not a date (day/month order)"),
    ]
    assert [m.text for m in conversation.turns] == [
        "buongiorno", "mi avete addebitato due volte l'ordine ND-527626!!",
        "voglio parlare con un operatore, subito",
        "grazie\nvi mando lo screenshot dell'estratto conto"]
    assert conversation.messages[0].at == datetime(2026, 3, 2, 10, 2, tzinfo=ROME)  # "26": 2026
    assert (stats.system_lines, stats.media, stats.deleted) == (1, 1, 1)  # <Media omessi>


def test_android_spanish_export_with_twelve_hour_times():
    stats = ExportStats()
    (conversation,) = export("Chat de WhatsApp con Lucía Fernández.txt", stats=stats)
    assert [(m.role, m.at.strftime("%H:%M")) for m in conversation.messages] == [
        ("customer", "20:47"), ("customer", "20:48"), ("agent", "20:50"),
        ("customer", "20:52"),  # "8:52\u202fp. m.", the narrow no-break space of newer phones
        ("customer", "20:53")]
    assert conversation.turns[2].text == "jajaja perdón, me equivoqué de foto"
    assert stats.media == 1  # <Multimedia omitido>


def test_ios_portuguese_export_in_the_zip_the_app_shares(tmp_path):
    archive = tmp_path / "WhatsApp Chat - João Silva.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(FIXTURES / "ios_pt_chat.txt", "_chat.txt")
    stats = ExportStats()
    (conversation,) = read_whatsapp_exports(archive, BUSINESS, [], ROME, stats=stats)
    assert conversation.conversation_id == "WhatsApp Chat - João Silva"
    assert conversation.customer.id == "João Silva"
    assert lines(conversation) == [
        ("customer", "oi, boa tarde"), ("customer", "meu pedido ND-734201 chegou quebrado 😡"),
        ("customer", "quero meu dinheiro de volta"),
        ("agent", "Oi João! Sinto muito. Vou abrir um pedido de reembolso."),
        ("customer", "blz, obrigado")]
    assert conversation.messages[0].at == datetime(2026, 3, 12, 14, 5, 33, tzinfo=ROME)
    # The encryption notice iOS attributes to the business, and "‎imagem ocultada".
    assert (stats.system_lines, stats.media) == (1, 1)


def test_ios_us_export_reads_month_first_and_phone_numbers_as_e164():
    (conversation,) = export("ios_en_us_chat.txt")
    assert conversation.customer.id == "+14155550132"  # "\u202a+1 (415) 555-0132\u202c"
    assert [m.text for m in conversation.turns] == ["hey is anyone there",
                                                    "i was charged twice for order ND-118822"]
    assert conversation.messages[0].at == datetime(2026, 3, 13, 14, 5, 33, tzinfo=ROME)


def test_a_date_order_both_ways_fit_is_said_and_can_be_named(tmp_path):
    path = tmp_path / "chat.txt"
    path.write_bytes("01/02/2026, 10:00 - Ana: hola\r\n03/02/2026, 10:00 - Ana: ¿hay alguien?\r\n"
                     "03/02/2026, 10:05 - Negozio Demo: sí, dime\r\n".encode())
    stats = ExportStats()
    first, second = read_whatsapp_export(path, BUSINESS, [], ROME, stats=stats)
    assert first.messages[0].at.date() == date(2026, 2, 1) and first.messages[0].text == "hola"
    assert stats.notes == ["chat.txt: dates read day/month (both orders fit; --date-order mdy "
                           "if the phone wrote month/day)"]
    (one,) = read_whatsapp_export(path, BUSINESS, [], ROME, date_order="mdy",
                                  session_gap=timedelta(days=90))
    assert [m.at.date() for m in one.messages] == [date(2026, 1, 2), date(2026, 3, 2), date(2026, 3, 2)]


def test_the_business_must_be_named_and_found():
    with pytest.raises(InputError, match="needs --business-name"):
        list(read_whatsapp_export(FIXTURES / "ios_en_us_chat.txt", [], [], ROME))
    problems = []
    assert list(read_whatsapp_export(FIXTURES / "ios_en_us_chat.txt", ["Acme"], problems, ROME)) == []
    assert "none of the senders (+1 (415) 555-0132, Negozio Demo) is the business (Acme)" \
        in problems[0].reason


def test_a_folder_of_exports_is_read_by_read_input():
    problems = []
    conversations = list(read_input(FIXTURES, problems, business_names=BUSINESS, tz=ROME))
    assert len(conversations) == 6  # four chats, Emma's in two sessions, the US one
    assert {p.line for p in problems} == {1, 8}


# --- the service's database -----------------------------------------------------------------------

@pytest.fixture(scope="module", params=BACKENDS)
def service_db(request, tmp_path_factory):
    """A service database with three conversations: one escalated and labelled by an agent
    ("earlier", with a corrected intent), one the bot kept, one without customer lines, and
    a transcript row of an unknown role."""
    from tierline.serving.storage.db import Database
    from tierline.serving.storage.models import (
        Agent,
        Conversation,
        DecisionRow,
        EscalationLabel,
        MessageLog,
        Ticket,
    )

    with fresh_database(request.param, tmp_path_factory) as url:
        db = Database(url)
        db.migrate()
        day = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
        with db.session() as s:
            s.add_all([
                Conversation(id="wa:1:393331234567", channel="whatsapp", customer_id="+393331234567",
                             state={"tier": "vip", "language": "it"}, created_at=day),
                Conversation(id="wa:1:34612345678", channel="whatsapp", customer_id="+34612345678",
                             state={}, created_at=day + timedelta(hours=1)),
                Conversation(id="api:empty", channel="api", customer_id="x", state={},
                             created_at=day + timedelta(hours=2)),
                Conversation(id="wa:1:447700900003", channel="whatsapp", customer_id="+447700900003",
                             state={}, created_at=day + timedelta(days=3)),
            ])
            at = lambda minutes: day + timedelta(minutes=minutes)  # noqa: E731
            s.add_all([
                MessageLog(conversation_id="wa:1:393331234567", role="customer", text="ciao", at=at(0)),
                MessageLog(conversation_id="wa:1:393331234567", role="bot", text="Ciao! Come posso aiutarti?", at=at(0)),
                MessageLog(conversation_id="wa:1:393331234567", role="customer",
                           text="il pacco ND-527626 è arrivato rotto", at=at(1)),
                MessageLog(conversation_id="wa:1:393331234567", role="customer",
                           text="VOGLIO UN RIMBORSO", at=at(2)),
                MessageLog(conversation_id="wa:1:393331234567", role="agent",
                           text="Buongiorno, sono Marco: la rimborsiamo oggi.", at=at(9)),
                MessageLog(conversation_id="wa:1:34612345678", role="customer", text="hola, ¿dónde está mi pedido?", at=at(60)),
                MessageLog(conversation_id="wa:1:34612345678", role="system", text="(note)", at=at(61)),
                MessageLog(conversation_id="api:empty", role="bot", text="Hi!", at=at(120)),
                MessageLog(conversation_id="wa:1:447700900003", role="customer", text="hi", at=day + timedelta(days=3)),
            ])
            s.flush()
            agent = Agent(name="marco", token_sha256="0" * 64, teams=["billing"])
            decision = DecisionRow(conversation_id="wa:1:393331234567", intent="get_refund",
                                   frustration=0.9, p_escalate=0.9, escalate=True, reasons=[],
                                   features={}, at=at(2))
            s.add_all([agent, decision])
            s.flush()
            ticket = Ticket(conversation_id="wa:1:393331234567", decision_id=decision.id,
                            team="billing", priority="high", priority_rank=0, context={},
                            created_at=at(2) + timedelta(seconds=1), status="resolved")
            s.add(ticket)
            s.flush()
            s.add(EscalationLabel(ticket_id=ticket.id, agent_id=agent.id, escalation_needed="earlier",
                                  corrected_intent="complaint"))
        db.dispose()
        yield url


def test_database_conversations_with_agents_verdicts_as_labels(service_db):
    problems = []
    conversations = {c.conversation_id: c for c in read_database(service_db, problems)}
    assert list(conversations) == ["wa:1:393331234567", "wa:1:34612345678", "wa:1:447700900003"]
    italian = conversations["wa:1:393331234567"]
    assert italian.customer.id == "+393331234567" and italian.customer.tier == "vip"
    assert [m.role for m in italian.messages] == ["customer", "bot", "customer", "customer", "agent"]
    # "earlier": the turn that opened the ticket and the one before should have gone to a human.
    assert [(m.text, m.escalate, m.intent) for m in italian.turns] == [
        ("ciao", None, None), ("il pacco ND-527626 è arrivato rotto", True, None),
        ("VOGLIO UN RIMBORSO", True, "complaint")]
    reasons = sorted(str(p) for p in problems)
    assert reasons[0] == "conversations: conversation api:empty: no customer lines in message_log"
    assert reasons[1].startswith("message_log, row ") and reasons[1].endswith(
        "role 'system' is not customer, bot or agent (conversation wa:1:34612345678)")


def test_database_conversations_of_some_days(service_db):
    days = (date(2026, 11, 20), date(2026, 11, 20))
    read = [c.conversation_id for c in read_database(service_db, [], days)]
    assert read == ["wa:1:393331234567", "wa:1:34612345678"]
    with pytest.raises(InputError, match="no conversations in the database from 2026-12-01"):
        list(read_database(service_db, [], (date(2026, 12, 1), date(2026, 12, 2))))
