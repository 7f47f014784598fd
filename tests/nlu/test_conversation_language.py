"""The conversation's language is state; menus, statuses and frustration as customers type them.

Scripted conversations in four languages, with the messages that used to flip a conversation's
language ("no", "ok", "ci siete???", digits, emoji, gibberish), checked reply by reply: every
text the customer sees is one of the flow's texts in the conversation's language.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from tierline.nlu.bot import MENU_AGENT, MENU_FAQ, MENU_ORDER, csat_score, menu_choice, small_talk_of
from tierline.nlu.cues import extract_cues
from tierline.nlu.engine import TurnEngine
from tierline.nlu.flow import DEFAULT_FLOW_PATH, FlowError, load_flow

OPEN = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)

SCRIPTS = {
    "it": ["ciao, dov'è il mio ordine?", "ND-100000", "no", "ci siete???", "asdkjh qwe", "ok",
           "👍", "12345", "grazie mille 🙏"],
    "es": ["hola buenas, quiero saber dónde está mi pedido", "ND-100000", "no", "vale", "jajaja",
           "???", "ok", "gracias!!"],
    "pt": ["oi, cadê meu pedido?", "ND-100000", "não", "kkkkk", "ok", "🙏🙏", "obrigada"],
    "en": ["hi where is my order", "ND-100000", "no", "ok", "lol", "sdfgh", "thanks!!"],
}


@pytest.fixture(scope="module")
def engine(analyzer) -> TurnEngine:
    return TurnEngine.shipped(analyzer=analyzer)


def texts_of(flow, language: str) -> set[str]:
    """Every fixed text of ``language`` (templates cut at their first placeholder)."""
    out = set()
    for value in flow.messages[language].model_dump().values():
        if isinstance(value, str):
            out.add(value.split("{")[0].format())
    return {t for t in out if t}


@pytest.mark.parametrize("language", sorted(SCRIPTS))
def test_a_conversation_stays_in_its_language(engine, language):
    flow = engine.flow
    own = texts_of(flow, language)
    others = {t for lang in flow.languages if lang != language for t in texts_of(flow, lang)} - own
    state = engine.new_state(f"script-{language}", customer_id="447700959990")
    for text in SCRIPTS[language]:
        result = engine.turn(state, text, now=OPEN)
        state = result.state
        assert state.language == language, (text, state.language)
        for reply in result.replies:
            assert not any(reply.text.startswith(o) for o in others if len(o) > 8), reply.text
            for _, title in reply.buttons:
                assert title in {flow.text(k, language) for k in
                                 ("menu_order_status", "menu_faq", "menu_agent")}
        if result.handoff:
            break


def test_a_confident_sentence_changes_the_language_and_a_locked_flow_never(engine, tmp_path):
    state = engine.new_state("switch")
    state = engine.turn(state, "where is my order please", now=OPEN).state
    state = engine.turn(state, "no", now=OPEN).state
    assert state.language == "en"
    state = engine.turn(state, "scusa, posso scrivere in italiano? non parlo bene inglese",
                        now=OPEN).state
    assert state.language == "it"

    raw = yaml.safe_load(DEFAULT_FLOW_PATH.read_text(encoding="utf-8"))
    raw.update(default_language="it", language_mode="lock")
    for key in ("orders", "customers", "faq"):
        raw[key]["file"] = str(DEFAULT_FLOW_PATH.parent / raw[key]["file"])
    (tmp_path / "bot.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    locked = TurnEngine.load(tmp_path / "bot.yaml", analyzer=engine.analyzer)
    state = locked.new_state("locked")
    for text in ("hello, where is my order please?", "hola quiero mi pedido"):
        result = locked.turn(state, text, now=OPEN)
        state = result.state
        assert state.language == "it"


@pytest.mark.parametrize("language,status", [("en", "in transit"), ("it", "in transito"),
                                             ("es", "en tránsito"), ("pt", "em trânsito")])
def test_order_statuses_are_in_the_conversations_language(engine, language, status):
    order = next(line.split(",")[0] for line in (DEFAULT_FLOW_PATH.parent / "demo_orders.csv")
                 .read_text().splitlines() if ",in transit," in line)
    state = engine.new_state(f"status-{language}", language=language)
    reply = engine.turn(state, order, now=OPEN).replies[0].text
    assert f": {status}." in reply


@pytest.mark.parametrize("text,choice", [
    ("3", MENU_AGENT), ("3 please", MENU_AGENT), ("la 3", MENU_AGENT), ("opzione 3", MENU_AGENT),
    ("opción 3", MENU_AGENT), ("opção 3", MENU_AGENT), ("tre", MENU_AGENT), ("três", MENU_AGENT),
    ("#3", MENU_AGENT), ("3 grazie 🙏", MENU_AGENT), ("1.", MENU_ORDER), ("a 2 pfv", MENU_FAQ),
    ("uno", MENU_ORDER), ("33", None), ("3 days late!!", None), ("I have 3 orders", None),
    ("no 3", None)])
def test_menu_options_as_customers_type_them(text, choice):
    assert menu_choice(text) == choice


def test_a_typed_option_3_hands_off_in_every_language(engine):
    for language, text in (("it", "opzione 3"), ("es", "opción 3"), ("pt", "a 3 por favor"),
                           ("en", "3 please")):
        result = engine.turn(engine.new_state(f"three-{language}", language=language), text,
                             now=OPEN)
        assert result.handoff is not None, text
        assert "customer asked for a human agent" in result.decision.reasons


@pytest.mark.parametrize("text", ["GRAZIE MILLE!!! 😍", "kkkkkkk", "jajajaja", "ahahah ok",
                                  "hahaha lol", "rsrsrs", "obrigadaaa", "THANK YOU SO MUCH!!!",
                                  "jeje vale gracias", "lol nvm 😂", "MUCHAS GRACIAS!!!",
                                  "MUITO OBRIGADO!!! 😍"])
def test_laughter_and_happy_shouting_are_not_frustration(engine, text):
    cues = extract_cues(text)
    assert not {"all_caps", "exclamation_run", "elongated_word"} & set(cues.fired), cues.fired
    [result] = engine.nlu.analyze([text])
    assert not result.frustrated, (text, result.frustration)


@pytest.mark.parametrize("text", ["ESTO ES UNA VERGÜENZA!!!", "CADÊ MEU PEDIDO??? JÁ FAZ 2 SEMANAS",
                                  "È INUTILE!!! voglio parlare con qualcuno",
                                  "THIS IS USELESS!!!", "THANKS A LOT, STILL NO REFUND!!!"])
def test_shouting_about_a_problem_keeps_its_cues(engine, text):
    assert {"all_caps", "exclamation_run", "question_run"} & set(extract_cues(text).fired)


def test_the_flow_refuses_texts_over_whatsapps_limits(tmp_path):
    raw = yaml.safe_load(DEFAULT_FLOW_PATH.read_text(encoding="utf-8"))
    raw["messages"]["it"]["menu_agent"] = "Parla con un operatore"
    path = tmp_path / "bot.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(FlowError, match="menu_agent .22 > 20 characters"):
        load_flow(path)
    raw["messages"]["it"]["menu_agent"] = "Operatore"
    raw["messages"]["es"]["fallback"] = "x" * 1025
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(FlowError, match="fallback .1025 > 1024"):
        load_flow(path)
    shipped = load_flow()
    assert all(len(shipped.text(k, lang)) <= 20 for lang in shipped.languages
               for k in ("menu_button", "menu_order_status", "menu_faq", "menu_agent"))
    assert Path(shipped.path("demo_orders.csv")).is_file()


@pytest.mark.parametrize("text", ["someone who isn't a bot please", "un asesor por favor",
                                  "alguém de verdade?", "qualcuno in carne e ossa??",
                                  "¿me puedes pasar con un asesor?", "quero um atendente",
                                  "can you pass me to an adviser", "agent pls"])
def test_requests_for_a_human_in_any_words(engine, text):
    result = engine.turn(engine.new_state("ask"), text, now=OPEN)
    assert "customer asked for a human agent" in result.decision.reasons, text


@pytest.mark.parametrize("text", ["my sister will pick up the parcel",
                                  "another person can collect the parcel",
                                  "mia madre ritira il pacco", "o meu vizinho recebe a encomenda",
                                  "la persona que atendió fue muy amable",
                                  "the agent told me it was shipped",
                                  "mi hermano va a recoger el pedido"])
def test_talking_about_a_person_is_not_asking_for_one(engine, text):
    result = engine.turn(engine.new_state("talk"), text, now=OPEN)
    assert "customer asked for a human agent" not in result.decision.reasons, text


@pytest.mark.parametrize("text,button,score", [
    ("5", None, 5), ("5/5", None, 5), ("4 stelle", None, 4), ("cinque", None, 5),
    ("cinco!", None, 5), ("três", None, 3), ("★★★★", None, 4), ("3 out of 5", None, 3),
    ("", "csat_2", 2), ("ND-123456", None, None), ("10", None, None), ("2 o 3", None, None),
    ("grazie", None, None), ("", "csat_x", None)])
def test_satisfaction_scores_tapped_or_typed(text, button, score):
    assert csat_score(text, button) == score


def test_the_customer_hears_once_that_an_agent_has_the_conversation(engine):
    state = engine.new_state("told", language="es")
    handed = engine.turn(state, "quiero hablar con un agente", now=OPEN)
    assert handed.handoff is not None
    first = engine.turn(handed.state, "hola?? hay alguien?", now=OPEN)
    assert [r.text for r in first.replies] == [engine.flow.text("with_agent", "es")]
    assert engine.turn(first.state, "???", now=OPEN).replies == []


def test_an_invoice_question_with_an_order_number_is_not_an_order_status(engine):
    state = engine.new_state("invoice", language="it")
    result = engine.turn(state, "mi serve la fattura dell'ordine ND-100000", now=OPEN)
    assert "ND-100000:" not in result.replies[0].text  # not "Ordine ND-100000: in preparazione"
    assert result.state.order_number == "ND-100000"
    status = engine.turn(engine.new_state("status", language="it"), "dov'è il pacco ND-100000",
                         now=OPEN)
    assert status.replies[0].text.startswith("Ordine ND-100000:")
    cancel = engine.turn(engine.new_state("cancel", language="it"),
                         "voglio annullare l'ordine ND-100000", now=OPEN)
    assert cancel.state.order_number == "ND-100000"  # the agent sees it in the ticket


@pytest.mark.parametrize("text,kind", [
    ("eae", "greeting"), ("oii", "greeting"), ("salve", "greeting"), ("buenas", "greeting"),
    ("bom dia", "greeting"), ("hola buenas tardes", "greeting"), ("vlw", "thanks"),
    ("obg", "thanks"), ("grazie mille!!", "thanks"), ("mil gracias", "thanks"),
    ("thanks a lot", "thanks"), ("chau chau", "goodbye"), ("tchau tchau", "goodbye"),
    ("hasta luego", "goodbye"), ("where is my order", None), ("ok", "acknowledgement"), ("hi", "greeting"), ("oi", "greeting"), ("hehe", "acknowledgement"),
        ("kkkk blz", "acknowledgement"), ("jajaja vale", "acknowledgement"), ("ok grazie", "thanks"),
    ("ciao, dov'è il mio ordine?", None)])
def test_small_talk_as_customers_type_it(text, kind):
    assert small_talk_of(text) == kind


@pytest.mark.parametrize("language,text,key", [
    ("pt", "vlw", "thanks"), ("es", "chau chau", "goodbye"), ("it", "grazie mille!!", "thanks"),
    ("pt", "eae", "welcome")])
def test_the_bot_answers_small_talk_in_the_conversations_language(engine, language, text, key):
    result = engine.turn(engine.new_state(f"talk-{language}", language=language), text, now=OPEN)
    assert result.replies[0].text == engine.flow.text(key, language)


def test_ciao_says_hello_and_ciao_ciao_goodbye():
    assert (small_talk_of("ciao"), small_talk_of("ciao ciao")) == ("greeting", "goodbye")


@pytest.mark.parametrize("text,language", [
    ("ci siete?", "it"), ("bom diaa", "pt"), ("oii", "pt"), ("holaa", "es"), ("hiya", "en"),
    ("opción 3", "es"), ("opção 3", "pt"), ("opzione 3", "it"), ("hey", "en")])
def test_a_first_short_message_opens_the_conversation_in_its_language(text, language):
    from tierline.nlu.language import guess_language
    assert guess_language(text, ["en", "it", "es", "pt"], "it" if language != "it" else "en") \
        == language
