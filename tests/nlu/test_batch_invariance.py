"""One message, one answer: a text's analysis is the same alone, in any batch, at any position.

Before, the int8 graphs quantised activations with one scale per padded batch tensor, so a
text's scores moved with its neighbours ("È INUTILE!!! voglio parlare con qualcuno": frustration
0.41 alone, 0.18-0.74 in batches of real messages, the ``frustrated`` flag flipping). Hypothesis
draws batches of real messages in four languages, with lengths from one token up past the
model window, puts a text anywhere in them, and checks every probability against the text
scored alone, on both shipped bundles, through the one entry point and through each bundle with
one and two scoring threads.
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tierline.nlu import Analyzer, BundleAnalyzer
from tierline.nlu.analyzer import AnalysisResult
from tierline.nlu.bundle import DEFAULT_BUNDLE_DIR, MULTILINGUAL_BUNDLE_DIR

DATA = Path(__file__).resolve().parents[2] / "data"
XLMT = {"en": "english", "it": "italian", "es": "spanish", "pt": "portuguese"}
TOLERANCE = 1e-6


@functools.cache
def corpus() -> dict[str, list[str]]:
    """Real messages per language: XLM-T validation tweets and the hand-checked support
    messages (it/es/pt), plus WhatsApp-style one-token texts."""
    out = {lang: (DATA / "raw" / "xlmt_sentiment" / folder / "val_text.txt")
           .read_text(encoding="utf-8").splitlines()[:120] for lang, folder in XLMT.items()}
    with open(DATA / "handchecked" / "support_it_es_pt.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out[row["language"]].append(row["text"])
    out["en"] += ["where is my order?", "THIS IS USELESS!!! I want a human", "ok", "3",
                  "lol 😂😂", "thx", "refund NOW", "?"]
    out["it"] += ["È INUTILE!!! voglio parlare con qualcuno", "ahahah ok", "grazie 🙏", "ci siete???"]
    out["es"] += ["jajaja vale", "ESTO ES UNA VERGÜENZA!!!", "opción 3", "hola"]
    out["pt"] += ["kkkkk", "cadê meu pedido???", "oi", "obrigadaaa"]
    return out


@st.composite
def messages(draw) -> str:
    """A real message, or a run of words cut from one language's messages: from one word up to
    well past the 128-token window (a pasted log)."""
    language = draw(st.sampled_from(sorted(XLMT)))
    pool = corpus()[language]
    if draw(st.booleans()):
        return draw(st.sampled_from(pool))
    words = " ".join(pool).split()
    count = draw(st.integers(1, 220))
    start = draw(st.integers(0, len(words) - count))
    return " ".join(words[start:start + count])


def same(batched: AnalysisResult, alone: AnalysisResult) -> None:
    """Every probability within ``TOLERANCE``, and the same labels, language and model."""
    assert batched.intent == alone.intent
    assert batched.frustrated == alone.frustrated
    assert (batched.language, batched.model) == (alone.language, alone.model)
    assert abs(batched.frustration - alone.frustration) <= TOLERANCE
    assert max(abs(batched.intents[k] - p) for k, p in alone.intents.items()) <= TOLERANCE
    assert batched.cues == alone.cues and batched.truncated == alone.truncated


@pytest.fixture(scope="module")
def shipped() -> Analyzer:
    return Analyzer.load()


BATCHES = settings(max_examples=25, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture,
                                          HealthCheck.too_slow])


@BATCHES
@given(batch=st.lists(messages(), min_size=1, max_size=12), text=messages(), data=st.data())
def test_entry_point_gives_each_text_its_own_answer(shipped, batch, text, data):
    position = data.draw(st.integers(0, len(batch)))
    batch = batch[:position] + [text] + batch[position:]
    results = shipped.analyze(batch)
    for t, result in zip(batch, results):
        same(result, shipped.analyze([t])[0])


@pytest.fixture(scope="module", params=[(DEFAULT_BUNDLE_DIR, 1), (DEFAULT_BUNDLE_DIR, 2),
                                        (MULTILINGUAL_BUNDLE_DIR, 1), (MULTILINGUAL_BUNDLE_DIR, 2)],
                ids=["nlu-1thread", "nlu-2threads", "multilingual-1thread",
                     "multilingual-2threads"])
def bundle(request) -> BundleAnalyzer:
    folder, threads = request.param
    analyzer = BundleAnalyzer.load(folder, threads=threads)
    yield analyzer
    analyzer.close()


@BATCHES
@given(batch=st.lists(messages(), min_size=2, max_size=16), data=st.data())
def test_each_bundle_scores_a_text_the_same_anywhere(bundle, batch, data):
    position = data.draw(st.integers(0, len(batch) - 1))
    text = batch[position]
    alone = bundle.analyze([text])[0]
    same(bundle.analyze(batch)[position], alone)
    intent_logits, frustration_logit = bundle.raw_logits(batch)
    alone_intent, alone_frustration = bundle.raw_logits([text])
    assert (intent_logits[position] == alone_intent[0]).all()
    assert frustration_logit[position] == alone_frustration[0]


def test_the_measured_message_no_longer_moves():
    """The issue's own example, in the 12-batch shape it was measured in, on both bundles."""
    text = "È INUTILE!!! voglio parlare con qualcuno"
    others = corpus()["it"][:40] + corpus()["en"][:40]
    for folder in (DEFAULT_BUNDLE_DIR, MULTILINGUAL_BUNDLE_DIR):
        analyzer = BundleAnalyzer.load(folder)
        alone = analyzer.analyze([text])[0]
        for k in range(12):
            batch = others[k * 5:k * 5 + 15]
            batch.insert(k % 16, text)
            assert analyzer.analyze(batch)[batch.index(text)].frustration == alone.frustration


def test_results_name_their_language_and_model(shipped):
    italian, english, short = shipped.analyze(
        ["È INUTILE!!! voglio parlare con qualcuno", "where is my order??", "ok"])
    assert (italian.language, italian.model.name) == ("it", "nlu-multilingual")
    assert (english.language, english.model.name) == ("en", "nlu")
    assert short.language == "en"  # nothing to detect: the default language
    assert italian.model.version.startswith("sha256:") and italian.model != english.model
    forced = shipped.analyze(["ok"], language="pt")[0]
    assert (forced.language, forced.model.name) == ("pt", "nlu-multilingual")
    assert italian.to_dict()["model"] == {"name": "nlu-multilingual",
                                          "version": italian.model.version}


def test_each_bundle_flags_frustration_at_its_own_threshold(shipped):
    for language in ("en", "it"):
        bundle = shipped.bundle_for(language)
        for result in shipped.analyze(corpus()[language][:60], language=language):
            threshold = bundle.config.frustration_threshold
            assert result.frustrated == (result.frustration >= threshold)
    assert (shipped.bundle_for("en").config.frustration_threshold
            != shipped.bundle_for("it").config.frustration_threshold)


def test_a_bundle_warns_on_a_language_it_was_not_trained_for():
    english_only = Analyzer.load(DEFAULT_BUNDLE_DIR)
    result = english_only.analyze(["È INUTILE!!! voglio parlare con qualcuno"])[0]
    assert result.language == "it" and result.model.name == "nlu"
    assert any("not trained for language 'it'" in w for w in result.warnings)
    with pytest.raises(ValueError, match="not one of"):
        english_only.analyze(["hello"], language="de")
