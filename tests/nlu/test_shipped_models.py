"""Behaviour of the shipped models (models/nlu) on real sentences."""

import time

import pytest

from tierline.nlu.labels import INTENT_LABELS
from tierline.training.data import shout

CLEAR_INTENTS = [
    ("where is my order? it still hasn't arrived", "track_order"),
    ("I want a refund for the broken blender", "get_refund"),
    ("I was charged twice for the same purchase", "payment_issue"),
    ("I'd like to cancel my order please", "cancel_order"),
    ("can I speak to a human agent", "contact_human_agent"),
    ("I forgot my password and can't log in", "recover_password"),
    ("what payment methods do you accept?", "check_payment_methods"),
    ("how can I get an invoice for my purchase?", "get_invoice"),
    ("I want to change the shipping address of my order", "change_shipping_address"),
    ("hello there", "greeting"),
    ("thank you so much for your help", "thanks"),
]

OUT_OF_SCOPE = [
    "what's the weather like in Rome tomorrow?",
    "give me a good recipe for lasagna",
    "who won the football match last night?",
    "what is the capital of Australia",
    "set an alarm for 7 am",
]

NEUTRAL_REQUESTS = [
    "where is my order",
    "i want to change my delivery address",
    "how do i reset my password",
    "can you send me the invoice for my last purchase",
    "i would like to cancel my subscription to the newsletter",
]


@pytest.mark.parametrize("text,intent", CLEAR_INTENTS)
def test_clear_intents(analyzer, text, intent):
    result = analyzer.analyze([text])[0]
    assert result.intent == intent, (text, result.intent, result.intent_confidence)
    assert result.intent_confidence > 0.5


@pytest.mark.parametrize("text", OUT_OF_SCOPE)
def test_out_of_scope_is_out_of_scope(analyzer, text):
    result = analyzer.analyze([text])[0]
    assert result.intent == "out_of_scope", (text, result.intent, result.intent_confidence)


def test_result_has_full_distribution(analyzer):
    result = analyzer.analyze(["where is my parcel"])[0]
    assert list(result.intents) == list(INTENT_LABELS)
    assert abs(sum(result.intents.values()) - 1.0) < 1e-4
    assert result.intents[result.intent] == result.intent_confidence


def test_shouting_ranks_above_calm_above_positive(analyzer):
    loud, calm, positive = analyzer.analyze(["THIS IS USELESS!!!", "this is useless", "this is useful"])
    assert loud.frustration > calm.frustration > positive.frustration
    assert {"all_caps", "exclamation_run", "negative_word:useless"} <= set(loud.cues)
    assert loud.frustrated


@pytest.mark.parametrize("text", NEUTRAL_REQUESTS)
def test_all_caps_rewrite_raises_frustration(analyzer, text):
    calm, loud = analyzer.analyze([text, text.upper()])
    assert loud.frustration > calm.frustration


def test_shouted_rewrite_with_exclamations_raises_more(analyzer):
    text = NEUTRAL_REQUESTS[0]
    calm, caps, shouted = analyzer.analyze([text, text.upper(), shout(text)])
    assert shouted.frustration > caps.frustration > calm.frustration


def test_calm_request_is_not_frustrated(analyzer):
    assert not analyzer.analyze(["could you tell me where my order is, please?"])[0].frustrated


def test_batch_results_match_single_results(analyzer):
    texts = ["hi", "I want a refund now, this is the third time I ask!!", "where is my order"]
    batch = analyzer.analyze(texts)
    for text, b in zip(texts, batch):
        single = analyzer.analyze([text])[0]
        assert single.intent == b.intent
        # int8 activations are quantised per batch: allow a small difference.
        assert abs(single.frustration - b.frustration) < 0.05


def test_batches_are_padded_to_their_longest_member(analyzer):
    encodings = analyzer.tokenizer.encode_batch(["hi", "where is my order"])
    assert len(encodings[0].ids) == len(encodings[1].ids) < 16


class TestBadInput:
    def test_empty_and_whitespace_give_an_empty_result(self, analyzer):
        for r in analyzer.analyze(["", "   \n "]):
            assert r.empty and r.intent == "out_of_scope" and r.frustration == 0.0
            assert r.warnings

    def test_50k_characters_are_truncated_and_say_so(self, analyzer):
        t0 = time.perf_counter()
        r = analyzer.analyze(["where is my order " * 2800])[0]
        assert time.perf_counter() - t0 < 2.0
        assert r.truncated and any("truncated" in w for w in r.warnings)
        assert r.intent == "track_order"

    def test_emoji_mixed_scripts_and_surrogates(self, analyzer):
        texts = ["😡😡😡", "где мой заказ? 我的订单在哪里 where is my order", "refund \ud800 please",
                 "\u202eredro ym si erehw", "\x00\x01\x02"]
        results = analyzer.analyze(texts)
        assert len(results) == len(texts)
        for r in results:
            assert 0.0 <= r.frustration <= 1.0
            assert r.intent in INTENT_LABELS

    def test_order_is_preserved_with_blanks_in_between(self, analyzer):
        results = analyzer.analyze(["where is my order", "", "hello there"])
        assert [r.empty for r in results] == [False, True, False]
        assert results[0].intent == "track_order" and results[2].intent == "greeting"

    def test_a_single_string_is_rejected_clearly(self, analyzer):
        with pytest.raises(TypeError, match="list of texts"):
            analyzer.analyze("where is my order")

    def test_non_string_item_is_rejected_clearly(self, analyzer):
        with pytest.raises(TypeError, match="must be str"):
            analyzer.analyze(["ok", None])
