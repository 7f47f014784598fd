"""The multilingual model's frustration data: XLM-T it/es/pt added, English data unchanged."""

from __future__ import annotations

from collections import Counter

import pytest

from tierline.training.data import XLMT_LANGUAGES, frustration_rows


@pytest.fixture(scope="module")
def rows():
    return frustration_rows(), frustration_rows(xlmt_languages=tuple(XLMT_LANGUAGES))


def test_english_rows_are_the_same_whatever_is_added(rows):
    english, multilingual = rows
    assert multilingual[: len(english)] == english


def test_each_language_is_split_like_the_english_tweets(rows):
    _, multilingual = rows
    for code in ("it", "es", "pt"):
        mine = [r for r in multilingual if r["source"] == f"xlmt_{code}"]
        splits = Counter(r["split"] for r in mine)
        assert splits["validation"] == 324  # the whole XLM-T val file
        assert 0.75 < splits["train"] / (splits["train"] + splits["test"]) < 0.85
        shouted = [r for r in multilingual if r["source"] == f"xlmt_{code}_shouted"]
        assert shouted and all(r["label"] == 1 and r["split"] == "train" for r in shouted)
        assert all(r["text"].endswith("!!!") for r in shouted)


def test_unknown_language_is_refused():
    with pytest.raises(ValueError, match="unknown XLM-T languages"):
        frustration_rows(xlmt_languages=("english", "klingon"))
