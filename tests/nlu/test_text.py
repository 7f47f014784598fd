"""Input hygiene: broken Unicode and control characters never reach the tokenizer raw."""

import pytest

from tierline.nlu.text import clean_text, is_blank


def test_lone_surrogates_become_replacement_characters():
    cleaned = clean_text("where is \ud800 my order")
    cleaned.encode("utf-8")  # would raise if a surrogate survived
    assert "\ufffd" in cleaned


def test_control_characters_are_blanked_but_newlines_kept():
    assert clean_text("a\x00b\nc") == "a b\nc"


def test_blank_detection():
    assert is_blank("")
    assert is_blank("   \n\t")
    assert is_blank("\u200b\u200b")  # zero-width spaces
    assert not is_blank("😡")
    assert not is_blank("ok")


def test_non_string_is_a_clear_error():
    with pytest.raises(TypeError, match="must be str"):
        clean_text(42)  # type: ignore[arg-type]
