"""Surface cues: what fires, and that the vector only grows with more shouting."""

from tierline.nlu.cues import CUE_NAMES, extract_cues


def value(text: str, cue: str) -> float:
    return float(extract_cues(text).values[CUE_NAMES.index(cue)])


def test_shouting_and_exclamations_fire():
    cues = extract_cues("THIS IS USELESS!!!")
    assert "all_caps" in cues.fired
    assert "exclamation_run" in cues.fired
    assert "negative_word:useless" in cues.fired
    assert value("THIS IS USELESS!!!", "all_caps") == 1.0


def test_calm_text_fires_nothing():
    cues = extract_cues("could you tell me where my order is, please?")
    assert cues.fired == ()
    assert not cues.values.any()


def test_single_acronym_is_not_shouting():
    assert value("my DHL parcel is late", "all_caps") == 0.0


def test_multilingual_negative_words_match_with_or_without_accents():
    assert "negative_word:inutil" in extract_cues("Esto es INÚTIL").fired
    assert "negative_word:inutil" in extract_cues("esto es inutil").fired
    assert "negative_word:vergogna" in extract_cues("che vergogna, servizio ridicolo").fired
    assert "negative_word:ridicolo" in extract_cues("che vergogna, servizio ridicolo").fired


def test_elongation_question_runs_and_repetition():
    assert "elongated_word" in extract_cues("sooooo slow").fired
    assert "question_run" in extract_cues("where is it???").fired
    assert "repeated_complaint" in extract_cues("I am asking again for the third time").fired
    assert "repeated_complaint" in extract_cues("ve lo chiedo di nuovo").fired


def test_values_are_bounded_and_monotone_in_exclamations():
    assert 0.0 <= value("!" * 500, "exclamations") <= 1.0
    assert value("no!", "exclamations") < value("no!!!", "exclamations")


def test_huge_input_is_cheap_and_bounded():
    cues = extract_cues("A" * 50_000)
    assert cues.values.max() <= 1.0
