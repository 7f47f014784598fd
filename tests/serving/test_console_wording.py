"""Reasons and intents as agents read them, in English, Italian, Spanish and Portuguese.

Decisions carry reason codes with parameters (``tierline.nlu.reasons``, whose English phrases
``tests/nlu/test_reasons.py`` checks); the console words them per language
(``tierline.serving.console.wording``). Unit tests, no service."""

from __future__ import annotations

import pytest

from tierline.nlu.labels import INTENT_LABELS
from tierline.nlu.policy import FEATURE_NAMES
from tierline.nlu.reasons import REASON_CODES, Reason, from_stored
from tierline.serving.console.i18n import LANGUAGES, STRINGS
from tierline.serving.console.wording import WORDS, intent_name, reason_sentence

DELETE = Reason("sensitive_topic", {"intent": "delete_account"})
TWICE = Reason("failed_replies", {"count": 2})
ONCE = Reason("failed_replies", {"count": 1})
FRUSTRATED = Reason("frustrated", {"score": 0.934, "cues": ["all_caps", "negative_word:useless"]})
VIP_PROBLEM = Reason("problem_report", {"tier": "vip"})
SCORE = Reason("score", {"p": 0.615, "tier": "standard", "threshold": 0.6,
                         "features": ["frustration", "turns"]})

SENTENCES = {
    "en": {
        DELETE: "Sensitive topic: delete the account.",
        TWICE: "The bot failed to help 2 times.",
        ONCE: "The bot failed to help once.",
        FRUSTRATED: "The customer is frustrated (score 0.93): all caps and “useless”.",
        VIP_PROBLEM: "A VIP customer reports a problem.",
        SCORE: "Escalation score 0.61, at or above the standard threshold of 0.60 (mostly "
               "frustration and the conversation's length).",
    },
    "it": {
        DELETE: "Argomento delicato: eliminare l'account.",
        TWICE: "Il bot non è riuscito ad aiutare 2 volte.",
        ONCE: "Il bot non è riuscito ad aiutare una volta.",
        FRUSTRATED: "Il cliente è frustrato (punteggio 0,93): tutto maiuscolo e “useless”.",
        VIP_PROBLEM: "Un cliente VIP segnala un problema.",
        SCORE: "Punteggio di passaggio 0,61, pari o superiore alla soglia standard di 0,60 "
               "(soprattutto per la frustrazione e la lunghezza della conversazione).",
    },
    "es": {
        DELETE: "Tema delicado: eliminar la cuenta.",
        TWICE: "El bot no pudo ayudar 2 veces.",
        ONCE: "El bot no pudo ayudar una vez.",
        FRUSTRATED: "El cliente está frustrado (puntuación 0,93): todo en mayúsculas y “useless”.",
        VIP_PROBLEM: "Un cliente VIP informa de un problema.",
        SCORE: "Puntuación de derivación 0,61, igual o superior al umbral estándar de 0,60 "
               "(sobre todo por la frustración y la longitud de la conversación).",
    },
    "pt": {
        DELETE: "Assunto sensível: excluir a conta.",
        TWICE: "O bot não conseguiu ajudar 2 vezes.",
        ONCE: "O bot não conseguiu ajudar uma vez.",
        FRUSTRATED: "O cliente está frustrado (pontuação 0,93): tudo em maiúsculas e “useless”.",
        VIP_PROBLEM: "Um cliente VIP relata um problema.",
        SCORE: "Pontuação de encaminhamento 0,61, igual ou acima do limite padrão de 0,60 "
               "(principalmente: a frustração e o tamanho da conversa).",
    },
}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_reasons_read_as_sentences_in_the_agents_language(lang):
    assert {reason: reason_sentence(reason, lang) for reason in SENTENCES[lang]} == SENTENCES[lang]
    # As stored (plain JSON) too.
    assert reason_sentence(DELETE.to_dict(), lang) == SENTENCES[lang][DELETE]


def test_intents_have_display_names_in_every_language():
    assert [intent_name("delete_account", lang) for lang in LANGUAGES] == [
        "Delete the account", "Eliminare l'account", "Eliminar la cuenta", "Excluir a conta"]
    assert intent_name("contact_human_agent", "it") == "Parlare con un operatore"
    assert intent_name("not_a_label", "it") == "not_a_label"  # shown as it is, never a crash


def test_every_language_has_every_word():
    for table in (STRINGS, WORDS):
        assert set(table) == set(LANGUAGES)
        for lang in LANGUAGES:
            assert table[lang].keys() == table["en"].keys(), lang
    words = WORDS["en"]
    assert all(f"intent.{name}" in words for name in INTENT_LABELS)
    assert all(f"feature.{name}" in words for name in FEATURE_NAMES)
    assert all(f"reason.{code}" in words for code in REASON_CODES
               if code not in ("other", "unspecified"))


def test_a_ticket_stored_before_codes_is_worded_like_a_new_one():
    old = from_stored(None, ["sensitive topic: get_refund", "2 failed bot replies",
                             "something only an old version said"])
    assert [reason_sentence(r, "it") for r in old] == [
        "Argomento delicato: ottenere un rimborso.", "Il bot non è riuscito ad aiutare 2 volte.",
        "something only an old version said"]
    new = from_stored([DELETE.to_dict()], ["sensitive topic: delete_account"])
    assert new == [DELETE]


def test_an_odd_stored_reason_reads_as_something_never_a_crash():
    assert reason_sentence({"code": "failed_replies", "params": {}}, "it") == "failed replies"
    assert reason_sentence({"code": "from_a_newer_version", "params": {}}, "es") == \
        "from_a_newer_version"
    assert reason_sentence({"code": "sensitive_topic", "params": {"intent": None}}, "pt") == \
        "Assunto sensível: –."
