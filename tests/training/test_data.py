"""The data mapping: label set, sources, and no near-duplicate leakage across splits."""

from collections import Counter, defaultdict

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from tierline.nlu.labels import INTENT_LABELS
from tierline.training import data


@pytest.fixture(scope="module")
def intent_rows():
    return data.intent_rows()


def test_every_label_has_rows_in_every_split(intent_rows):
    counts = Counter((r["label"], r["split"]) for r in intent_rows)
    for label in INTENT_LABELS:
        for split in data.SPLITS:
            assert counts[(label, split)] >= 5, (label, split)


def test_only_known_labels_and_renamed_invoices(intent_rows):
    labels = {r["label"] for r in intent_rows}
    assert labels == set(INTENT_LABELS)
    assert "check_invoices" not in labels


def test_banking77_mapping_adds_natural_phrasing(intent_rows):
    mapped = {r["label"] for r in intent_rows if r["source"] == "banking77" and r["label"] != "out_of_scope"}
    assert {"get_refund", "payment_issue", "delete_account", "recover_password"} <= mapped
    texts = {r["text"] for r in intent_rows if r["source"] == "banking77"}
    excluded = {t for t, c in data.read_banking77() if c in data.BANKING77_EXCLUDED}
    assert not texts & excluded


def test_bitext_near_duplicates_do_not_straddle_splits():
    rows = data.bitext_with_splits()
    by_intent = defaultdict(list)
    for r in rows:
        by_intent[r["intent"]].append(r)
    worst = 0.0
    for intent in ("track_order", "get_refund", "complaint", "cancel_order"):
        items = by_intent[intent]
        texts = [data.normalise(r["text"]) for r in items]
        tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(texts)
        train = np.array([r["split"] == "train" for r in items])
        sim = (tfidf[~train] @ tfidf[train].T).toarray()
        worst = max(worst, float(sim.max()))
    assert worst < data.NEAR_DUPLICATE_COSINE


def test_splits_are_deterministic():
    a = data.frustration_rows()
    b = data.frustration_rows()
    assert [(r["text"], r["split"]) for r in a] == [(r["text"], r["split"]) for r in b]


def test_frustration_sources_and_shouted_rows_only_in_train():
    rows = data.frustration_rows()
    sources = Counter((r["source"], r["split"]) for r in rows)
    assert sources[("goemotions", "validation")] > 5000
    assert sources[("xlmt_en", "validation")] > 300
    assert all(r["split"] == "train" for r in rows if r["source"].endswith("_shouted"))
    assert all(r["label"] == 1 for r in rows if r["source"].endswith("_shouted"))


def test_xlmt_unicode_escapes_are_decoded():
    texts = [t for t, _ in data.read_xlmt("english", "train")]
    assert not any("\\u2019" in t for t in texts)
    assert any("\u2019" in t for t in texts)


def test_handwritten_it_es_pt_rows_never_include_their_test_set():
    """The WhatsApp-style training rows and their test set are disjoint, every label in every
    language is there, and the test set is read by nothing that trains."""
    import csv
    from collections import Counter

    from tierline.training.data import WHATSAPP_INTENTS, handwritten_intent_rows

    rows = handwritten_intent_rows()
    assert len(rows) == 465 + 1116 + 360
    per = Counter((r["language"], r["label"]) for r in handwritten_intent_rows((WHATSAPP_INTENTS,)))
    assert len(per) == 3 * 31 and set(per.values()) == {12}
    test_file = WHATSAPP_INTENTS.parents[1] / "handchecked" / "intents_it_es_pt_test.csv"
    with open(test_file, encoding="utf-8", newline="") as fh:
        test = {" ".join(r["text"].lower().split()) for r in csv.DictReader(fh)}
    assert len(test) == 372
    assert not test & {" ".join(r["text"].lower().split()) for r in rows}
