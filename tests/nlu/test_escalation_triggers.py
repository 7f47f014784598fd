"""Each escalation trigger as customers type it in four languages, and the messages that must
not trigger it: keyboard mashes and off-topic chat are failed replies, VIPs get a human at the
first one, shouting and swearing about a problem hand off, typos and "talk to someone" are
requests for a human, and small talk ("ok", "sorry wrong chat", "never mind, cancel that
question") never hands off by itself.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tierline.nlu.bot import small_talk_of, unreadable
from tierline.nlu.engine import TurnEngine
from tierline.nlu.reasons import ESCALATION_CUES, Reason

OPEN = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)  # a Tuesday, 10:00 in Rome


@pytest.fixture(scope="module")
def engine(analyzer) -> TurnEngine:
    return TurnEngine.shipped(analyzer=analyzer)


def play(engine: TurnEngine, messages: list[str], tier: str | None = None,
         language: str | None = None):
    """Every turn's result until (and including) the first handoff."""
    state = engine.new_state("t", "+390000000000", tier=tier, language=language)
    results = []
    for text in messages:
        result = engine.turn(state, text, now=OPEN)
        state = result.state
        results.append(result)
        if result.handoff:
            break
    return results


@pytest.mark.parametrize("text", ["asdfghjk", "jjjjjjj", "..,,,", "???", "sjdhfk", "qwerty",
                                  "zzzzz", "?!"])
def test_keyboard_mashes_and_punctuation_are_unreadable(text):
    assert unreadable(text)


@pytest.mark.parametrize("text", ["kkkk", "jajaja", "xD", "thx", "cmq", "ok", "👍", "ND-100000",
                                  "3", "nn so", "hmmm", "tmbn"])
def test_laughter_abbreviations_emoji_and_digits_are_readable(text):
    assert not unreadable(text)


@pytest.mark.parametrize("language,messages", [
    ("en", ["asdfghjk", "jjjjjjj", "..,,,"]),
    ("en", ["can you book me a taxi", "whats the capital of france", "do you like cats"]),
    ("it", ["sjdhfk", "boh", "mah"]),
    ("es", ["qwerty", "zzzzz", "???"]),
    ("pt", ["asdf", "kjhgf", "..."]),
])
def test_failed_replies_hand_off_by_the_third_with_their_reason(engine, language, messages):
    """The rule hands off at the third failed reply; the learned score may do it sooner."""
    results = play(engine, messages, language=language)
    assert results[-1].handoff and all(r.bot_failed for r in results[:-1])
    failed_reasons = [r for r in results[-1].handoff.reasons if r.endswith("failed bot replies")]
    assert len(failed_reasons) == 1


def test_an_off_topic_question_is_not_answered_from_the_faq(engine):
    [result] = play(engine, ["can you book me a taxi"])
    assert result.bot_failed and "working days" not in result.replies[0].text
    [result] = play(engine, ["how long does shipping take?"])  # a real FAQ question still is
    assert not result.bot_failed and "working days" in result.replies[0].text


@pytest.mark.parametrize("language,text", [
    ("en", "do you have a shop in milan i can visit"),
    ("it", "avete un negozio fisico a roma?"),
])
def test_a_vip_gets_a_human_at_the_first_reply_the_bot_cannot_give(engine, language, text):
    [vip] = play(engine, [text], tier="vip", language=language)
    assert vip.handoff and "1 failed bot replies" in vip.handoff.reasons
    standard = play(engine, [text], tier="standard", language=language)
    assert not standard[0].handoff


