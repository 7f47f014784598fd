"""Reply-language detection: lingua for real sentences, function words for a lone greeting,
and the conversation's language kept when a message says nothing about language."""

from __future__ import annotations

import pytest

from tierline.nlu.language import guess_language, lingua_scores, stopword_guess

LANGS = ["en", "it", "es", "pt"]


@pytest.mark.parametrize("text, expected", [
    ("where is my parcel? it was due on monday", "en"),
    ("voglio parlare con un operatore", "it"),
    ("mi hanno addebitato due volte lo stesso ordine", "it"),
    ("¡ESTO ES INÚTIL!", "es"),
    ("quiero que me devuelvan el dinero", "es"),
    ("quero falar com um atendente", "pt"),
    ("fui cobrado duas vezes pelo mesmo pedido", "pt"),
    ("hola", "es"),
    ("olá", "pt"),
    ("ciao", "it"),
    ("grazie mille", "it"),
    ("obrigado", "pt"),
])
def test_detects_the_customers_language(text, expected):
    assert guess_language(text, LANGS, default="en") == expected


@pytest.mark.parametrize("text", ["ND-123456", "123", "!!!", "👍"])
def test_messages_without_language_keep_the_conversation_language(text):
    assert guess_language(text, LANGS, default="pt") == "pt"


def test_lingua_beats_function_words_on_a_sentence_without_them():
    text = "Spedizione lentissima, pacco arrivato rotto"  # no Italian function word listed
    assert stopword_guess(text, LANGS, default="en") == "en"
    assert guess_language(text, LANGS, default="en") == "it"


def test_only_allowed_languages_are_considered():
    scores = lingua_scores("dov'è il mio pacco", ["en", "es"])
    assert set(scores) <= {"en", "es"}
    assert guess_language("dov'è il mio pacco", ["en", "es"], default="en") in {"en", "es"}
    assert guess_language("where is my parcel", ["en"], default="en") == "en"


def test_unknown_language_code_is_a_clear_error():
    with pytest.raises(ValueError, match="unsupported language code"):
        lingua_scores("hello", ["en", "xx"])


@pytest.mark.parametrize("text", ["ok", "rimborso", "Maria"])
def test_one_word_without_function_words_does_not_switch(text):
    assert guess_language(text, LANGS, default="pt") == "pt"


def test_measured_choice_lingua_beats_function_words_on_xlmt_validation():
    from tierline.training.compare_models import language_detection_figures

    figures = language_detection_figures(LANGS)
    shipped, stopwords = figures["combined (shipped)"], figures["stopwords"]
    assert shipped["all"] > stopwords["all"] + 0.15, figures
    assert min(shipped[lang] for lang in LANGS) > 0.9, figures
    assert shipped["handchecked_short_messages"] >= stopwords["handchecked_short_messages"]
