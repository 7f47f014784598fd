"""Behaviour of the shipped default engine on hand-checked it/es/pt messages.

The shipped default (``TurnEngine.shipped()``, what ``make run`` serves) routes Italian,
Spanish and Portuguese conversations to the multilingual bundle and the policy fitted on it.
Each message of the two hand-checked sets (``data/handchecked/support_it_es_pt.csv`` and
``support_it_es_pt_holdout.csv``, written and checked by hand; labels follow this project's
intent definitions, e.g. "when does my parcel arrive" is ``delivery_period`` as in Bitext) opens
a fresh conversation during business hours: the intent must be the one written beside it, the
escalation decision the expected one, and the bot must answer in the customer's language.

The misses measured on the shipped models are listed in ``KNOWN_MISSES`` as strict expected
failures, so the list cannot silently go stale: a miss that gets fixed fails the suite until it
is removed from here and from the model card. The first set flatters the model (its
hand-written training intents were written knowing the previous model's misses on it); the
holdout set was written before that model was trained.
"""

from __future__ import annotations

import pytest

from tierline.nlu.bundle import DEFAULT_BUNDLE_DIR
from tierline.nlu.engine import TurnEngine
from tierline.training.compare_models import OPEN, engine_scores, first_turn
from tierline.training.data import HANDCHECKED_SETS, read_handchecked

ROWS = [row for path in HANDCHECKED_SETS.values() for row in read_handchecked(path)]
#: Measured misses of the shipped engine (the retrained multilingual bundle of 2026-12-03 got
#: three of the earlier ones right, and the double-charge cue a fourth: no longer listed; the
#: bundle of 2026-12-04, trained on out-of-scope questions too, misses one more).
KNOWN_MISSES = {
    "como posso obter a fatura da minha compra?": "check_invoice (the bundle of 2026-12-04; the "
                                                  "invoices FAQ answers both)",
    "non riesco più ad accedere al mio account": "delete_account",
    "ya no puedo entrar en mi cuenta": "registration_problems",
    "já não consigo entrar na minha conta": "registration_problems",
}
#: Near ties of the int8 model, which one fresh environment reads one way and another the other
#: way (onnxruntime's int8 kernels differ across CPUs): expected failures that may pass.
NEAR_TIES = {
    "mi avete addebitato due volte lo stesso ordine":
        "change_order 0.40 against payment_issue on one machine, payment_issue on another; the "
        "double-charge cue hands it to billing either way",
}
#: Messages whose reply language is detected wrongly.
LANGUAGE_MISSES = {"posso pagare con satispay o solo con carta?": "detected as Portuguese"}


@pytest.fixture(scope="module")
def engine():
    return TurnEngine.shipped()


def _marked(misses: dict[str, str]):
    """Every row as a test case; the ones in ``misses`` as strict expected failures."""
    for row in ROWS:
        marks = ([pytest.mark.xfail(strict=True, reason=misses[row["text"]])]
                 if row["text"] in misses else
                 [pytest.mark.xfail(strict=False, reason=NEAR_TIES[row["text"]])]
                 if row["text"] in NEAR_TIES else [])
        yield pytest.param(row, marks=marks, id=f"{row['language']}:{row['text'][:30]}")


@pytest.mark.parametrize("row", list(_marked(KNOWN_MISSES)))
def test_handchecked_message(engine, row):
    result = first_turn(engine, row["text"])
    got = (result.analysis.intent, round(result.analysis.intent_confidence, 2),
           round(result.analysis.frustration, 2), round(result.decision.p_escalate, 2))
    if row["intent"]:
        assert result.analysis.intent == row["intent"], got
    if row["escalate"]:
        assert result.decision.escalate == (row["escalate"] == "yes"), (got, result.decision.reasons)


@pytest.mark.parametrize("row", list(_marked(LANGUAGE_MISSES)))
def test_bot_answers_in_the_customers_language(engine, row):
    result = first_turn(engine, row["text"])
    assert result.state.language == row["language"]
    reply = result.replies[0].text
    if result.decision.escalate:
        assert reply == engine.flow.text("handoff", row["language"])
    else:
        for lang in engine.flow.languages:
            if lang != row["language"]:
                assert reply not in {engine.flow.text(k, lang) for k in ("fallback", "welcome", "thanks")}


def test_routed_engine_beats_the_english_pair_on_these_messages(engine):
    english = TurnEngine.load(nlu_dir=DEFAULT_BUNDLE_DIR)
    routed, plain = engine_scores(engine, ROWS), engine_scores(english, ROWS)
    assert routed["intents"][0] >= plain["intents"][0] + 30, (routed, plain)
    # The rules (cues, requests, small talk) read every language on both pairs: the English
    # pair escalates 50 of 63 since the rules of 2026-12-04, the routed engine all 63.
    assert routed["escalations"][0] >= plain["escalations"][0] + 10, (routed, plain)


def test_conversation_keeps_its_language_on_an_order_number(engine):
    first = first_turn(engine, "dov'è il mio ordine?")
    assert first.state.language == "it"
    second = engine.turn(first.state, "ND-100000", now=OPEN)
    assert second.state.language == "it"
    assert second.replies[0].text.startswith("Ordine ND-100000:")


def test_questions_the_shop_cannot_answer_count_as_failed_replies(engine):
    """The it/es/pt out-of-scope test set (written before the bundle was trained on out-of-scope
    rows, never trained on): the bundle calls them out of scope, and the bot counts them as
    failed replies, so the "N failed replies" trigger can fire. Measured on 2026-12-04:
    out of scope 36/38, 42/43, 37/40 (its out-of-scope intent-test rows included); failed
    replies 33/34, 38/39, 35/36 (the bundle before: 9/38, 15/43, 13/40 and 21/34, 29/39, 28/36)."""
    from tierline.training.compare_models import failed_reply_figures, intents_test_figures

    failed = {lang: tuple(map(int, v.split("/"))) for lang, v in failed_reply_figures(engine).items()}
    assert set(failed) == {"it", "es", "pt"}
    # Bars a row or two under the measured figures (int8 near ties differ across CPUs).
    assert all(right / asked >= 0.8 for right, asked in failed.values()), failed
    figures = intents_test_figures(engine.stack_for("it").analyzer)
    recall = {lang: tuple(map(int, f["out_of_scope_recall"].split("/"))) for lang, f in figures.items()}
    assert all(right / asked >= 0.85 for right, asked in recall.values()), recall
    assert all(f["accuracy"] >= 0.85 for f in figures.values()), figures