@pytest.mark.parametrize("language,text", [
    ("en", "WHERE IS MY PARCEL ITS BEEN 2 WEEKS"),
    ("it", "DOVE È FINITO IL MIO PACCO, ASPETTO DA DUE SETTIMANE"),
    ("es", "QUIERO SABER DONDE ESTA MI PEDIDO YA"),
    ("pt", "CADÊ MINHA ENCOMENDA, JÁ FAZ DUAS SEMANAS"),
])
def test_shouting_about_a_problem_hands_off(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert result.handoff and "customer is shouting (all caps)" in result.handoff.reasons


@pytest.mark.parametrize("language,text", [
    ("en", "ordered a size 10 got a 6. wtf"),
    ("it", "che cazzo, il pacco è arrivato aperto"),
    ("es", "joder, otra vez sin pedido"),
    ("pt", "porra, de novo sem encomenda"),
])
def test_swearing_about_a_problem_hands_off(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert result.handoff and any(r.startswith("customer is swearing") for r in result.handoff.reasons)


@pytest.mark.parametrize("language,text", [
    ("en", "OMG THE BOOTS ARE AMAZING"), ("it", "RAGA LE SCARPE SONO STUPENDEEE"),
    ("es", "MUCHAS GRACIAS SOIS LOS MEJORES!!!"), ("pt", "AMEI DEMAIS, OBRIGADAAA"),
    ("it", "scusate chat sbagliata 🙈"), ("es", "perdón, me equivoqué de chat"),
    ("pt", "desculpa, conversa errada"), ("en", "sorry wrong number lol"),
    ("es", "JAJAJA SE ME OLVIDÓ EL NÚMERO jsjsjs"),
])
def test_happy_shouting_and_apologies_are_not_frustration(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert not result.handoff and not result.analysis.frustrated
    assert not [c for c in result.analysis.cues if c in ("all_caps", "exclamation_run")]


@pytest.mark.parametrize("language,text,kind", [
    ("en", "actually never mind, cancel that question, found it on the site", "acknowledgement"),
    ("it", "annulla, ho sbagliato a scrivere ahah", "acknowledgement"),
    ("es", "nada, cancela la pregunta, ya lo encontré jeje", "acknowledgement"),
    ("pt", "cancela, digitei errado kkk", "acknowledgement"),
    ("es", "uy perdón, número equivocado, era para mi jefe", "goodbye"),
    ("pt", "foi mal, mandei no número errado kkk", "goodbye"),
])
def test_taking_a_message_back_is_small_talk_and_never_hands_off(engine, language, text, kind):
    assert small_talk_of(text) == kind
    results = play(engine, ["ND-100000", text], language=language)
    assert not any(r.handoff for r in results)


@pytest.mark.parametrize("language,text", [
    ("en", "never mind, cancel my order"), ("it", "lascia stare, annulla l'ordine ND-100000"),
    ("es", "olvídalo, quiero cancelar el pedido"), ("pt", "esquece, quero cancelar a encomenda"),
])
def test_taking_back_the_question_is_not_taking_back_a_cancellation(language, text):
    assert small_talk_of(text) is None


@pytest.mark.parametrize("language,text", [
    ("en", "humna please"), ("it", "oprtaore"), ("es", "ajente porfavor"), ("pt", "atendete"),
    ("en", "need to speak to someone about my invoice, the VAT number on it is wrong"),
    ("it", "devo parlare con qualcuno x la fattura, manca la partita iva"),
    ("es", "me podeis pasar con alguien de facturación? la factura me sale a nombre de otro"),
    ("pt", "preciso falar com alguém sobre a nota fiscal, veio com o CPF errado"),
    # asking to be called back is a request for a human
    ("en", "can someone call me back? easier to explain on the phone"),
    ("it", "salve, mi può richiamare un suo collega? preferisco spiegare a voce"),
    ("es", "¿me puede llamar alguien por teléfono? es más fácil explicarlo"),
    ("pt", "olá, alguém da vossa equipa pode ligar-me?"),
    ("en", "could u call me? long story 😅"),
    ("it", "mi potete chiamare? è complicato da scrivere"),
    ("es", "¿me podéis llamar? prefiero hablarlo por teléfono"),
    ("pt", "vcs podem me ligar? é mais fácil explicar"),
    # a request at the end of a long story is a request
    ("it", "salve ho ordinato un divano ma il corriere porta solo fino al portone e io abito al "
           "quarto piano, mi passate un operatore per favore"),
    ("es", "buenas, el pedido llegó incompleto y ya escribí por la web sin respuesta, quisiera "
           "hablar con un agente"),
    ("pt", "fiz uma encomenda para o natal e queria mudar a morada, o site não deixa, podem "
           "passar-me a um operador?"),
    ("en", "ordered a sofa last week, delivery guy says ground floor only and i'm on the 4th, "
           "can you put me through to an agent"),
    ("en", "the zip broke on day one, could someone from your team get back to me please"),
    ("en", "is there anyone real i can talk to about ND-100000?"),
    ("en", "I'd like to speak with a member of staff about my order"),
    ("es", "me llegó otra talla, me puede atender alguien para arreglarlo?"),
    ("pt", "tem algum telefone que eu possa ligar? é sobre a minha encomenda"),
    ("it", "mi serve un customer care vero, il pacco è fermo da giorni"),
    # a request in one clause of a longer message is a request
    ("en", "can't get into my account since the update, I need an actual person to look at it pls"),
    ("es", "el pago se quedó a medias. ¿hay alguna persona que me pueda atender?"),
    ("pt", "o app trava no checkout, tem como um técnico de vcs me ajudar?"),
    ("it", "il sito mi dà errore al pagamento, c'è qualcuno dello staff che mi può aiutare?"),
    # asking who to talk to or for someone who can help is a request
    ("en", "who would i speak to about a bulk order for our office?"),
    ("it", "ciao! con chi posso parlare per un ordine grosso x il negozio?"),
    ("es", "¿con quién puedo hablar de un pedido grande para mi tienda?"),
    ("pt", "com quem eu falo sobre um pedido grande pra minha loja?"),
    ("it", "ah senti, posso sentire qualcuno per un ordine da 40 pezzi?"),
    ("it", "c'è qualcuno dell'amministrazione che mi può seguire per la fattura?"),
    ("en", "honestly i think this needs a human 😅"),
    # someone asked to do what the bot cannot is a request
    ("en", "the site won't let me edit it, can someone from your team fix the address?"),
    ("it", "è possibile che qualcuno dello staff lo cambi a mano? dal sito nn me lo fa fare"),
    ("es", "la web no me deja, ¿alguien de ustedes puede cambiarlo a mano?"),
    ("pt", "o site não deixa, alguém da equipe pode trocar isso pra mim?"),
    # rather dealing with a person is a request
    ("en", "there's a few things I need to change, I'd rather deal with a person on this one tbh"),
    ("it", "preferirei parlarne con una persona, grazie"),
    ("es", "prefiero tratarlo con una persona, la verdad"),
    ("pt", "prefiro resolver isso com uma pessoa"),
    # asking whether someone is available is a request
    ("en", "is there an agent available right now?"),
    ("en", "I'd prefer to discuss it with one of your staff rather than a machine, if possible."),
    ("it", "ok grazie, ma devo chiarire una cosa con voi, c'è un collega disponibile?"),
    ("es", "¿hay algún asesor disponible?"),
    ("pt", "tem algum atendente disponível?"),
    # asking to phone the shop, whether a person reads, for one who can look at it; formal and
    # teenage requests
    ("en", "is there an actual person reading these or is it all automated?"),
    ("en", "can I call you? I'd rather sort it out over the phone"),
    ("it", "posso chiamarvi? preferisco risolvere per telefono"),
    ("es", "¿puedo llamaros? prefiero hablarlo por teléfono"),
    ("pt", "tem como eu ligar pra vcs? prefiro resolver por telefone"),
    ("pt", "tem alguém lendo isso aqui?"),
    ("en", "is there a person who can look at my account? I doubt the bot will know this"),
    ("en", "kindly do the needful and connect me to a customer care executive"),
    ("it", "c'è un operatore che può aggiornarmi i dati? grz"),
    ("it", "vulesse parlà cu nu operatore, pe' piacere"),
    ("es", "¿hay una persona que pueda revisar mi cuenta?"),
    ("pt", "tem uma pessoa que possa olhar minha conta?"),
    ("en", "could one of your staff members call me on this number please?"),
    ("it", "posso parlare con uno vero? non un bot 😭😭😭"),
    ("es", "¿Sería tan amable alguno de sus empleados de llamarme por teléfono a este mismo número?"),
    ("pt", "Seria possível que um funcionário me telefonasse para este número? Fico muito grato."),
])
def test_requests_for_a_person_in_any_words(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert result.handoff and "customer asked for a human agent" in result.handoff.reasons, \
        result.decision.reasons


@pytest.mark.parametrize("language,text", [
    ("en", "my sister will talk to the courier"),
    pytest.param("it", "ieri ho parlato con qualcuno del negozio", marks=pytest.mark.xfail(
        reason="the intent model reads it as contact_human_agent (0.97): past tense", strict=True)),
    ("es", "aceptáis bizum?"), ("pt", "aceitam mb way?"), ("en", "the operation was quick, thanks"),
])
def test_talking_about_people_or_paying_is_not_a_request(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert "customer asked for a human agent" not in result.decision.reasons


@pytest.mark.parametrize("language,text", [
    ("en", "the password reset email isnt coming through"),
    ("it", "nn mi arriva la mail x reimpostare la password"),
    ("es", "no me llega el código para verificar la cuenta"),
    ("pt", "não recebo o email pra redefinir a senha"),
])
def test_a_vips_problem_report_goes_to_a_human_a_standard_customer_gets_the_answer(
        engine, language, text):
    [vip] = play(engine, [text], tier="vip", language=language)
    assert vip.handoff and "vip customer reports a problem" in vip.handoff.reasons
    assert vip.analysis.problem
    [standard] = play(engine, [text], language=language)
    assert not standard.handoff and not standard.bot_failed


@pytest.mark.parametrize("language,text", [
    ("en", "can i pay with paypal?"), ("it", "quanto ci mette la spedizione?"),
    ("es", "¿cuánto tarda el envío?"), ("pt", "vocês aceitam paypal?"),
])
def test_a_vips_routine_question_is_answered_by_the_bot(engine, language, text):
    [vip] = play(engine, [text], tier="vip", language=language)
    assert not vip.analysis.problem and not vip.handoff


@pytest.mark.parametrize("language,text", [
    ("it", "scusate ho premuto il tasto sbagliato"), ("es", "jaja perdón apreté sin querer"),
    ("pt", "foi mal apertei errado kkk"), ("en", "sorry pressed the wrong button lol"),
    ("es", "uy perdón, esto era pa el grupo de la familia jeje"),
    ("pt", "desculpa, mandei no lugar errado, era pro grupo do trabalho"),
])
def test_a_slip_of_the_customers_is_small_talk_not_a_problem(engine, language, text):
    assert small_talk_of(text) in ("acknowledgement", "goodbye")
    results = play(engine, ["ND-100000", text], language=language)
    assert not any(r.handoff for r in results)
    assert not results[-1].analysis.problem


@pytest.mark.parametrize("language,text", [
    ("en", "HELLO!! 🎉 just got the gift box, my wife LOVES it"),
    ("it", "ciao sono Sara! ORDINE ARRIVATO, TUTTO PERFETTO 😍"),
    ("es", "BUENÍSIMO EL SERVICIO, DE VERDAD 👏👏"),
    ("pt", "oi!! AQUI É A GIULIA, CHEGOU TUDO LINDO 🥰"),
])
def test_praise_is_thanked_not_a_failed_reply_even_for_a_vip(engine, language, text):
    [result] = play(engine, [text], tier="vip", language=language)
    assert not result.handoff and not result.bot_failed
    assert result.replies[0].text == engine.flow.text("thanks", language)


def test_an_opening_order_number_leaves_the_language_to_the_next_message(engine):
    results = play(engine, ["ND-527626", "ah atrasado, de boa, eu espero, obg"])
    assert results[-1].state.language == "pt" and not results[-1].handoff


def test_telling_of_an_agent_is_not_an_explicit_request(engine):
    """The intent model says contact_human_agent (0.78); the examples say it is no request. (The
    learned score still reads the intent: that part is the model's, not a rule's.)"""
    text = "ieri ho sentito un vostro operatore e abbiamo risolto tutto, volevo solo ringraziare"
    stack = engine.stack_for("it")
    [analysis] = stack.analyzer.analyze([text], language="it")
    assert not engine.is_explicit(text, analysis, None, stack)


@pytest.mark.parametrize("language,text,cue,team", [
    ("en", "3rd time im writing about this, where is my parcel", "repeat_contact", "general"),
    ("it", "è la terza volta che vi scrivo x lo stesso ordine!!", "repeat_contact", "general"),
    ("es", "ya os escribí ayer y nadie me dice nada del pedido", "repeat_contact", "general"),
    ("pt", "já mandei mensagem 2x e nada do meu pedido", "repeat_contact", "general"),
    ("en", "This is the third time I have written about this order. It is now Friday.",
     "repeat_contact", "general"),
    ("en", "tracking says delivered but i never got it 😡", "delivered_not_received", "general"),
    ("it", "risulta consegnato ma a me non è arrivato niente", "delivered_not_received", "general"),
    ("es", "pone entregado pero aquí no ha llegado nada", "delivered_not_received", "general"),
    ("pt", "consta entregue mas não recebi nada", "delivered_not_received", "general"),
    ("en", "give me my money back or im doing a chargeback", "dispute", "billing"),
    ("it", "se non mi rimborsate chiamo l'avvocato", "dispute", "billing"),
    ("es", "voy a desconocer el cargo con el banco", "dispute", "billing"),
    ("pt", "vou abrir reclamação no procon se não devolverem meu dinheiro", "dispute", "billing"),
    ("pt", "se não chegar amanhã vou abrir reclamação no procon", "dispute", "general"),
    ("it", "se il pacco non arriva entro venerdì scrivo ad altroconsumo", "dispute", "general"),
    ("en", "u charged me twice for the same order", "double_charge", "billing"),
    ("it", "mi avete addebitato 2 volte lo stesso ordine", "double_charge", "billing"),
    ("es", "me cobraron dos veces el mismo pedido", "double_charge", "billing"),
    ("pt", "fui cobrada 2x pelo mesmo pedido", "double_charge", "billing"),
    ("en", "this bot is useless", "bot_insult", "general"),
    ("it", "sei un bot inutile", "bot_insult", "general"),
    ("es", "qué bot más inútil", "bot_insult", "general"),
    ("pt", "robô burro", "bot_insult", "general"),
    ("en", "only got 2 of the 3 things i ordered", "missing_item", "general"),
    ("it", "nella scatola mancava una maglietta", "missing_item", "general"),
    ("es", "pedí 3 cosas y en la caja solo venían 2", "missing_item", "general"),
    ("pt", "veio faltando um item do meu pedido", "missing_item", "general"),
    ("en", "honestly im fed up with waiting for this parcel", "fed_up", "general"),
    ("it", "sono stufa di aspettare sto pacco", "fed_up", "general"),
    ("es", "estoy harta de esperar el pedido", "fed_up", "general"),
    ("pt", "estou farto de esperar, a encomenda devia ter chegado", "fed_up", "general"),
    ("en", "reset my password 3 times and still cant log in", "tried_again", "technical"),
    ("it", "la password nn va, l'ho cambiata 3 volte", "tried_again", "technical"),
    ("es", "he cambiado la contraseña 3 veces y nada, no puedo entrar", "tried_again", "technical"),
    ("pt", "troquei a senha 3 vezes e não consigo entrar", "tried_again", "technical"),
    ("en", "wow amazing, 5 weeks and still no hoodie 👏", "sarcasm", "general"),
    ("it", "bravi eh, 2 settimane per due calzini 👏👏", "sarcasm", "general"),
    ("es", "qué eficiencia, un mes esperando una funda", "sarcasm", "general"),
    ("pt", "parabéns pela rapidez, 3 semanas e nada 🙄", "sarcasm", "general"),
    ("en", "the receipt you sent has the wrong address on it", "invoice_error", "billing"),
    ("it", "in fattura c'è la partita iva sbagliata", "invoice_error", "billing"),
    ("es", "la factura tiene mal el CIF, me la podéis corregir?", "invoice_error", "billing"),
    ("pt", "a nota fiscal saiu com o CPF errado", "invoice_error", "billing"),
    ("en", "sort it by tomorrow or I'm leaving a 1 star review everywhere", "review_threat",
     "general"),
    ("it", "se nn arriva entro sabato vi faccio recensioni negative su google", "review_threat",
     "general"),
    ("es", "como no llegue mañana os pongo una reseña de una estrella", "review_threat",
     "general"),
    ("pt", "se não chegar amanhã deixo avaliação negativa em todo lado", "review_threat",
     "general"),
    ("en", "paid with apple pay but wanted klarna, pls put the money back on my card",
     "money_back", "billing"),
    ("it", "ho pagato col bonifico ma preferivo la carta, mi ridate i soldi?", "money_back",
     "billing"),
    ("es", "pagué con bizum sin querer, me devolvéis el dinero y pago con tarjeta?", "money_back",
     "billing"),
    ("pt", "paguei no pix mas queria boleto, dá pra estornar?", "money_back", "billing"),
    ("en", "I've been very patient but it's been 2 weeks past the date", "fed_up", "general"),
    ("it", "sono stato fin troppo paziente, l'ordine non si vede", "fed_up", "general"),
    ("es", "he sido muy paciente pero ya van diez días de retraso", "fed_up", "general"),
    ("pt", "tenho sido bastante paciente, mas o pedido não chega", "fed_up", "general"),
    ("it", "ma che bot sei, nn capisci niente", "bot_insult", "general"),
    ("es", "no entiendes nada, de verdad", "bot_insult", "general"),
    ("es", "\"en reparto\" otra vez, qué sorpresa 🙃 sois unos cracks", "sarcasm", "general"),
    ("en", "the vase came chipped, i'd rather have a refund than a new one", "money_back",
     "billing"),
])
def test_signs_the_bot_cannot_settle_hand_off_to_the_right_team(engine, language, text, cue, team):
    """Writing again, "delivered but never came", a chargeback or legal threat, a double
    charge and insults at the bot: the flow's ``escalate_on_cues`` hand them off at once."""
    [result] = play(engine, [text], language=language)
    assert cue in result.analysis.cues
    assert result.handoff and result.handoff.team == team, result.decision.reasons
    assert result.decision.reasons[0] == Reason(cue).text


@pytest.mark.parametrize("language,text", [
    ("en", "it says delivered, no worries, my neighbour has it"),
    ("en", "where is my order? it says delivered but no one was home"),
    ("it", "consegnato ieri, tutto perfetto grazie!"),
    ("es", "me llegó todo, no os preocupéis"),
    ("pt", "chegou certinho, obrigada"),
    ("en", "I got it from DHL today, the BEST shop"),
    ("it", "posso pagare 2 volte al mese con la rateizzazione?"),
    ("es", "el bot me ayudó mucho, gracias"),
    ("en", "only got one question: do you ship to Ireland?"),
    ("it", "ho provato 2 volte il vestito, mi sta benissimo!"),
    ("es", "YA ME HA LLEGADO!!! QUÉ RÁPIDO TÍO!!!"),
    ("pt", "tô cansada hoje kkk, qual o prazo de entrega?"),
])
def test_routine_words_near_those_signs_do_not_fire_them(engine, language, text):
    [result] = play(engine, [text], language=language)
    fired = set(result.analysis.cues) & set(ESCALATION_CUES)
    assert not fired and not result.handoff, (fired, result.decision.reasons)


@pytest.mark.parametrize("language,text", [
    ("en", "amazing, it arrived in 2 days 👏👏"),
    ("it", "complimenti, arrivato in 3 giorni!"),
    ("es", "genial, me llegó en una semana y todo perfecto"),
    ("pt", "nossa, chegou em 2 dias, que rapidez 👏"),
    ("en", "can i get an invoice with my company name on it?"),
    ("it", "mi mandate la fattura dell'ordine ND-100000?"),
])
def test_praise_of_a_quick_delivery_and_invoice_requests_fire_no_sign(engine, language, text):
    """Sarcasm needs a long wait or a delay with nothing arrived; an invoice needs a mistake."""
    [result] = play(engine, [text], language=language)
    fired = set(result.analysis.cues) & {"sarcasm", "invoice_error"}
    assert not fired and not result.handoff, (fired, result.decision.reasons)


@pytest.mark.parametrize("language,text", [
    ("en", "the mug arrived with a small crack on the handle"),
    ("it", "la tazza è arrivata con un graffio sul manico"),
    ("es", "el jarrón llegó con una grieta en la base"),
    ("pt", "a caneca chegou com uma rachadura na asa"),
])
def test_a_damaged_item_goes_to_the_general_team_whatever_intent_was_read(engine, language, text):
    """A VIP's report hands off at once; no money in it, so billing is not its team even when
    the intent model reads payment_issue."""
    [result] = play(engine, [text], tier="vip", language=language)
    assert result.handoff and result.handoff.team == "general", result.analysis.intent


@pytest.mark.parametrize("language,text,topics", [
    ("en", "I was charged 20€ for shipping", {"money"}),
    ("it", "nell'estratto conto vedo 89€ ma l'ordine era di 69", {"money"}),
    ("es", "¿hay penalidad por cancelar?", {"money"}),
    ("pt", "tem multa pra cancelar?", {"money"}),
    ("en", "cant log in to my account", {"account"}),
    ("it", "non riesco ad accedere, password sbagliata?", {"account"}),
    ("es", "olvidé la contraseña", {"account"}),
    ("pt", "esqueci a senha da conta", {"account"}),
    ("en", "the parcel is late", set()),
    ("it", "il cardigan è arrivato bucato", set()),
])
def test_topics_of_a_message(engine, language, text, topics):
    [analysis] = engine.stack_for(language).analyzer.analyze([text], language=language)
    assert set(analysis.topics) == topics


@pytest.mark.parametrize("language,text", [
    ("en", "no need for an agent, just tell me where ND-100000 is"),
    ("it", "non mi serve un operatore, volevo solo sapere dell'ordine ND-100000"),
    ("es", "no necesito un asesor, solo quería saber del pedido ND-100000"),
    ("pt", "não preciso de atendente, só queria saber do ND-100000"),
    ("en", "spoke to an agent yesterday and it's all sorted, thanks"),
    ("es", "ayer hablé con una asesora y me lo solucionó, gracias"),
    ("pt", "falei com uma atendente ontem e resolveu, obrigada"),
    # someone described declined or thanked is not a request
    ("en", "no rush, my flatmate is home all day so there's always someone in to sign for it"),
    ("es", "lo recogió mi vecina, es una persona de total confianza jaja"),
    ("pt", "quem recebeu foi a minha vizinha, é uma pessoa de confiança"),
    ("it", "nn ho bisogno di un operatore eh, volevo solo sapere se spedite in Austria"),
    ("it", "ieri un vostro operatore mi ha aiutato tantissimo, ringraziatelo da parte mia"),
    ("es", "no hace falta que me pases con nadie, solo dime dónde está el ND-100000"),
    # someone already heard from is not a request
    ("en", "I don't need a human, the bot is fine"),
    ("it", "ho sentito qualcuno ieri, tutto ok grazie"),
    ("es", "ya hablé con alguien ayer y todo bien"),
    ("pt", "já falei com alguém ontem, tá tudo certo"),
    # a colleague spoken to before is not a request
    ("en", "Yesterday I spoke with a colleague of yours, Emma, and it's all sorted"),
    ("it", "ieri ho parlato con una vostra collega, Giulia, ed è tutto risolto"),
    ("es", "ayer hablé con una compañera vuestra, Lucía, y ya está todo resuelto"),
    ("pt", "Ontem falei com uma colega vossa, a Inês, e ficou tudo resolvido"),
    # deciding to keep the order after all does not hand off
    ("en", "Yesterday I wrote to cancel but never mind, I've decided to keep it!"),
    ("it", "Ieri vi avevo scritto per annullare ma lasciate stare, non serve annullare niente: ho deciso di tenerlo!"),
    ("es", "Ayer os escribí para cancelar pero nada, he decidido quedármelo!"),
    ("pt", "Ontem escrevi para cancelar mas esquece, decidi ficar com ele!"),
    # swearing laughing about good news is not anger
    ("en", "holy crap this jumper is gorgeous, damn you for making me spend my whole salary 😂😂"),
    ("it", "porca miseria che bello sto maglione, mannaggia a voi che mi fate spendere tutto lo stipendio 😂😂"),
    ("es", "joder qué bonito el jersey, malditos, me hacéis gastar todo el sueldo 😂😂"),
    ("pt", "porra que lindo esse casaco, vocês me fazem gastar o salário todo 😂😂"),
    # slang praise greetings to the team and a charge taken back keep the bot
    ("en", "damn this linen shirt is fire"),
    ("en", "Thanks so much, have a lovely weekend and say hi to the whole team from me!"),
    ("it", "grazie di tutto, un saluto a tutto il team!"),
    ("es", "gracias por todo, saludos al equipo!"),
    ("pt", "obrigada por tudo, beijos para a equipe!"),
    ("en", "wow, great, now the whole office wants the same mug. thanks a lot 🙄😂"),
    ("en", "I was charged... oh wait no, that was my Spotify 🤦"),
])
def test_people_named_declined_or_greeted_and_harmless_words_keep_the_bot(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert not result.handoff, result.decision.reasons


@pytest.mark.parametrize("language,text", [
    ("en", "the refund came through today, thanks!!"),
    ("it", "il rimborso è arrivato stamattina, grazie mille"),
    ("es", "ya me llegó el reembolso, gracias!!"),
    ("pt", "o estorno caiu hoje, valeu!!"),
    # told not to cancel after all is settled not handed off
    ("en", "don't cancel anything, found the parcel behind the bins 😅"),
    ("it", "non annullate niente!! il pacco l'ho trovato in garage"),
    ("es", "no canceléis nada eh, ya apareció el paquete, lo tenía el portero"),
    ("pt", "não cancela não!! achei o pacote, tava com o porteiro"),
    # keeping the order after all is settled
    ("en", "was going to cancel the order but it's already out for delivery, I'll keep it lol"),
    ("it", "volevo annullare l'ordine ma ormai è in consegna, va be lo tengo 😅"),
    ("es", "iba a cancelar el pedido pero ya está en reparto, así que nada, me lo quedo jeje"),
    ("pt", "ia cancelar o pedido mas já saiu pra entrega, vou ficar com ele rsrs"),
    # a cancellation meant before the parcel came is settled
    ("en", "I wanted to cancel the order because I thought it was lost, but it just arrived! All good 😄"),
    ("it", "Volevo annullare l'ordine perché pensavo fosse perso, ma è appena arrivato! Tutto ok, grazie 😄"),
    ("es", "quería cancelar el pedido porque pensaba que se había perdido, pero acaba de llegar! 😄"),
    ("pt", "queria cancelar a encomenda porque achava que tinha se perdido, mas acabou de chegar! 😄"),
])
def test_settled_matters_are_not_handed_off(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert result.analysis.settled and not result.handoff, result.decision.reasons


@pytest.mark.parametrize("language,text", [
    ("it", "il rimborso nn è ancora arrivato"),
    ("pt", "o estorno não caiu ainda"),
])
def test_money_not_yet_back_is_not_settled(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert not result.analysis.settled


@pytest.mark.parametrize("language,text", [
    ("en", "damn that was quick!! ordered yesterday and it's here"),
    ("pt", "porra, chegou super rápido, amei!!"),
])
def test_swearing_with_good_news_is_emphasis_not_anger(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert result.analysis.happy and not result.handoff, result.decision.reasons


@pytest.mark.parametrize("language,text", [
    ("en", "if I cancel before it ships do I get everything back? just wondering"),
    ("it", "se annullo prima della spedizione mi ridate tutto? chiedo solo per sapere"),
    ("es", "si cancelo antes del envío me devuelven todo? es solo para saber"),
    ("pt", "se eu cancelar antes de enviar recebo tudo de volta? só pra saber"),
    # a cancellation wondered about is hypothetical
    ("en", "if I wanted to cancel an order, how would I do it? just curious"),
    ("it", "se volessi annullare un ordine come dovrei fare? pura curiosità"),
    ("es", "si quisiera cancelar una compra, ¿cómo lo hago? solo curiosidad"),
    ("pt", "se eu quisesse cancelar uma compra, como faria? é só curiosidade msm"),
    # how returns work is the FAQ's question not a refund case
    ("en", "can i return something i bought in the sale?"),
    ("it", "come funzionano i resi? ho visto un cappotto ma nn so se mi sta 😅"),
    ("es", "se puede devolver algo comprado en rebajas??"),
    ("pt", "dá pra trocar uma peça se não servir?"),
    # a cancellation question before buying is the faqs
    ("en", "when can I still cancel an order? asking before I buy"),
    ("it", "in generale, fino a quando si può annullare un ordine? chiedo prima di comprare"),
    ("es", "¿hasta cuándo se puede cancelar un pedido? pregunto antes de comprar"),
    ("pt", "até quando dá para cancelar uma encomenda? pergunto antes de comprar"),
])
def test_questions_asked_only_to_know_are_not_handed_off(
        engine, language, text):
    [result] = play(engine, [text], language=language)
    assert result.analysis.hypothetical and not result.handoff, result.decision.reasons


@pytest.mark.parametrize("language,text,team", [
    ("it", "ho bisogno di parlare con qualcuno per un pagamento", "billing"),
    ("es", "tengo una duda con un cobro de la tarjeta, prefiero hablarlo con alguien", "billing"),
    ("pt", "quero falar com alguém sobre a senha da minha conta", "technical"),
    ("en", "can I talk to someone about my order?", "general"),
])
def test_a_request_for_a_person_goes_to_the_team_of_its_topic(engine, language, text, team):
    [result] = play(engine, [text], language=language)
    assert result.handoff and result.handoff.team == team, result.analysis.intent


@pytest.mark.parametrize("language,messages", [
    ("it", ["ND-999001", "scusa ho sbagliato, è ND-100000"]),
    ("pt", ["ND-999001", "foi mal, é o ND-100000"]),
    ("es", ["ND-999001", "perdón, es el ND-100000"]),
    ("en", ["ND-999001", "sorry typo, its ND-100000"]),
])
def test_giving_an_order_number_again_is_answered_not_handed_off(engine, language, messages):
    results = play(engine, messages, language=language)
    assert len(results) == 2 and not results[-1].handoff, results[-1].decision.reasons
    assert "ND-100000" in results[-1].replies[0].text


@pytest.mark.parametrize("language,text", [
    ("en", "got the 38 instead of the 39"),
    ("it", "mi è arrivata la M invece della L"),
    ("es", "el pedido lleva una semana sin moverse"),
    ("pt", "a encomenda já devia ter chegado há 4 dias"),
])
def test_a_wrong_or_overdue_delivery_is_a_problem_report(engine, language, text):
    [result] = play(engine, [text], tier="vip", language=language)
    assert result.analysis.problem and result.handoff


@pytest.mark.parametrize("language,text", [
    ("en", "bit annoying that it came in 2 separate boxes but whatever, all good"),
    ("it", "vabbè un po lento il sito oggi, cmq tutto ok"),
    ("es", "un poco molesto q no venga factura en papel pero bueno"),
    ("pt", "demorou um pouco mas tudo bem, chegou"),
])
def test_a_mild_annoyance_the_customer_lets_go_of_is_not_frustration(engine, language, text):
    """Not frustration, and no cue hands it off (a low-confidence sensitive intent still may:
    "bit annoying ... but whatever" is read as delete_account at 0.15)."""
    [result] = play(engine, [text], language=language)
    assert result.analysis.happy and not result.analysis.frustrated
    assert not set(result.analysis.cues) & {"all_caps", "exclamation_run", *ESCALATION_CUES}


@pytest.mark.parametrize("word", ["ho", "ha", "he", "ah", "eh"])
def test_one_syllable_is_a_word_not_laughter(word):
    """Italian "l'ho cambiata" is not laughing; "haha" and "ahah" are."""
    from tierline.nlu.cues import LAUGHTER

    assert not LAUGHTER.match(word) and LAUGHTER.match(word * 2)


@pytest.mark.parametrize("language,text,cue", [
    ("en", "oh brilliant, 'out for delivery' for the 3rd day running 👏👏", "sarcasm"),
    ("it", "complimenti davvero, in consegna dal lunedì 👏", "sarcasm"),
    ("es", "genial, el pedido 'en reparto' desde el lunes. qué eficiencia 👏", "sarcasm"),
    ("pt", "parabéns, 'saiu para entrega' desde segunda 👏", "sarcasm"),
    ("en", "hi again, third time writing about ND-100000 and still no answer", "repeat_contact"),
    ("it", "vi riscrivo per l'ordine ND-100000, ancora niente", "repeat_contact"),
    ("es", "vuelvo a escribir por el pedido ND-100000, me dijisteis el lunes y nada", "repeat_contact"),
    ("pt", "escrevo de novo sobre o pedido ND-100000, até agora nada", "repeat_contact"),
    ("en", "why don't you answer what I asked", "bot_insult"),
    ("it", "perché nn rispondi alla mia domanda", "bot_insult"),
    ("es", "¿por qué no me respondes lo que te pregunto?", "bot_insult"),
    ("pt", "por que vc não responde o que eu perguntei", "bot_insult"),
])
def test_sarcasm_writing_again_and_no_answer_hand_off(engine, language, text, cue):
    [result] = play(engine, [text], language=language)
    assert cue in result.analysis.cues and result.handoff, result.analysis.cues


@pytest.mark.parametrize("language,text", [
    ("en", "oh no, terrible news: the jacket fits perfectly and now I want it in red too 😭😂"),
    ("it", "è assurdo quanto è bella, ne ordino un'altra 😂"),
    ("es", "qué vergüenza, me he comprado tres iguales jajaja"),
    ("pt", "que absurdo, comprei mais três 🤣"),
])
def test_a_strong_word_said_laughing_about_nothing_wrong_is_a_joke(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert not [c for c in result.analysis.cues if c.startswith("negative_word")]
    assert not result.handoff, result.decision.reasons


@pytest.mark.parametrize("language,text", [
    ("en", "the invoice is missing our VAT number, can you add it?"),
    ("it", "nella fattura manca una cifra della partita iva"),
    ("es", "en la factura falta el NIF de la empresa"),
    ("pt", "na fatura falta o NIF da empresa"),
])
def test_a_field_missing_from_an_invoice_is_an_invoice_error_for_billing(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert "invoice_error" in result.analysis.cues and "missing_item" not in result.analysis.cues
    assert result.handoff and result.handoff.team == "billing"


@pytest.mark.parametrize("language,text", [
    ("en", "tracking hasn't moved since tuesday"),
    ("it", "il tracking non si muove da martedì"),
    ("es", "el seguimiento no se mueve desde el martes"),
    ("pt", "o rastreio não mexe desde terça"),
    ("en", "paid for express and it's been processing for 3 days"),
    ("it", "avevo scelto la express e lo vedo in preparazione da 3 giorni"),
    ("es", "pagué el exprés y sigue en preparación desde hace 4 días"),
    ("pt", "paguei o expresso e está em preparação há 3 dias"),
    # a vip reporting a stain gets a human
    ("en", "I opened the parcel and the shirt has an ink stain on the cuff."),
    ("it", "ho aperto il pacco e la camicia ha una macchia d'inchiostro sul polsino"),
    ("es", "He abierto el paquete y la camisa tiene una mancha de tinta en el puño."),
    ("pt", "abri o pacote e a camisa tem uma mancha de tinta no punho"),
    # a vip sent another item than ordered gets a human
    ("en", "I ordered the navy blazer in 12 and you've sent a green one in 14, ND-118847"),
    ("it", "ho ordinato la giacca blu in 42 e mi avete mandato una verde in 46"),
    ("es", "pedí la americana azul en la 38 y me habéis enviado una verde en la 42"),
    ("pt", "encomendei o blazer azul no 38 e me mandaram um verde no 42"),
    # a vip sent another item says so either way round
    ("en", "thanks. I opened it and you've sent me the black bag, I ordered tan"),
    ("it", "ho ricevuto l'ordine ma dentro c'è una camicia da uomo taglia XL, io avevo ordinato un top donna S 😅"),
    ("es", "me habéis enviado el bolso negro y yo pedí el camel"),
    ("pt", "me mandaram a bolsa preta e eu pedi a caramelo"),
])
def test_a_vips_problem_report_gets_a_human(engine, language, text):
    [result] = play(engine, [text], tier="vip", language=language)
    assert result.analysis.problem and result.handoff, result.decision.reasons


@pytest.mark.parametrize("language,text", [
    ("en", "can i return something? the jumper from ND-123456 arrived ripped"),
    ("it", "posso restituire qualcosa? il maglione è arrivato rotto"),
    ("es", "se puede devolver algo? el jersey llegó roto"),
    ("pt", "dá pra trocar uma peça? a camisola chegou rasgada"),
])
def test_a_return_question_about_a_damaged_item_is_a_case(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert not result.analysis.hypothetical and result.analysis.problem


@pytest.mark.parametrize("language,opening,question", [
    ("en", "hello? anyone there?", "ok cool, how long does shipping take?"),
    ("it", "c'è qualcuno?", "ok, quanto ci mette la spedizione?"),
    ("es", "hola, hay alguien?", "ah ok eres un bot, cuánto tarda el envío?"),
    ("pt", "oi tem alguém aí?", "ah é robô, de boa. aceitam pix?"),
])
def test_anyone_there_opening_a_chat_gets_the_menu_not_an_agent(engine, language, opening,
                                                                 question):
    first, second = play(engine, [opening, question], language=language)
    assert not first.handoff and not first.bot_failed
    assert first.replies[0].text.startswith(engine.flow.text("welcome", language)[:20])
    assert not second.handoff, second.decision.reasons


@pytest.mark.parametrize("language,text", [
    ("en", "can someone else pick it up for me? i'm away friday"),
    ("it", "qualcuno può ritirare il pacco al posto mio? tipo mia sorella"),
    ("es", "¿alguien más puede recoger el paquete? mi hermana por ejemplo"),
    ("pt", "outra pessoa pode buscar a encomenda? tipo minha irmã"),
    ("en", "my mum will be home to receive it, does she need ID?"),
    ("it", "lo ritira mia suocera, serve un documento?"),
    ("es", "lo recibe mi suegra, ¿necesita documento?"),
    ("pt", "quem vai receber é minha sogra, precisa de documento?"),
])
def test_someone_else_or_a_relative_taking_the_parcel_is_not_a_request(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert "customer asked for a human agent" not in (
        result.handoff.reasons if result.handoff else []), result.decision.reasons


@pytest.mark.parametrize("language,text", [
    ("en", "my bank statement says 89 but the order was 69, there's a mistake"),
    ("it", "nell'estratto conto vedo 89€ ma l'ordine era di 69, c'è un errore"),
    ("es", "la factura de noviembre tiene mal el CIF de la empresa"),
    ("pt", "a fatura de outubro saiu com o endereço antigo da empresa"),
    # charged more than the price goes to billing
    ("en", "The site said 20% off but I paid full price, £64 instead of £51.20. Can that be sorted?"),
    ("it", "c'era lo sconto del 20% ma ho pagato 64€ invece di 51"),
    ("es", "ponía 20% de descuento pero me cobraron el precio completo"),
    ("pt", "era pra ter 20% de desconto mas paguei 64 em vez de 51"),
    # a wrong amount or an invoice to redo goes to billing
    ("en", "I downloaded it but the amount is wrong, it says 89 euro and I paid 69"),
    ("it", "Fattura ND-617740: intestata a me invece che alla società, P.IVA mancante. Va rifatta."),
    ("es", "el importe está equivocado, pone 89 y pagué 69"),
    ("pt", "o valor está errado, diz 89 e eu paguei 69"),
    # an invoice to the wrong name or without a tax number goes to billing
    ("en", "the invoice for ND-209983 came without my VAT number"),
    ("it", "la fattura di ND-583021 è intestata a mio marito ma serviva a nome della mia ditta"),
    ("es", "sale a nombre de otra persona y con mi DNI mal"),
    ("pt", "a fatura da ND-209983 veio sem o meu NIF"),
    ("en", "you took £89 but the order total was £71 with the discount code"),
    # amounts that do not match go to billing
    ("en", "the invoice says 89 and I paid 79 with the coupon"),
    ("it", "ho reso le scarpe e mi avete rimborsato 39 euro invece di 59, mancano 20 euro"),
    ("es", "en la factura de ND-382275 no aparece mi NIF y la necesito para la empresa, está mal"),
    ("pt", "encontrei, mas a fatura diz 89€ e eu paguei 79€ com o cupão"),
    # a statement or tax number that does not match goes to billing
    ("en", "the order was 59.90 but on my bank statement I see 79.90, why?"),
    ("it", "Salve, l'ordine ND-433901 era di 59,90 ma sull'estratto conto vedo 79,90. Come mai?"),
    ("es", "el pedido era de 59,90 pero en el extracto veo 79,90"),
    ("pt", "a encomenda era de 59,90 mas no extrato vejo 79,90"),
    ("it", "Trovata, grazie. Però c'è un errore: la partita IVA della mia azienda è sbagliata, va corretta"),
])
def test_billing_errors_go_to_billing(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert "invoice_error" in result.analysis.cues
    assert result.handoff and result.handoff.team == "billing", result.decision.reasons


@pytest.mark.parametrize("language,text", [
    ("en", "sent it back 2 weeks ago, still nothing back on my card"),
    ("it", "ho fatto il reso 20 giorni fa e il rimborso nn è ancora arrivato"),
    ("es", "devolví el pedido hace 3 semanas y nada del reembolso"),
    ("pt", "mandei a devolução faz 20 dias e até agora nada do reembolso"),
])
def test_a_refund_that_has_not_come_is_money_asked_back(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert "money_back" in result.analysis.cues
    assert result.handoff and result.handoff.team == "billing", result.decision.reasons


@pytest.mark.parametrize("language,text", [
    ("en", "do you do gift wrapping with a handwritten card? 🙏"),
    ("it", "nn capisco se lo fate o no il pacchetto regalo 😅"),
    ("es", "hacéis envoltorio de regalo con tarjeta escrita a mano? 🙏"),
    ("pt", "vcs fazem embrulho de presente com cartão escrito à mão? 😅"),
    # stock and courier instructions are failed replies:
    # The intent model hears a delivery question in them ("¿cuándo vuelve a haber stock?" as
    # delivery_period); the FAQ's delivery answer would be beside the point.
    ("en", "when will the green one be back in stock?"),
    ("en", "for order ND-284471 could the courier leave it with the corner shop if I'm out"),
    ("it", "per l'ordine ND-260915 il corriere può lasciarlo al portiere?"),
    ("it", "la taglia M torna disponibile?"),
    ("es", "para el pedido ND-241606, ¿el repartidor lo puede dejar en la conserjería?"),
    ("es", "¿y cuándo vuelve a haber stock del verde?"),
    ("pt", "para a encomenda ND-242717 o estafeta pode deixar na porteira?"),
    ("pt", "e o verde volta a ter stock quando?"),
    # an order number in a question the bot cannot answer is a failed reply
    ("en", "hey 🙂 can u gift wrap ND-612930? its a bday present"),
    ("pt", "oiii vcs embrulham pra presente o ND-734129? é pra minha irmã"),
    # courier slots holding items and care questions are failed replies
    ("en", "can the driver leave the parcel at the bakery next door?"),
    ("it", "il corriere può passare dopo le 18?"),
    ("es", "¿el repartidor puede dejar el paquete en el bar de abajo?"),
    ("pt", "o entregador pode deixar o pacote na padaria do lado?"),
    ("es", "¿me las podéis apartar hasta el viernes?"),
    ("pt", "pode ir à máquina de secar?"),
    ("en", "does it shrink if I wash it at 30"),
    ("pt", "e quando volta o 38?"),
    # jobs shops and chosen delivery days are failed replies
    ("en", "are you hiring for the warehouse? where do I send my CV"),
    ("it", "fate anche programmi di affiliazione?"),
    ("es", "hola! ¿a qué hora abre la tienda de Barcelona los domingos?"),
    ("es", "¿Se puede elegir la fecha de entrega? su cumple es el 14"),
    ("pt", "aceitam candidaturas espontâneas?"),
    # shops gift cards restocking and partnerships are failed replies
    ("en", "are you open on Sundays?"),
    ("it", "posso venire a provare le scarpe prima di ordinarle?"),
    ("es", "¿tenéis tarjeta regalo?"),
    ("es", "¿cuándo vuelve a entrar?"),
    ("pt", "Olá! Têm lojas físicas em Lisboa?"),
    ("pt", "Olá, sou fotógrafa e gostava de propor uma parceria para a nova coleção"),
    ("it", "in alternativa consegnate dopo le 18? lavoro fino a tardi"),
    # being told when stock comes and prices left out are failed replies
    ("it", "ok e se nn torna potete avvisarmi quando arriva?"),
    ("it", "Nel vostro magazzino ne arrivano altri prima di Natale?"),
    ("it", "Potete togliere il prezzo dallo scontrino dentro il pacco?"),
    ("en", "can you let me know when it comes in?"),
])
def test_questions_the_bot_cannot_answer_are_failed_replies(
        engine, language, text):
    [result] = play(engine, [text], language=language)
    assert result.bot_failed, [r.text for r in result.replies]


@pytest.mark.parametrize("language,opening,order_title,agent_title", [
    ("en", "Options", "Order status", "Talk to an agent"),
    ("it", "Opzioni", "Stato ordine", "Parla con operatore"),
    ("es", "Opciones", "Estado del pedido", "Hablar con un agente"),
    ("pt", "Opções", "Estado do pedido", "Falar com um atendente"),
])
def test_a_typed_menu_title_is_that_option_in_its_language(engine, language, opening, order_title,
                                                            agent_title):
    """A chat export writes a tapped button as its title, and some customers type it: the
    title is the option (the intent model read "Estado del pedido" as a request for an agent),
    and a title in one language only says the customer's language."""
    shown, order = play(engine, [opening, order_title])
    assert shown.state.language == language and not shown.bot_failed
    assert [b[0] for b in shown.replies[0].buttons] == ["menu_order", "menu_faq", "menu_agent"]
    assert not order.handoff and order.state.step == "awaiting_order_number", order.decision.reasons
    assert order.replies[0].text == engine.flow.text("ask_order_number", language)
    [agent] = play(engine, [agent_title])
    assert agent.handoff and agent.state.language == language
    assert agent.handoff.team == "general"


@pytest.mark.parametrize("language,text", [
    ("en", "do you sell gift cards? can one come with a birthday card message"),
    ("it", "si può aggiungere un biglietto d'auguri?"),
    ("es", "¿hacéis envoltorio de regalo con tarjeta personalizada?"),
    ("pt", "conseguem juntar um cartão escrito à mão?"),
])
def test_a_gift_or_greeting_card_is_not_a_billing_matter(engine, language, text):
    [result] = play(engine, [text], tier="vip", language=language)
    assert "money" not in (result.analysis.topics or [])
    assert result.handoff and result.handoff.team == "general", result.decision.reasons


@pytest.mark.parametrize("language,text", [
    ("en", "I want my money back, the lamp arrived broken"),
    ("it", "rivoglio i soldi, la lampada è arrivata rotta"),
    ("es", "quiero que me devuelvan el dinero, la lámpara llegó rota"),
    ("pt", "quero o dinheiro de volta, o candeeiro chegou partido"),
    # a refund not received is not settled
    ("en", "I still haven't received my refund on the card, can you check?"),
    ("it", "ancora nn ho ricevuto il rimborso sulla carta, potete controllare?"),
    ("es", "y todavía no me llega el reembolso a la tarjeta, lo podés revisar?"),
    ("pt", "e ainda não recebi o reembolso no cartão, podem verificar?"),
])
def test_money_asked_back_or_not_received_is_not_settled(engine, language, text):
    """"el dinero, la lámpara llegó" once read as "the money came": a settled refund."""
    [result] = play(engine, [text], language=language)
    assert not result.analysis.settled
    assert result.handoff and result.handoff.team == "billing", result.decision.reasons


@pytest.mark.parametrize("language,menu,agent", [
    ("en", "Options", "agent"), ("it", "Opzioni", "operatore"),
    ("es", "Opciones", "agente"), ("pt", "Opções", "atendente"),
])
def test_an_intent_the_model_was_unsure_of_does_not_route_a_later_request(engine, language,
                                                                           menu, agent):
    """"Opciones" read as check_payment_methods at 0.16 once sent "agente" to billing."""
    *_, result = play(engine, [menu, agent])
    assert result.handoff and result.handoff.team == "general"


@pytest.mark.parametrize("language,text", [
    ("en", "great, tracking says delivered and the only thing on my doorstep is rain 👏👏"),
    ("it", "fantastico, il pacco risulta consegnato ma qui non c'è niente. bravi davvero 👏"),
    ("es", "genial, pone entregado y aquí no hay nada 👏"),
    ("pt", "ótimo, diz entregue e aqui não tem nada 👏"),
])
def test_delivered_on_paper_and_nothing_at_the_door_hands_off(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert "delivered_not_received" in result.analysis.cues
    assert result.handoff and result.handoff.team == "general", result.decision.reasons


@pytest.mark.parametrize("language,text", [
    ("en", "Lovely mug arrived, thank you! just a tiny chip on the handle though, not a big deal"),
    ("it", "arrivata la tazza, bellissima! solo un po' scheggiata sul manico"),
    ("es", "Hola, el pedido ND-202947 sigue retrasado desde el día 13, ¿podéis mirarlo?"),
    ("pt", "Olá, a encomenda ND-202947 continua 'atrasada' desde dia 13, podem ver o que se passa?"),
])
def test_a_vip_mentioning_a_chip_or_a_delay_gets_a_human(engine, language, text):
    [result] = play(engine, [text], tier="vip", language=language)
    assert result.analysis.problem
    assert result.handoff, result.decision.reasons


@pytest.mark.parametrize("language,text", [
    ("en", "this is the third time I'm writing about this. last week you said 2 days"),
    ("it", "è la terza volta che vi scrivo per questo ordine"),
    ("es", "es la tercera vez que os escribo por el mismo pedido"),
    ("pt", "é a terceira vez que eu escrevo sobre esse pedido"),
])
def test_writing_again_about_the_same_thing_hands_off(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert "repeat_contact" in result.analysis.cues
    assert result.handoff, result.decision.reasons


@pytest.mark.parametrize("language,text", [
    ("en", "morning! how long does delivery to Ireland usually take?"),
    ("en", "do you ship to Switzerland?"),
    ("it", "spedite in svizzera?"),
    ("es", "¿hacéis envíos a Suiza?"),
    ("pt", "vocês enviam para a Suíça?"),
    # a vip question naming an faq keyword gets the faq:
    # The intent model reads some of these as out of scope; the FAQ entry's keywords answer
    # them, so a VIP's routine question is not a failed reply handed over.
    ("en", "Do you offer express delivery to London? And what's the cut-off time?"),
    ("en", "can I pay with Klarna?"),
    ("it", "posso pagare con satispay?"),
    ("es", "buenas tardes, ¿aceptáis Bizum?"),
    ("pt", "dá pra pagar na entrega?"),
    ("pt", "tem ponto de recolha em Lisboa?"),
    # a vip asking where and how long gets the delivery faq
    ("en", "How long does it normally take for a parcel to reach Zurich?"),
    ("en", "Which countries do you ship to exactly? I'm moving to Lisbon next month"),
    ("en", "do you deliver to Norway?"),
    ("it", "spedite anche nel Regno Unito? devo mandare un regalo a Londra"),
    ("es", "¿cuántos días tarda a Canarias?"),
    ("pt", "quantos dias demora para os Açores?"),
])
def test_a_vips_faq_question_gets_the_faq(engine, language, text):
    """The English model reads "delivery to Ireland" as out of scope; the FAQ's examples with
    a country answer it, so a VIP's routine question is not a failed reply."""
    [result] = play(engine, [text], tier="vip", language=language)
    assert not result.handoff and not result.bot_failed, result.decision.reasons


@pytest.mark.parametrize("language,text", [
    ("en", "ok then I want to cancel it, I got the size wrong"),
    ("it", "ok allora vorrei annullarlo, ho sbagliato taglia"),
    ("es", "ok entonces quiero cancelarlo, me equivoqué de talla"),
    ("pt", "ok então quero cancelar, me enganei no tamanho"),
])
def test_cancelling_an_order_for_a_wrong_size_is_not_taking_a_message_back(engine, language, text):
    """"cancelarlo, me equivoqué" once read as "cancel that, typo": small talk, no handoff."""
    assert small_talk_of(text) is None
    [result] = play(engine, [text], language=language)
    assert result.handoff, result.decision.reasons


@pytest.mark.parametrize("language,messages", [
    ("en", ["no need to cancel anything, ND-449015 arrived this morning!", "sorry for the fuss lol"]),
    ("it", ["nn serve annullare niente, ND-447906 è arrivato stamattina!", "scusate x l'allarme di ieri 😅"]),
    ("es", ["no hace falta cancelar nada, ND-449015 llegó esta mañana!", "perdón por el lío de ayer jeje"]),
    ("pt", ["não precisa cancelar nada, a ND-449015 chegou hoje!", "desculpa o incômodo kkk"]),
])
def test_no_need_to_cancel_and_an_apology_keep_the_bot(engine, language, messages):
    results = play(engine, messages, language=language)
    assert results[0].analysis.settled
    assert not any(r.handoff for r in results), [r.decision.reasons for r in results]
    assert small_talk_of(messages[1]) == "acknowledgement"


@pytest.mark.parametrize("text", ["lol ignore that", "ignorate il messaggio", "jaja ignora eso",
                                  "kkk ignora isso"])
def test_ignore_that_takes_a_message_back(text):
    assert small_talk_of(text) == "acknowledgement"


@pytest.mark.parametrize("text", ["sorry, do you sell gift cards?", "sorry but my parcel never arrived",
                                  "scusate ma il pacco è arrivato rotto"])
def test_an_apology_with_a_question_or_a_problem_is_not_small_talk(text):
    assert small_talk_of(text) is None


@pytest.mark.parametrize("language,messages", [
    ("en", ["ITS HERE ITS HERE 🎉🎉", "thank u sm, fits like a dream"]),
    ("it", ["È ARRIVATOOO 🎉", "grazie mille, mi sta a pennello"]),
    ("es", ["YA LLEGÓ 🎉🎉", "gracias mil, me queda como un guante"]),
    ("pt", ["CHEGOUUU 🎉", "obrigada demais, serviu direitinho"]),
])
def test_thanks_with_a_few_happy_words_is_not_a_failed_reply_for_a_vip(engine, language, messages):
    results = play(engine, messages, tier="vip", language=language)
    assert not any(r.handoff for r in results), [r.decision.reasons for r in results]
    assert not results[-1].bot_failed


def test_ordering_again_is_loyalty_not_a_repeated_complaint():
    from tierline.nlu.cues import extract_cues

    assert "repeated_complaint" not in extract_cues("will def be ordering again").fired
    assert "repeated_complaint" in extract_cues("it broke again").fired


@pytest.mark.parametrize("language,text", [
    ("en", "the tracking number doesn't even work?? are you kidding me"),
    ("it", "il codice di tracciamento non funziona, ma state scherzando?"),
    ("es", "el número de seguimiento no funciona, me estáis tomando el pelo?"),
    ("pt", "o código de rastreio não funciona, só pode ser brincadeira"),
])
def test_are_you_kidding_me_about_a_problem_is_fed_up(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert "fed_up" in result.analysis.cues
    assert result.handoff, result.decision.reasons


@pytest.mark.parametrize("language,first,second", [
    ("en", "Hello, status of ND-655120 please?", "sorry, it's ND-655121"),
    ("it", "Buongiorno, a che punto è l'ordine ND-571163?", "scusate, è ND-571164"),
    ("es", "Buenos días, ¿cómo va el pedido ND-572274?", "perdón, es ND-572275"),
    ("pt", "Bom dia, como está a encomenda ND-573385?", "desculpe, é ND-573386"),
])
def test_a_vip_is_asked_again_for_an_unknown_order_number_then_handed_over(engine, language,
                                                                           first, second):
    """"I couldn't find order X, please check the number" asks again: the first unknown
    number is not a failed reply, the second is, and the first with it (a VIP's first failed
    reply hands over)."""
    asked, again = play(engine, [first, second], tier="vip", language=language)
    assert not asked.handoff and not asked.bot_failed, asked.decision.reasons
    assert asked.state.step == "awaiting_order_number"
    assert again.handoff and "2 failed bot replies" in again.handoff.reasons


@pytest.mark.parametrize("language,texts", [
    ("en", ["ND-999999", "hmm try ND-888888", "ok what about ND-777777?? 🙄"]),
    ("it", ["ND-999999", "allora ND-888888", "boh prova ND-777777"]),
    ("es", ["ND-999999", "pues ND-888888", "y ND-777777?"]),
    ("pt", ["ND-999999", "entao ND-888888", "tenta ND-777777 pfv"]),
])
def test_three_order_numbers_the_shop_cannot_find_are_three_failed_replies(engine, language,
                                                                          texts):
    """The first unknown number had the benefit of a typo; a second one takes it back, so
    the third hands a standard customer over (three failed replies), not the fifth."""
    first, second, third = play(engine, texts, language=language)
    assert not first.bot_failed and not first.handoff
    assert second.bot_failed and not second.handoff, second.decision.reasons
    assert second.state.failed_attempts == 2
    assert third.handoff and "3 failed bot replies" in third.handoff.reasons


@pytest.mark.parametrize("language,text", [
    ("en", "hi, I ordered a dress by mistake an hour ago, #ND309815, please cancel it before it ships"),
    ("it", "ho ordinato per sbaglio, vorrei annullarlo prima che parta"),
    ("es", "pedí por error, quiero cancelar mi pedido antes de que salga"),
    ("pt", "comprei sem querer, quero cancelar a encomenda antes de sair"),
])
def test_asking_to_cancel_an_order_hands_off_whatever_the_intent_model_says(engine, language,
                                                                             text):
    """"ordered by mistake" once read as a slip of the chat (small talk), and the intent model
    heard get_refund at 0.46."""
    assert small_talk_of(text) is None
    [result] = play(engine, [text], language=language)
    assert "cancel_request" in result.analysis.cues
    assert result.handoff and "customer asks to cancel an order" in result.handoff.reasons


@pytest.mark.parametrize("text", [
    "non annullate niente!! il pacco era dalla vicina 😅", "no need to cancel anything, it arrived",
    "do I need to cancel and reorder to change size?", "I want to cancel my newsletter subscription",
    "se annullo prima che parta mi ridate tutto? chiedo solo per sapere",
    "Si cancelo un pedido antes de que salga, ¿se cobra algo? Pregunto en general, todavía no he comprado.",
    # can one cancel an order in general is no request
    "can I cancel an order after paying?",
    "posso annullare un ordine dopo il pagamento?",
    "¿puedo cancelar un pedido?",
    "posso cancelar um pedido depois?",
])
def test_cancel_words_that_ask_no_cancellation(text):
    from tierline.nlu.cues import extract_cues

    assert "cancel_request" not in extract_cues(text).fired


@pytest.mark.parametrize("language,messages", [
    ("en", ["where is ND-502118?", "Oh, 'in transit' for ten days. Well done, truly impeccable service."]),
    ("it", ["Ordine ND-502118, a che punto è?",
            "Ah, 'in transito' da dieci giorni. Complimenti, servizio davvero impeccabile."]),
    ("es", ["¿Dónde está el ND-840273?",
            "Genial, otra semana más 'en reparto'. Qué maravilla de servicio, enhorabuena."]),
    ("pt", ["Cadê a ND-840273?", "Nossa, outra semana 'em trânsito'. Que serviço, parabéns."]),
])
def test_sarcasm_about_a_wait_in_words_hands_off(engine, language, messages):
    *_, result = play(engine, messages, language=language)
    assert "sarcasm" in result.analysis.cues
    assert result.handoff, result.decision.reasons


@pytest.mark.parametrize("language,messages", [
    ("en", ["Can I get the navy belt in 95?", "any chance you'll let me know when it's back?"]),
    ("it", ["Disponibilità cintura in cuoio nera tg 95?", "Quando rientra?"]),
    ("es", ["¿Os va a entrar más stock del bolso camel?", "¿Me podéis avisar cuando vuelva?"]),
    ("pt", ["Vão ter mais stock da mala camel?", "Podem me avisar quando voltar?"]),
])
def test_restocking_questions_are_failed_replies(engine, language, messages):
    results = play(engine, messages, language=language)
    assert all(r.bot_failed for r in results), [r.replies[0].text for r in results]


@pytest.mark.parametrize("language,text", [
    ("en", "sorry, wrong message, that was for a colleague"),
    ("it", "scusate, messaggio sbagliato, era per un collega"),
    ("es", "perdón, mensaje equivocado, era para un compañero"),
    ("pt", "perdão, mensagem errada, era para um colega"),
])
def test_a_message_meant_for_a_colleague_is_a_wrong_chat(text, language):
    assert small_talk_of(text) == "goodbye"


@pytest.mark.parametrize("text,choice", [("premo 3", "menu_agent"), ("press 1", "menu_order"),
                                          ("elijo 2", "menu_faq"), ("escolho 3", "menu_agent")])
def test_pressing_an_option_in_words_is_the_option(text, choice):
    from tierline.nlu.bot import menu_choice

    assert menu_choice(text) == choice


@pytest.mark.parametrize("language,messages", [
    ("en", ["how long does shipping take?", "ok but how long does delivery take"]),
    ("it", ["quanto tempo ci vuole per la spedizione?", "sì ok ma quanto ci vuole per la consegna?"]),
    ("es", ["¿cuánto tarda el envío?", "ya pero ¿cuánto tarda en llegar?"]),
    ("pt", ["quanto tempo demora a entrega?", "sim mas quanto tempo demora pra chegar?"]),
])
def test_the_same_faq_answer_twice_is_a_failed_reply(engine, language, messages):
    """An answer the customer already had did not help the first time."""
    first, second = play(engine, messages, language=language)
    assert not first.bot_failed
    assert second.replies[0].text == first.replies[0].text and second.bot_failed


@pytest.mark.parametrize("language,messages", [
    ("en", ["the password reset email never arrives", "this site is a joke!!! two days trying 😡"]),
    ("it", ["non mi arriva la mail per reimpostare la password",
            "ma è mai possibile??? due giorni che ci provo, sito ridicolo 😡"]),
    ("es", ["no me llega el correo para restablecer la contraseña",
            "es ridículo!!! llevo dos días intentando entrar 😡"]),
    ("pt", ["não chega o email para redefinir a senha",
            "é ridículo!!! dois dias tentando entrar 😡"]),
    # a request for a person after an account problem goes to the technical team
    ("en", ["hey so I changed my email and now the login page doesnt recognise me",
            "can you call me back this afternoon?"]),
    ("it", ["ho cambiato mail e non riesco piu ad entrare nell'account",
            "c'è un operatore che mi puo aiutare?"]),
    ("es", ["cambié mi correo y ya no puedo entrar a mi cuenta",
            "¿hay alguien de carne y hueso que me eche una mano?"]),
    ("pt", ["mudei o email e agora não consigo entrar na minha conta",
            "tem alguém de verdade pra me ajudar?"]),
])
def test_an_account_problem_routes_what_follows_to_the_technical_team(engine, language,
                                                                          messages):
    *_, result = play(engine, messages, language=language)
    assert result.handoff and result.handoff.team == "technical", result.decision.reasons


@pytest.mark.parametrize("language,messages", [
    ("en", ["what are your payment methods?", "thanks",
            "oh and my parcel has been stuck in customs in Zurich for 6 days"]),
    ("pt", ["quais formas de pagamento vocês aceitam?", "perfeito",
            "ah, e meu pacote tá retido na alfândega faz 6 dias"]),
])
def test_a_new_problem_after_a_payment_question_is_not_billings(engine, language, messages):
    *_, result = play(engine, messages, tier="vip", language=language)
    assert result.handoff and result.handoff.team == "general", result.decision.reasons


@pytest.mark.parametrize("language,messages", [
    ("en", ["do you do gift wrapping?", "can you add a little card inside?", "and is the wool itchy?"]),
    ("es", ["¿el jersey de lana pica?", "¿se puede meter en la secadora?",
            "¿y hacéis envoltorio de regalo con tarjeta?"]),
])
def test_a_gift_card_in_gift_wrapping_does_not_send_a_failed_reply_handoff_to_billing(
        engine, language, messages):
    *_, result = play(engine, messages, language=language)
    assert result.handoff and result.handoff.team == "general", result.decision.reasons


@pytest.mark.parametrize("language,messages", [
    ("en", ["hey", "quick question", "can I pay cash on delivery?"]),
    ("it", ["hey ciao", "domanda veloce", "si può pagare in contrassegno?"]),
    ("es", ["holaa", "una pregunta", "¿se puede pagar contra reembolso?"]),
    ("pt", ["oi", "uma dúvida", "dá pra pagar na entrega?"]),
])
def test_a_question_announced_is_asked_for_not_handed_off(engine, language, messages):
    results = play(engine, messages, language=language)
    assert not any(r.handoff for r in results), [r.decision.reasons for r in results]
    assert results[1].replies[0].text == engine.flow.text("faq_prompt", language)


@pytest.mark.parametrize("language,text", [
    ("en", "hey, can I cancel ND-219460? ordered the wrong size by mistake"),
    ("it", "posso annullarlo? ho sbagliato taglia"),
    ("es", "¿puedo cancelarlo? me equivoqué de talla"),
    ("pt", "posso cancelar? errei o tamanho"),
])
def test_can_i_cancel_it_is_a_cancellation_request(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert "cancel_request" in result.analysis.cues and result.handoff


@pytest.mark.parametrize("language,messages", [
    ("en", ["ND-594417", "it's for my dad's birthday on the 12th and I need to change a few things"]),
    ("es", ["ND-594417", "es para el cumple de mi padre el 12 y tengo que cambiar un par de cosas"]),
])
def test_a_long_message_with_a_date_is_not_a_bad_order_number(engine, language, messages):
    """After "I couldn't find order X", a long message with a "12th" in it is not an attempt
    at the number."""
    *_, result = play(engine, messages, language=language)
    assert result.replies[0].text != engine.flow.text("invalid_order_number", language)


@pytest.mark.parametrize("language,text", [
    ("en", "I returned the sandals on 2 May and I still haven't received the refund"),
    ("it", "Buongiorno, ho fatto il reso dei sandali il 2 maggio e non ho ancora ricevuto il rimborso"),
    ("es", "hace un mes que devolví la chaqueta y el dinero no aparece"),
    ("pt", "devolvi o casaco há um mês e o dinheiro não apareceu"),
])
def test_a_refund_still_not_received_hands_off_to_billing(engine, language, text):
    """"non ho ancora ricevuto il rimborso" once read as "ricevuto il rimborso": settled."""
    [result] = play(engine, [text], language=language)
    assert not result.analysis.settled and "money_back" in result.analysis.cues
    assert result.handoff and result.handoff.team == "billing", result.decision.reasons


@pytest.mark.parametrize("language,text", [
    ("en", "I don't want a refund or anything, just asking if the socks come in a pack of 3"),
    ("it", "non voglio il rimborso, solo sapere se le calze sono in confezione da 3"),
    ("es", "no quiero reembolso ni nada eh, solo preguntar si los calcetines vienen en pack de 3"),
    ("pt", "não quero reembolso nenhum, só saber se as meias vêm em pack de 3"),
])
def test_not_wanting_a_refund_is_not_money_asked_back(text, language):
    from tierline.nlu.cues import extract_cues

    assert "money_back" not in extract_cues(text).fired


@pytest.mark.parametrize("language,messages", [
    ("en", ["ND-512877", "yeah, 'in transit'. since the 2nd. great, super useful bot 👏"]),
    ("it", ["ND-512877", "sì, 'in transito'. dal 2. fantastico, utilissimo il bot 👏"]),
    ("es", ["pedido ND-512877", "ya, 'en tránsito'. desde el día 2. genial, súper útil el bot este 👏"]),
    ("pt", ["o código de seguimento não existe no site dos CTT",
            "pois, muito obrigado pela resposta automática inútil. fantástico. 👏👏"]),
])
def test_thanking_the_bot_sarcastically_hands_off(engine, language, messages):
    *_, result = play(engine, messages, language=language)
    assert set(result.analysis.cues) & {"sarcasm", "bot_insult"}
    assert result.handoff, result.decision.reasons


@pytest.mark.parametrize("language,text", [
    ("en", "ugh forgot my password AGAIN 🙄 how do i reset it"),
    ("it", "ho dimenticato la password DI NUOVO 🙄 sono un disastro ahah"),
    ("es", "OTRA VEZ me he olvidado de la contraseña jajaja soy un desastre"),
    ("pt", "esqueci a senha DE NOVO kkkk sou um desastre"),
])
def test_laughing_at_ones_own_forgotten_password_is_not_shouting(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert "all_caps" not in result.analysis.cues
    assert not result.handoff, result.decision.reasons


@pytest.mark.parametrize("text", ["desculpem, mensagem enviada por engano",
                                  "annulla, ho scritto per sbaglio",
                                  "cancela lo anterior, me he liado",
                                  "sorry, sent that by mistake"])
def test_a_message_sent_by_mistake_is_taken_back(text):
    assert small_talk_of(text) == "acknowledgement"


@pytest.mark.parametrize("language,text", [
    ("en", "I'm a travel agent and order from you all the time lol, what payment methods do you take now?"),
    ("it", "sono agente immobiliare e sono sempre in giro, posso scegliere un punto di ritiro?"),
    ("es", "soy agente inmobiliario y estoy todo el día en la calle, ¿puedo elegir un punto de recogida?"),
    ("pt", "sou agente de viagens e viajo muito, posso escolher um ponto de retirada?"),
])
def test_agent_as_the_customers_own_job_is_not_a_request(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert "customer asked for a human agent" not in result.decision.reasons, result.decision.reasons


@pytest.mark.parametrize("language,text", [
    ("en", "jjjjjjjjjjjjjjjkkkkk"), ("it", "kkkkkkkjjjjjjjj"), ("es", "ñññññññjjjj"), ("pt", "kkkkkkkkkkkkjjjj"),
])
def test_a_cat_on_the_keyboard_is_no_elongated_word(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert "elongated_word" not in result.analysis.cues and not result.handoff


@pytest.mark.parametrize("language,text", [
    ("en", "still waiting for the jacket for the wedding... which was on Saturday. Thanks for nothing 👏👏"),
    ("it", "sto ancora aspettando la giacca per il matrimonio... che era sabato. Grazie per niente 👏👏"),
    ("es", "pues nada, aquí sigo esperando la chaqueta para la boda... que fue el sábado. Gracias por nada 👏👏"),
    ("pt", "ainda estou esperando o casaco para o casamento... que foi sábado. Obrigada por nada 👏👏"),
])
def test_thanks_for_nothing_is_sarcasm(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert "sarcasm" in result.analysis.cues and result.handoff, result.decision.reasons


def test_thanks_for_nothing_laughing_is_a_joke():
    from tierline.nlu.cues import extract_cues

    assert "sarcasm" not in extract_cues(
        "obrigada por nada viu, agora minha mãe quer um igual e vou ter que comprar outro 🙄😂").fired


@pytest.mark.parametrize("language,text", [
    ("en", "wow what a smart bot, I asked one thing and you answered another 🙄"),
    ("it", "che bot intelligente, ho chiesto una cosa e mi hai risposto un'altra 🙄"),
    ("es", "qué bot tan listo, pregunté una cosa y me respondiste otra 🙄"),
    ("pt", "nossa que bot inteligente hein, perguntei uma coisa e vc me respondeu outra 🙄🙄"),
])
def test_the_bot_answering_another_question_is_an_insult_to_it(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert "bot_insult" in result.analysis.cues and result.handoff


@pytest.mark.parametrize("language,text", [
    ("en", "returned the coat a month ago and the refund still hasn't shown up"),
    ("it", "ho fatto il reso un mese fa e il rimborso non è ancora arrivato"),
    ("es", "hace un mes devolví el abrigo y el reembolso sigue sin aparecer. ¿qué pasa?"),
    ("pt", "devolvi o casaco há um mês e o reembolso continua sem aparecer"),
])
def test_a_refund_that_still_does_not_appear_is_money_asked_back(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert "money_back" in result.analysis.cues and result.handoff


@pytest.mark.parametrize("language,text", [
    ("en", "Would it be possible to have a colleague of yours look into it personally? Many thanks"),
    ("es", "ah pues entonces cancélame el ND-418826, que lo necesitaba para el finde"),
    # calling the shop clowns is frustration
    ("en", "2-4 working days eh? give me a break. you're a bunch of clowns"),
    ("it", "Ah 2-4 giorni lavorativi eh? Ma fatemi il piacere. Siete dei buffoni"),
    ("es", "¿2-4 días laborables? sois unos payasos"),
    ("pt", "2-4 dias úteis? vocês são uns palhaços"),
])
def test_a_colleague_cancelame_and_calling_the_shop_clowns_hand_off(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert result.handoff, result.decision.reasons


@pytest.mark.parametrize("text", ["annulla annulla, ho scritto una cavolata 😅", "cancel cancel, wrote it wrong",
                                  "cancela cancela, escribí mal", "cancela cancela kkk"])
def test_cancel_cancel_takes_a_message_back(text):
    assert small_talk_of(text) == "acknowledgement"


@pytest.mark.parametrize("language,text", [
    ("en", "my express delivery is late!"),
    ("it", "ho pagato con paypal e mi avete addebitato due volte"),
])
def test_a_problem_naming_an_faq_keyword_is_not_answered_with_the_faq(engine, language, text):
    [result] = play(engine, [text], tier="vip", language=language)
    assert result.handoff, result.decision.reasons


def test_a_keyword_said_not_to_be_the_question_is_not_answered():
    *_, result = play(TurnEngine.shipped(), ["I need to change the delivery address",
                                             "no that's not what I asked",
                                             "are you actually thick? I SAID ADDRESS not delivery times"])
    assert result.handoff, result.decision.reasons


@pytest.mark.parametrize("language,messages", [
    ("en", ["where is ND-527760?",
            "oh great, another 'your order is on its way'. really helpful. genuinely amazing work 🙄"]),
    ("it", ["dov'è ND-527760?", "fantastico, un altro 'il tuo ordine è in viaggio'. complimenti 🙄"]),
    ("es", ["¿dónde está ND-527760?", "genial, otro 'tu pedido está en camino'. enhorabuena 🙄"]),
    ("pt", ["cadê ND-527760?", "ótimo, mais um 'seu pedido está a caminho'. parabéns 🙄"]),
])
def test_praise_rolling_its_eyes_is_sarcasm(engine, language, messages):
    *_, result = play(engine, messages, language=language)
    assert "sarcasm" in result.analysis.cues and result.handoff


def test_what_is_it_again_asks_to_be_reminded():
    from tierline.nlu.cues import extract_cues

    assert "repeated_complaint" not in extract_cues("so what's the returns window again?").fired
    assert "repeated_complaint" in extract_cues("it broke again, the second time").fired


@pytest.mark.parametrize("text", [
    "cmq x favore nn ce la faccio a scrivere tutto qui, mi fate chiamare da qlc? grz",
    "Talè, stu menù nun lu capisciu bonu... c'è qualcunu cu cui pozzu parrari?",
    "ok ma nn si capisce niente da sto tracking, posso parlare con qlc?",
    "vulesse parlà cu nu cristiano, no cu 'na macchinetta 😅",
])
def test_italian_requests_in_abbreviations_and_dialect(engine, text):
    [result] = play(engine, [text], language="it")
    assert result.handoff and "customer asked for a human agent" in result.handoff.reasons


@pytest.mark.parametrize("language,text", [
    ("en", "the partial refund came but the shipping costs are missing, shouldn't you refund them?"),
    ("it", "Mi è arrivato il rimborso parziale ma mancano le spese di spedizione, non dovevate rimborsarle?"),
    ("es", "me llegó el reembolso parcial pero faltan los gastos de envío"),
    ("pt", "chegou o reembolso parcial mas falta o valor do frete"),
])
def test_a_refund_missing_a_part_is_money_asked_back_for_billing(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert "money_back" in result.analysis.cues and "missing_item" not in result.analysis.cues
    assert result.handoff and result.handoff.team == "billing", result.decision.reasons


@pytest.mark.parametrize("language,texts", [
    ("en", ["check my order ND-55", "sorry ND-5512", "ND-55120 i think"]),
    ("it", ["guarda l'ordine ND-55", "scusa ND-5512", "ND-55120 credo"]),
    ("es", ["mira el pedido ND-55", "perdón ND-5512", "ND-55120 creo"]),
    ("pt", ["olha o pedido ND-55", "desculpa ND-5512", "ND-55120 acho"]),
])
def test_three_mistyped_order_numbers_are_three_failed_replies(engine, language, texts):
    """"ND-55" is the shop's prefix with digits that make no number: asked again as an unknown
    number is, the first excused, the third handing over."""
    first, second, third = play(engine, texts, language=language)
    assert not first.bot_failed and first.state.step == "awaiting_order_number"
    assert second.bot_failed and second.state.failed_attempts == 2
    assert third.handoff and "3 failed bot replies" in third.handoff.reasons


@pytest.mark.parametrize("language,messages", [
    ("en", ["which payment methods do you take?", "and can I pay with PayPal?"]),
    ("it", ["quali metodi di pagamento accettate?", "e posso pagare con PayPal?"]),
    ("es", ["¿qué métodos de pago aceptáis?", "¿y se puede pagar con PayPal?"]),
    ("pt", ["olá, quais métodos de pagamento aceitam?", "e dá para pagar com PayPal?"]),
])
def test_a_follow_up_the_same_faq_answer_names_is_answered_not_failed(engine, language,
                                                                      messages):
    """The payment methods' answer lists PayPal: asked about PayPal next, the same answer
    answers it (a VIP was handed over for it as a failed reply)."""
    first, second = play(engine, messages, tier="vip", language=language)
    assert second.replies[0].text == first.replies[0].text
    assert not second.bot_failed and not second.handoff, second.decision.reasons


@pytest.mark.parametrize("language,text", [
    ("en", "amazing service, I could have walked to Rome and back faster 👏👏"),
    ("it", "complimenti eh, manco a piedi da milano a napoli ci mettevo tanto 👏👏"),
    ("es", "enhorabuena, ni andando desde Madrid tardaba tanto 👏"),
    ("pt", "parabéns, nem a pé de Lisboa ao Porto demorava tanto 👏"),
])
def test_walking_would_have_been_faster_is_sarcasm_about_a_delay(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert "sarcasm" in result.analysis.cues
    assert result.handoff and "customer is being sarcastic about a delay" in result.handoff.reasons


@pytest.mark.parametrize("language,text", [
    ("en", "I have got the invoice, thank you. But the total say 112 euro and I have paid 89 "
           "euro, please correct it"),
    ("it", "ho ricevuto la fattura ma il totale dice 112 euro e io ho pagato 89 euro, me la "
           "correggete?"),
    ("es", "me llegó la factura pero el total pone 112 euros y yo he pagado 89 euros, ¿me la "
           "corregís?"),
    ("pt", "recebi a fatura mas o total diz 112 euros e eu paguei 89 euros, podem corrigir?"),
])
def test_a_total_other_than_what_was_paid_is_an_invoice_error(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert "invoice_error" in result.analysis.cues
    assert result.handoff and result.handoff.team == "billing"


@pytest.mark.parametrize("language,text", [
    ("it", "si buonasera allora ho fatto un ordine per mia nipote ma la taglia forse è sbagliata "
           "mi potete passare qualcuno che mi spiega come si fa grazie"),
    ("es", "Buenos días. Quisiera, si es posible, tratar con una persona de su departamento un "
           "asunto relativo a una factura. Gracias."),
    ("es", "hola buenas tardes fíjese que los jeans le quedaron chicos a mi hijo y no le entiendo "
           "al menú, será que me puede atender un asesor por favor"),
    ("pt", "boa tarde, comprei uma calça pro meu filho e ficou pequena, não entendo o menu, será "
           "que pode me atender um atendente por favor"),
])
def test_a_request_for_a_person_inside_a_long_dictated_message(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert result.handoff and "customer asked for a human agent" in result.handoff.reasons


@pytest.mark.parametrize("language,text", [
    ("es", "una duda nomás, si cancelo un pedido me devuelven toda la plata? no lo voy a "
           "cancelar, es pura curiosidad"),
    ("pt", "uma dúvida, se eu cancelar um pedido devolvem o dinheiro todo? não vou cancelar, é "
           "pura curiosidade"),
])
def test_pure_curiosity_about_cancelling_is_asked_only_to_know(engine, language, text):
    [result] = play(engine, [text], language=language)
    assert result.analysis.hypothetical
    assert not result.handoff, result.decision.reasons


@pytest.mark.parametrize("language,text", [
    ("it", "QUESTA PAGINA NON FUNZIONA, È UN'ORA CHE PROVO"),
    ("es", "ES UNA PORQUERÍA ESTA PÁGINA, LLEVO UNA HORA"),
    ("pt", "ESSA PÁGINA NÃO FUNCIONA, JÁ FAZ UMA HORA"),
])
def test_a_web_page_is_not_a_payment(engine, language, text):
    """"página" begins like "pagar": a page that does not work is not billing's."""
    [result] = play(engine, [text], language=language)
    assert "money" not in result.analysis.topics


@pytest.mark.parametrize("language,messages", [
    ("en", ["the app logs me out every time I log in",
            "ffs this is the fifth time, this app is total garbage"]),
    ("it", ["l'app mi butta fuori ogni volta che faccio login",
            "ma porca miseria è la quinta volta, sta app è una ciofeca"]),
    ("es", ["la app me saca cada vez que inicio sesión",
            "joder es la quinta vez, esta app es una basura"]),
    ("pt", ["o app me desloga toda vez que faço login", "pqp é a quinta vez, esse app é um lixo"]),
])
def test_an_outburst_after_a_login_problem_goes_to_the_technical_team(engine, language,
                                                                       messages):
    """The outburst names no topic of its own and no problem was reported before it: the
    account topic the conversation carries routes it (it went to general)."""
    results = play(engine, messages, language=language)
    assert results[-1].handoff and results[-1].handoff.team == "technical"
