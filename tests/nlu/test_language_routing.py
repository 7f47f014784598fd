"""The shipped engine routes each conversation to the model stack of its language.

English stays on the English pair (``models/nlu`` + ``models/policy``); Italian, Spanish and
Portuguese go to the multilingual bundle and the policy fitted on its outputs
(``models/nlu-multilingual`` + ``models/policy-multilingual``), loaded on first use. A policy
must only ever read the outputs of the bundle it was fitted on.
"""

from __future__ import annotations

import pytest

from tierline.nlu.bundle import MULTILINGUAL_BUNDLE_DIR, MULTILINGUAL_POLICY_DIR
from tierline.nlu.engine import LanguageRoute, TurnEngine
from tierline.training.compare_models import OPEN, first_turn


@pytest.fixture(scope="module")
def engine(analyzer):
    return TurnEngine.shipped(analyzer=analyzer)


def test_second_stack_loads_only_when_a_conversation_needs_it(analyzer):
    engine = TurnEngine.shipped(analyzer=analyzer)
    first_turn(engine, "where is my order?")
    assert not engine.routed.loaded
    first_turn(engine, "dov'è il mio ordine?")
    assert engine.routed.loaded


def test_each_language_runs_on_its_own_pair(engine):
    english = first_turn(engine, "where is my order?")
    italian = first_turn(engine, "dov'è il mio ordine?")
    multilingual = engine.stack_for("it")
    assert english.analysis.model == engine.analyzer.model_id
    assert italian.analysis.model == multilingual.analyzer.model_id != engine.analyzer.model_id
    assert multilingual.policy.artifact != engine.policy.artifact
    assert english.state.language == "en" and italian.state.language == "it"
    assert italian.analysis.intent == "track_order"
    assert (english.model_stack, italian.model_stack) == ("default", "multilingual")


def test_short_message_stays_on_the_conversations_stack(engine):
    italian = first_turn(engine, "dov'è il mio ordine?")
    number = engine.turn(italian.state, "ND-100000", now=OPEN)
    assert number.state.language == "it"
    assert number.analysis.model == engine.stack_for("it").analyzer.model_id
    assert number.replies[0].text.startswith("Ordine ND-100000:")


def test_an_analysis_from_the_other_stack_is_redone(engine):
    italian = first_turn(engine, "dov'è il mio ordine?")
    # Without its conversation, "1" is scored on the default (English) stack...
    precomputed = engine.analyze_texts(["1"])[0]
    assert precomputed.model == engine.analyzer.model_id
    # ...but the turn belongs to an Italian conversation, so the multilingual stack redoes it.
    result = engine.turn(italian.state, "1", now=OPEN, analysis=precomputed)
    assert result.analysis.model == engine.stack_for("it").analyzer.model_id


def test_analyze_turns_batches_per_stack_in_input_order(engine):
    states = [engine.new_state(f"c{i}") for i in range(4)]
    texts = ["I was charged twice", "mi avete addebitato due volte",
             "where is my parcel", "¿dónde está mi paquete?"]
    results = engine.analyze_turns(states, texts)
    english, multilingual = engine.analyzer.model_id, engine.stack_for("es").analyzer.model_id
    assert [r.model for r in results] == [english, multilingual, english, multilingual]
    alone = [engine.turn(s, t, now=OPEN).analysis for s, t in zip(states, texts)]
    assert [r.intent for r in results] == [a.intent for a in alone]
    with pytest.raises(ValueError):
        engine.analyze_turns(states[:1], texts)


def test_locked_language_decides_the_stack(engine):
    state = engine.new_state("c9", language="pt")
    result = engine.turn(state, "where is my order?", now=OPEN)
    assert result.state.language == "pt"
    assert result.analysis.model == engine.stack_for("pt").analyzer.model_id


def test_without_a_route_one_pair_serves_every_language(analyzer):
    engine = TurnEngine.load(analyzer=analyzer)
    result = first_turn(engine, "dov'è il mio ordine?")
    assert result.state.language == "it" and result.analysis.model == analyzer.model_id


def test_a_custom_route(analyzer):
    route = LanguageRoute(("es",), MULTILINGUAL_BUNDLE_DIR, MULTILINGUAL_POLICY_DIR)
    engine = TurnEngine.load(analyzer=analyzer, route=route)
    assert first_turn(engine, "dov'è il mio ordine?").analysis.model == analyzer.model_id
    assert first_turn(engine, "¿dónde está mi pedido?").analysis.model != analyzer.model_id
