"""The menu bot (tier 1): a small state machine with no I/O of its own.

Given the conversation state, the customer's message and the Analyzer's view of it, the bot
returns what to send (text, reply buttons) and how the state changes. Channels (the WhatsApp
webhook, the terminal chat, tests) turn the returned actions into messages.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from tierline.nlu.analyzer import AnalysisResult
from tierline.nlu.cues import LAUGHTER, MISDIRECTED, SLIP, extract_cues, praises
from tierline.nlu.directory import OrderLookup
from tierline.nlu.faq import FaqIndex
from tierline.nlu.flow import BotFlow
from tierline.nlu.labels import OUT_OF_SCOPE, SMALL_TALK_INTENTS
from tierline.nlu.order_numbers import FoundNumber, OrderNumbers
from tierline.nlu.text import WORD, fold, squash_elongation, words_of

#: Reply-button ids of the main menu; a customer may also type the option (:func:`menu_choice`).
MENU_ORDER, MENU_FAQ, MENU_AGENT = "menu_order", "menu_faq", "menu_agent"
#: Not a button the bot sends: the menu's list-button title typed ("Opciones"), asking for it.
MENU_SHOW = "menu"
#: The flow's message key of each menu title, as the option it stands for when typed.
TITLE_CHOICES = {"menu_button": MENU_SHOW, "menu_order_status": MENU_ORDER,
                 "menu_faq": MENU_FAQ, "menu_agent": MENU_AGENT}
MENU_DIGITS = {"1": MENU_ORDER, "2": MENU_FAQ, "3": MENU_AGENT}
HISTORY_LIMIT = 20
#: Below this intent confidence the bot does not act on the intent (it falls back instead).
ACT_CONFIDENCE = 0.5
#: An order number with at most this many other words is an answer giving it.
GIVEN_NUMBER_WORDS = 4
#: Options as customers type them: "3", "3 please", "la 3", "opzione 3", "opción 3", "tre", "#3".
_NUMBER_WORDS = {"one": "1", "uno": "1", "um": "1", "two": "2", "due": "2", "dos": "2",
                 "dois": "2", "three": "3", "tre": "3", "tres": "3", "três": "3"}
_MENU_TEXT = re.compile(
    r"^(?:(?:the|option|opt|number|nr|num|la|il|el|a|o|opzione|opcion|opción|opção|opcao|"
    r"premo|premi|press|pressing|pulso|elijo|escojo|marco|scelgo|choose|pick|escolho|aperto|"
    r"numero|número|nº|n°)\s*)*#?\s*(?P<option>[123]|one|two|three|uno|due|tre|dos|tres|três|um|dois)"
    r"(?:\s*(?:please|pls|plz|por favor|porfa|per favore|perfavore|pf|grazie|thanks|thx|ty|"
    r"obrigad[oa]|obg|gracias|pfv))*$", re.IGNORECASE)
_MENU_NOISE = re.compile(r"[^\w#º°\s]", re.UNICODE)
#: Words asking where an order is or when it comes, in en/it/es/pt (folded): with them a
#: message with an order number asks for its status, whatever the intent model says.
_STATUS_WORDS = re.compile(
    r"\b(?:status|track\w*|where|when|arriv\w*|ship\w*|sent|dispatch\w*|deliver\w*|update\w*|"
    r"news|eta|check|stato|dove|quando|spedit\w*|partit\w*|consegn\w*|punto|novita|estado|"
    r"estatus|donde|cuando|lleg\w*|envi\w*|sali\w*|entreg\w*|cade|onde|cheg\w*|saiu|"
    r"rastre\w*|novidade\w*|situacao|situacion|seguimiento|tracciamento|late|delay\w*|ponto|"
    r"esta|anda|va|"
    r"ritardo|retras\w*|atras\w*|still|ancora|todavia|ainda)\b")


#: Scores as customers type them after "How would you rate the help you received?".
_SCORE_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
                "uno": 1, "due": 2, "tre": 3, "quattro": 4, "cinque": 5,
                "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5,
                "um": 1, "uma": 1, "dois": 2, "duas": 2, "três": 3, "quatro": 4}
_SCORE_TEXT = re.compile(r"^\D*?([1-5])(?:\s*(?:stars?|stelle|stella|estrellas?|estrelas?|"
                         r"points?|punti|puntos|pontos))?\W*$", re.IGNORECASE)
_OUT_OF_FIVE = re.compile(r"\s*(?:/|out of|su|de|di|em)\s*5\b", re.IGNORECASE)


#: Greetings, thanks and goodbyes as customers type them in en/it/es/pt, colloquial forms
#: included: the bot answers them even when the intent model is unsure of a two-word message.
SMALL_TALK_WORDS: dict[str, frozenset[str]] = {
    "greeting": frozenset("""hi hello hey hiya yo morning evening salve ciao buongiorno
        buonasera hola buenas buenos holaa holi oi oii oie ola olá eae eai opa bom boa dia tarde
        noite tardes noches días dias afternoon good""".split()),
    "thanks": frozenset("""thanks thank thx ty tks cheers grazie mille gracias muchas mil
        obrigado obrigada obg brigado brigada vlw valeu merci""".split()),
    "goodbye": frozenset("""bye goodbye cya later arrivederci addio adios adiós chao chau
        hasta luego tchau tchauzinho xau até logo mais""".split()),
    # "ok", "lol ok", "kkkk blz", "vale vale": heard, nothing asked. Answered like a thank-you.
    "acknowledgement": frozenset("""ok okay okk k kk oki okey okis alright fine cool nice lol
        lmao va bene vabbè vabbe daccordo capito perfetto vale dale bueno listo entendido
        beleza blz certo entendi show ta tá""".split()),
}
#: Words that may stand beside a small-talk word without changing what the message is.
_SMALL_TALK_FILLER = frozenset("""a e y and so much very you u all lot really tutti tanti tante
    tutto de da do por pela pelo per il la lo el ok okay va vale beleza tudo bem bene bien
    verdad tanto tantas""".split())


#: "Never mind, cancel that question", "annulla, ho sbagliato a scrivere", "esquece": the
#: customer takes back their own message (folded text). Not when it names an order or account.
_TAKE_BACK = re.compile(
    r"\b(?:never ?mind|forget it|lascia (?:stare|perdere)|non importa|fa niente|dejalo|"
    r"olvidalo|no importa|da igual|deixa (?:pra la|quieto)|esquece|lasciate (?:stare|perdere)|"
    # "lol ignore that", "ignorate il messaggio", "ignora eso", "desconsidera"
    r"ignore (?:that|this|it|me|my last|the last|previous)|ignorate|ignoralo|ignoratelo|"
    r"ignora (?:quello|questo|il messaggio|l ultimo|eso|esto|el mensaje|isso|a mensagem)|"
    r"ignoren(?:lo)?|ignorem|desconsider\w*|annulla annulla|cancel cancel|cancela cancela|"
    # ... "I was charged... oh wait no, that was my Spotify 🤦"
    r"(?:oh |ah )?wait,? no|ah no,? (?:scusa|scusate|era|perdon|perdona|desculp\w*|sorry)|"
    r"aspetta no|"
    r"ho scritto (?:una (?:cavolata|stupidaggine|sciocchezza)|male)|escribi mal|wrote (?:it )?wrong|"
    r"(?:cancel|annulla|cancela)\w* (?:lo anterior|o anterior|quello di prima|il messaggio di prima|"
    r"the last one|my last message|that last message)|"
    r"(?:cancel|annulla|cancela)\w* (?:(?:that|this|the|my|la|il|el|lo|a|o) )?(?:question|"
    r"message|msg|typo|domanda|messaggio|pregunta|mensaje|pergunta|mensagem)|"
    r"(?:cancel|annulla|cancela)\w*,? (?:(?:that|this|it)\b.*\btypo|ho sbagliato|"
    r"me equivoque|digitei errado|escrevi errado|lo que te escribi|o que (?:te )?escrevi)"
    # ... but "quiero cancelarlo, me equivoqué de talla" takes back an order, not a message
    r"(?! (?:(?:de|di|la|il|el|o|a|the|my|lo|al|nel|nella|no|na|in) )*(?:talla|taglia|size|"
    r"tamanho|tamano|colore|color|colour|cor|modelo|modello|model|indirizzo|direccion|endereco|"
    r"address|ordine|pedido|order|prodott\w*|product\w*|produto|articul\w*|artigo|numero|"
    r"compra|acquisto|purchase)))")
#: What this bot cannot do, though the intent model may hear a delivery or FAQ question in it
#: ("¿cuándo vuelve a haber stock del verde?" read as delivery_period, "o estafeta pode deixar na
#: porteira?" as delivery_options): stock and restocking, and instructions for the courier
#: (folded words). The FAQ's answer would be beside the point; it is a failed reply.
BEYOND_THE_BOT = re.compile(
    r"\b(?:back in stock|in stock|restock\w*|out of stock|sold out|available again|"
    r"torna(?:no)? disponibil\w*|di nuovo disponibil\w*|riassortiment\w*|esaurit[oaie]|"
    r"vuelve a haber|vuelven a tener|reponen|reposicion|agotad[oa]s?|disponible de nuevo|"
    r"volta a ter|voltam a ter|esgotad[oa]s?|reposicao|repor o estoque|"
    r"quando rientra(?:no)?|rientrera(?:nno)?|"
    r"(?:avisar|avisarme|avisadme|avisame|avvisar\w*|avisem|avisa|notify me|let me know)"
    r"(?: \w+){0,2}? (?:cuando|quando|when) (?:vuelva|vuelvan|haya|torna|tornano|rientra|volte|"
    r"voltar|it s back|its back|back|restock\w*|arriva|arrivano|llegue|lleguen|chegar|arrives|"
    r"comes in|is in)|(?:ne )?arrivano altri|llegan (?:mas|otros)|chegam mais|getting more in|"
    r"more coming in|togliere il prezzo|togliete il prezzo|remove the price|tirar o preco|"
    r"leave the price(?: tag)? out|"
    r"(?:leave|drop) (?:it|them|the parcel|the package|the box)(?: \w+){0,2}? (?:with|at|in|by|"
    r"next|outside|behind|under)|"
    r"lasci(?:arlo|arla|arli|alo|atelo|ate|a|are)? (?:al|alla|dal|dalla|in|nel|nella|dietro|fuori|"
    r"davanti|sotto)|"
    r"(?:dejar|dejarlo|dejarla|dejen|deje|dejelo|dejenlo|lo deje|lo dejen|lo deja)"
    r"(?: (?:el|la|los|las) \w+)? (?:en|con|al|a la|fuera|detras|debajo)|"
    r"(?:deixar|deixe|deixem|deixa|deixar o|deixar a|deixarem)(?: (?:o|a|os|as) \w+)? (?:na|no|com|"
    r"ao|em|fora|atras|debaixo)|"
    # ... a delivery slot: "can he come after 6?", "puede venir después de las 6?"
    r"(?:come|deliver|venir|vir|passare|arrivare|consegnare|entregar)(?: \w+)? (?:after|before|"
    r"depois d[aoe]s?|despues de|dopo le|dopo l|prima delle|antes d[aoe]s?|antes de las)|"
    # ... holding an item: "¿me las podéis apartar hasta el viernes?", "hold one for me"
    r"apartar\w*|reservar(?:me|mela|melo|las|los|lo|la)|mettermel[oa] da parte|tenermel[oa] da parte|"
    r"(?:hold|reserve|keep|save) (?:it|them|one|a pair) for me|separar (?:pra|para) mim|"
    r"(?:quando|cuando|when) (?:volta|voltam|vuelve|vuelven|torna|tornano|rientra|is|are) "
    r"(?:a |o |la |el |il |the )?(?:size )?(?:3\d|4\d|tamanho|talla|taglia|numero)\b|"
    # ... washing and care: "does it shrink at 30?", "¿se puede meter en la secadora?"
    r"secadora|maquina de secar|maquina de lavar|lavadora|lavatrice|asciugatrice|tumble dr\w*|"
    r"dryer|washing machine|hand wash|lavar a mano|lavare a mano|lavar a mao|shrink\w*|"
    r"restring\w*|encog\w*|encolh\w*|"
    # ... jobs, collaborations, the shops and a chosen delivery day
    r"job|jobs|vacanc\w*|hiring|recruit\w*|recrutar|candidatur\w*|curriculum|cv|media kit|"
    r"collaborazion\w*|colaboracion\w*|colaboracao|affiliat\w*|affiliazion\w*|afiliad\w*|"
    r"ofertas de (?:trabajo|empleo)|lavorare con voi|trabajar con vosotros|trabalhar com voces|"
    r"recursos humanos|risorse umane|human resources|"
    r"opening (?:hours|times)|(?:a )?que hora abre|horario de la tienda|orari del negozio|"
    r"horario da loja|negozio fisico|negozi fisici|tiendas? fisicas?|lojas? fisicas?|punto vendita|"
    r"physical (?:store|shops?)|"
    r"(?:siete|sono|estais|estan|estao|are you|is the shop) (?:\w+ )?(?:aperti|abiertos|abertos|"
    r"open)|apre il negozio|a che ora apre|abren los domingos|abrem aos|"
    r"(?:venire|ir|come) a provar\w*|"
    r"try (?:it|them) on in (?:store|person)|parceria|partnership|portfolio|portefolio|"
    r"cassetta dei pacchi|locker|casillero|(?:consegnate|entreguen|entreguem|deliver) dopo|"
    r"tarjeta regalo|gift ?cards?|buono regalo|vale presente|cartao presente|carta regalo|"
    r"mensaje personalizado|messaggio personalizzato|mensagem personalizada|"
    r"personali[sz]ed message|gift message|sin el precio|senza (?:il )?prezzo|sem o preco|"
    r"without the price|quitar el precio|(?:vuelve|vuelven|volta|torna) a entrar|"
    r"showroom|(?:elegir|escoger|scegliere|escolher|choose|pick) (?:la |a |the )?(?:fecha|data|date|"
    r"dia|giorno|day) (?:de |di |of )?(?:entrega|consegna|delivery)|"
    r"tell (?:him|her|the driver|the courier|your driver)|dite al corriere|avvisate il corriere|"
    r"digan al repartidor|decidle al repartidor|avisen al repartidor|diga ao estafeta|"
    r"avisem o estafeta|fala pro entregador|avisa o entregador)\b")
#: "una pregunta", "domanda veloce", "quick question", "tenho uma dúvida": a question
#: announced, not asked yet (folded words, the whole message). The bot asks for it.
PREAMBLE = re.compile(
    r"^(?:(?:hi|hey|hello|ciao|hola|ola|oi|buenas|salve|ok|so|allora|oye|entonces|entao) )*"
    r"(?:(?:a |one |quick |small )?(?:quick )?question|i have a question|got a question|"
    r"(?:una )?domanda(?: veloce| rapida)?|ho una domanda|avrei una domanda|(?:un )?dubbio|"
    r"(?:una )?pregunta(?: rapida)?|tengo una (?:pregunta|duda)|(?:una )?duda|"
    r"(?:uma )?pergunta(?: rapida)?|tenho uma (?:pergunta|duvida)|(?:uma )?duvida)"
    r"(?: (?:please|pls|per favore|por favor|pf|pfv))?$")
#: An apology and little else: "scusate x l'allarme di ieri 😅", "perdón por el lío de ayer
#: jeje", "sorry for the confusion!" (folded; with no problem in the message, see
#: :func:`_small_talk_of`).
_APOLOGY = re.compile(
    r"^(?:(?:ok|oh|ah|ops|oops|opa|eh|uh|ay|ai|ah ok|ok ok)\W+)*(?:so sorry|sorry|scusa|scusate|"
    r"scusami|scusatemi|mi scuso|chiedo scusa|perdon|perdona|perdonad|perdonen|disculpa|"
    r"disculpad|disculpen|desculpa|desculpe|desculpem|foi mal)"
    r"(?:\W+(?:for|about|per|x|por|pelo|pela|pelos|pelas|o|a|pel|del|dell)\b.*|\W*)$")
APOLOGY_WORDS = 10
#: "I ordered a dress by mistake, please cancel it" is a slip with an order, not with the chat.
_PURCHASE = re.compile(r"\b(?:ordered|bought|purchased|ordinato|comprato|acquistato|pedi|compre|"
                       r"comprei|encomendei)\b")
_SERIOUS = re.compile(r"\b(?:orders?|ordine|pedidos?|encomendas?|account|cuenta|conta|"
                      r"abbonamento|subscription|suscripcion|assinatura|payment|pagamento|pago)\b")


_GREET = (r"(?:hello|hi|hey|hiya|hola|holi|ola|oi|oie|ciao|salve|buongiorno|buonasera|buenas|"
          r"buenos dias|buenas tardes|bom dia|boa tarde|boa noite|good morning|please|pls|scusate)")
#: "anyone there?", "c'è qualcuno?", "¿hay alguien?", "tem alguém aí?" and nothing else
#: (folded words): checking that someone answers.
PRESENCE_CHECK = re.compile(
    rf"^(?:{_GREET} )*(?:(?:is )?(?:there )?(?:anyone|anybody|someone|somebody)"
    r"(?: (?:there|here|around|online|home))?|"
    r"(?:c e |ce |c )?qualcuno(?: (?:li|la|online|in linea|c e))?|ci (?:siete|sei)|"
    r"(?:hay |esta )?alguien(?: (?:ahi|por ahi|ahi del otro lado|en linea))?|"
    r"(?:estan|estais|estas) ahi|"
    r"(?:tem |ta |esta |ha )?alguem(?: (?:ai|ae|online|por ai))?|(?:vcs|voces|vc|voce) (?:estao|tao|ta|esta) ai)"
    rf"(?: {_GREET})?$")


def presence_check(text: str) -> bool:
    """Only asks whether anyone is there ("hay alguien?", "ci siete?"). As a conversation's
    first message it is answered with the menu, whose last option is a person: most who open
    so go on with the bot (the engine reads a later one like any other message)."""
    words = words_of(text)
    return len(words) <= 8 and bool(PRESENCE_CHECK.match(" ".join(words)))


def _small_talk_word(word: str) -> bool:
    return any(word in kind for kind in SMALL_TALK_WORDS.values())


def announces_a_question(text: str) -> bool:
    """"una pregunta", "domanda veloce": a question is coming (:data:`PREAMBLE`)."""
    return len(text) <= 60 and bool(PREAMBLE.match(" ".join(words_of(text))))


def _thanks_first(text: str) -> bool:
    """A message that opens with thanks and asks nothing ("thank u sm, fits like a dream")."""
    words = [squash_elongation(w) for w in words_of(text)]
    return (bool(words) and words[0] in SMALL_TALK_WORDS["thanks"] and "?" not in text
            and not _SERIOUS.search(" ".join(words)))


def small_talk_of(text: str) -> str | None:
    """The kind of small talk ``text`` is, if any (:func:`_small_talk_of`); short messages are
    remembered, since the engine and the bot both ask of every message."""
    return _small_talk_cached(text) if len(text) <= 200 else _small_talk_of(text)


@functools.lru_cache(maxsize=4096)
def _small_talk_cached(text: str) -> str | None:
    return _small_talk_of(text)


def _small_talk_of(text: str) -> str | None:
    """``greeting``, ``thanks``, ``goodbye`` or ``acknowledgement`` for a short message made of
    such words ("eae", "grazie mille!!", "vlw", "chau chau", "bom dia", "kkk ok"), for "sorry,
    wrong chat" (goodbye) and for a message the customer takes back ("never mind, cancel that
    question"); else None."""
    folded = fold(text)
    if len(folded) <= 200 and not _SERIOUS.search(folded):
        if MISDIRECTED.search(folded):
            return "goodbye"
        # "bueno da igual, me pasas la receta de la tortilla?": taken back, then a new question.
        if ((SLIP.search(folded) and not _PURCHASE.search(folded))
                or (_TAKE_BACK.search(folded) and "?" not in folded)):
            return "acknowledgement"
        if (_APOLOGY.match(folded.strip()) and len(WORD.findall(folded)) <= APOLOGY_WORDS
                and "?" not in folded and not extract_cues(text).problem):
            return "acknowledgement"
        # "obrigada demais, serviu direitinho" (read as payment_issue), "thank u sm, fits like a
        # dream": thanks first, a few happy words, nothing asked.
        if (_thanks_first(text) and len(WORD.findall(folded)) <= APOLOGY_WORDS
                and extract_cues(text).happy):
            return "thanks"
    words = [squash_elongation(w.lower()) for w in WORD.findall(text)]  # "holaaa" -> "hola"
    if not words or len(words) > 4:
        return None
    if len(words) >= 2 and set(words) == {"ciao"}:  # "ciao" says hello, "ciao ciao" goodbye
        return "goodbye"
    # "haha", "kkkk", "jajaja"; but "hi" and "oi" are greetings, though laughter-shaped.
    laughter = [w for w in words if LAUGHTER.match(w) and not _small_talk_word(w)]
    words = [w for w in words if w not in laughter]
    if not all(w in _SMALL_TALK_FILLER or _small_talk_word(w) for w in words):
        return None
    # "ciao grazie": thanks first, then goodbye, then greeting; "haha ok" is heard.
    kind = next((kind for kind in ("thanks", "goodbye", "greeting", "acknowledgement")
                 if any(w in SMALL_TALK_WORDS[kind] for w in words)), None)
    return kind or ("acknowledgement" if laughter else None)


#: Small talk the intent model says on its own, without a small-talk word in the message, is
#: trusted only this sure: a model trained on real sentences calls "zzzzz" or "boh" a greeting.
SMALL_TALK_CONFIDENCE = 0.8
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_VOWELS = frozenset("aeiouy")


def _mashed(word: str) -> bool:
    """A keyboard mash rather than a word: "jjjjjjj", "asdfghjk", "sjdhfk", "qwerty".
    Laughter ("kkkk", "jajaja", "xD") and vowel-less chat abbreviations ("thx", "cmq",
    "thnx", "tmbn") are words."""
    lower = fold(word)
    if LAUGHTER.match(lower):
        return False
    if len(lower) >= 3 and len(set(lower)) == 1:
        return True
    if len(lower) >= 4 and any(lower in row or lower in row[::-1] for row in _KEYBOARD_ROWS):
        return True
    squashed = squash_elongation(lower)
    return len(squashed) >= 5 and not (set(squashed) & _VOWELS)


def unreadable(text: str) -> bool:
    """Nothing the bot could act on: only punctuation ("???", "..,,,") or only keyboard mashes.
    Such a message is a failed bot reply whatever the intent model guesses for it."""
    if any(ch.isdigit() for ch in text):
        return False
    words = WORD.findall(text)
    if not words:
        return bool(text.strip()) and all(unicodedata.category(ch).startswith("P")
                                          for ch in text if not ch.isspace())
    return all(_mashed(w) for w in words)


def csat_score(text: str, button_id: str | None = None) -> int | None:
    """A 1-5 satisfaction score: the tapped ``csat_N`` row, a digit ("5", "5/5", "4 stelle"),
    a number word in the bot's languages ("cinque", "cinco"), or stars ("★★★★"); else None."""
    if button_id and button_id.startswith("csat_"):
        digits = button_id.removeprefix("csat_")
        return int(digits) if digits in ("1", "2", "3", "4", "5") else None
    stripped = text.strip()
    if stripped and set(stripped) <= {"★", "⭐", " ", "\ufe0f"}:
        stars = stripped.count("★") + stripped.count("⭐")
        return stars if 1 <= stars <= 5 else None
    if len(stripped) > 20:
        return None
    scored = _OUT_OF_FIVE.sub("", stripped)
    match = _SCORE_TEXT.match(scored)
    if match and not re.search(r"\d\D+\d", scored):
        return int(match.group(1))
    words = stripped.lower().replace("!", " ").replace(".", " ").split()
    scores = {_SCORE_WORDS[w] for w in words if w in _SCORE_WORDS}
    return scores.pop() if len(scores) == 1 and len(words) <= 3 else None


def menu_choice(text: str, button_id: str | None = None) -> str | None:
    """The menu option the customer chose: a tapped button, or the option typed in any of the
    bot's languages ("3", "3 please", "opzione 3", "la 3", "tre"); None for anything else."""
    if button_id:
        return button_id
    cleaned = " ".join(_MENU_NOISE.sub(" ", text).split())
    match = _MENU_TEXT.match(cleaned) if len(cleaned) <= 30 else None
    if match is None:
        return None
    option = match.group("option").lower()
    return MENU_DIGITS[_NUMBER_WORDS.get(option, option)]


@dataclass
class Reply:
    """A message to send: plain text, or text with up to three reply buttons (id, title)."""

    text: str
    buttons: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ConversationState:
    """Everything the bot and the policy remember about one conversation (JSON-serialisable)."""

    conversation_id: str
    customer_id: str = ""
    tier: str = "standard"
    language: str = "en"
    language_locked: bool = False
    step: str = "new"  # new | menu | awaiting_order_number | faq | with_agent
    turns: int = 0
    failed_attempts: int = 0
    order_number: str | None = None
    #: Every order number the customer wrote (any message, handoff or not), latest last
    #: (:data:`tierline.nlu.order_numbers.MAX_REMEMBERED` at most): context for agents.
    order_numbers: list[str] = field(default_factory=list)
    recent_intents: list[str] = field(default_factory=list)
    #: Order numbers looked up and not found, or mistyped (the first is asked again, not a
    #: failure).
    orders_not_found: int = 0
    #: The first such number was excused as a typo (not counted as a failed reply yet).
    order_miss_excused: bool = False
    #: The latest intent the model was sure of and that names a topic: a handoff routes by it
    #: ("Opciones" read as check_payment_methods at 0.16 must not send "agente" to billing).
    routing_intent: str | None = None
    #: The same, of a message that reported a problem: what a later outburst about it routes
    #: by ("non mi arriva la mail per la password", then "sito ridicolo!!!" is technical's).
    problem_intent: str | None = None
    #: The latest topics a message named (money, account): what a request for a person with no
    #: topic of its own routes by ("changed my email and can't log in", then "call me back").
    routing_topics: list[str] = field(default_factory=list)
    max_frustration: float = 0.0
    frustrated_turns: int = 0
    escalated: bool = False
    #: Set when the bot asked for a satisfaction score after an agent resolved a ticket.
    csat_ticket_id: int | None = None
    #: The customer was told, once per handoff, that an agent has the conversation.
    told_with_agent: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (what a store persists): a copy, so later turns do not change it.

        Spelled out rather than ``dataclasses.asdict``, whose recursive deep copy was a tenth
        of the webhook's CPU (every stored message builds a new conversation's state). The
        history's entries are not copied: none is changed once written (:meth:`remember`
        appends new ones), and copying twenty of them several times a turn was a tenth of
        ``/v1/decide``'s CPU.
        """
        data = dict(self.__dict__)
        data["recent_intents"] = list(self.recent_intents)
        data["order_numbers"] = list(self.order_numbers)
        data["routing_topics"] = list(self.routing_topics)
        data["history"] = list(self.history)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConversationState:
        """Inverse of :meth:`to_dict`; unknown keys are ignored so old states still load."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def remember(self, role: str, text: str, at: str) -> None:
        """Append a message to the bounded history (the agent sees the full log elsewhere)."""
        self.history.append({"role": role, "text": text[:2000], "at": at})
        del self.history[:-HISTORY_LIMIT]


@dataclass
class BotResponse:
    """What the bot does with one message: replies, and whether it failed to help."""

    replies: list[Reply]
    failed: bool
    #: Earlier replies that count as failed from now on: the first unknown order number was
    #: given the benefit of a typo, and a second one takes it back.
    recounted: int = 0

    @property
    def failures(self) -> int:
        """Failed replies this message adds to the conversation's count."""
        return int(self.failed) + self.recounted


class MenuBot:
    """Menu, order tracking, FAQ, small talk and the fallback; escalation is the policy's job."""

    def __init__(self, flow: BotFlow, orders: OrderLookup, faq: FaqIndex) -> None:
        self.flow = flow
        self.orders = orders
        self.faq = faq
        self.order_numbers = OrderNumbers(flow.orders.number_pattern)

    def menu(self, state: ConversationState, text_key: str = "welcome") -> Reply:
        """The main menu as reply buttons."""
        lang = state.language
        return Reply(self.flow.text(text_key, lang), buttons=[
            (MENU_ORDER, self.flow.text("menu_order_status", lang)),
            (MENU_FAQ, self.flow.text("menu_faq", lang)),
            (MENU_AGENT, self.flow.text("menu_agent", lang)),
        ])

    def find_order_number(self, text: str) -> str | None:
        """The first order number of the flow's format in ``text``, as the format writes it
        ("nd 123456" is ND-123456: :mod:`tierline.nlu.order_numbers`), or None."""
        found = self.order_numbers.first(text)
        return found.number if found else None

    def respond(self, state: ConversationState, text: str, analysis: AnalysisResult,
                button_id: str | None = None) -> BotResponse:
        """Answer one message; mutates ``state.step``/``order_number``, never escalates."""
        lang = state.language
        choice = menu_choice(text, button_id)
        if choice == MENU_ORDER:
            state.step = "awaiting_order_number"
            return BotResponse([Reply(self.flow.text("ask_order_number", lang))], failed=False)
        if choice == MENU_FAQ:
            state.step = "faq"
            return BotResponse([Reply(self.flow.text("faq_prompt", lang))], failed=False)
        if choice == MENU_SHOW:
            state.step = "menu"
            return BotResponse([self.menu(state)], failed=False)

        if BEYOND_THE_BOT.search(" ".join(words_of(text))):
            first = state.step == "new"
            state.step = "menu"
            return BotResponse([self.menu(state, "welcome" if first else "fallback")], failed=True)
        found = self.order_numbers.first(text)
        if found and self._asks_about_the_order(state, text, found, analysis):
            response = self._order_status(state, found.number)
            # "can u gift wrap ND-612930? its a bday present": the status is context, but the
            # question was something else the bot cannot do.
            response.failed = response.failed or self._asks_something_else(text, found, analysis)
            return response
        if found is None and self.order_numbers.mistyped(text):
            # "mira el pedido ND-55", "ops ND-55291": a number mistyped, asked again as an
            # unknown one is (the first has the benefit of a typo).
            return self._order_missed(state, Reply(self.flow.text("invalid_order_number", lang)),
                                      mistyped=True)
        if state.step == "awaiting_order_number" and self._looks_like_an_attempt(text, analysis):
            return BotResponse([Reply(self.flow.text("invalid_order_number", lang))], failed=True)

        if presence_check(text):
            state.step = "menu"
            return BotResponse([self.menu(state)], failed=False)
        if announces_a_question(text):
            state.step = "faq"
            return BotResponse([Reply(self.flow.text("faq_prompt", lang))], failed=False)
        if unreadable(text):
            state.step = "menu"
            return BotResponse([self.menu(state, "fallback")], failed=True)
        intent, confident = analysis.intent, analysis.intent_confidence >= ACT_CONFIDENCE
        small_talk = small_talk_of(text)
        if small_talk and not (confident and intent not in SMALL_TALK_INTENTS + (OUT_OF_SCOPE,)):
            intent, confident = small_talk, True
        elif intent in SMALL_TALK_INTENTS:
            confident = analysis.intent_confidence >= SMALL_TALK_CONFIDENCE
        if intent == "greeting" and confident:
            state.step = "menu"
            return BotResponse([self.menu(state)], failed=False)
        if intent in ("thanks", "acknowledgement") and confident:
            return BotResponse([Reply(self.flow.text("thanks", lang))], failed=False)
        if intent == "goodbye" and confident:
            return BotResponse([Reply(self.flow.text("goodbye", lang))], failed=False)
        if intent == "track_order" and confident:
            if state.order_number:
                return self._order_status(state, state.order_number)
            state.step = "awaiting_order_number"
            return BotResponse([Reply(self.flow.text("ask_order_number", lang))], failed=False)
        match = self.faq.match(analysis, text)
        if match is not None:
            answer = match.entry.answer.get(lang) or match.entry.answer[self.flow.default_language]
            state.step = "menu"
            # The same answer again did not help the first time: "¿y cuándo vuelve a haber
            # stock?" read as delivery_period after the delivery times were given, a second
            # account question answered with the same account help. A failed reply.
            # A follow-up about what the answer names in so many words ("e dá para pagar com
            # PayPal?" after the payment methods, which list PayPal) is answered by it again.
            repeated = (any(line["role"] == "bot" and line["text"] == answer
                            for line in state.history)
                        and not self.faq.names(match.entry, text, also_in=answer))
            return BotResponse([Reply(answer)], failed=repeated)
        if analysis.happy and (praises(text) or _thanks_first(text)):
            # "OMG THE BOOTS ARE AMAZING", "CHEGOU TUDO LINDO 🥰", "thank u sm, fits like a
            # dream": praise and thanks are not a failed reply.
            return BotResponse([Reply(self.flow.text("thanks", lang))], failed=False)
        # Not understood. A first message still gets the welcome menu, but it counts as a
        # failed reply like any other: "do you sell pizza", "weather?", "who won" is three.
        first = state.step == "new"
        state.step = "menu"
        return BotResponse([self.menu(state, "welcome" if first else "fallback")], failed=True)

    def _order_status(self, state: ConversationState, number: str) -> BotResponse:
        lang = state.language
        order = self.orders.find(number)
        if order is None:
            # "Please check the number" asks again, as a form asks again for a mistyped field:
            # the first number the shop's system does not know (a typo, an order not synced
            # yet) is not a failed reply, so a VIP checking an order is not handed over for it;
            # a second one is, and then the first counts too: three numbers the shop cannot
            # find are three failed replies.
            return self._order_missed(state, Reply(self.flow.text(
                "order_not_found", lang, order_number=number)))
        state.order_number = order.number
        state.step = "menu"
        return BotResponse([Reply(self.flow.text(
            "order_status", lang, order_number=order.number,
            status=self.flow.order_status(order.status, lang), carrier=order.carrier,
            eta=order.eta))], failed=False)

    @staticmethod
    def _order_missed(state: ConversationState, reply: Reply, mistyped: bool = False
                      ) -> BotResponse:
        """An order number the shop does not know, or one mistyped: asked for again. The first
        is excused (a typo, an order not synced yet), a mistyped one only where the bot has
        not failed yet ("ND12" after two replies that did not help is a third); a second is a
        failed reply and takes the excused first with it."""
        state.orders_not_found += 1
        state.step = "awaiting_order_number"
        if state.orders_not_found == 1 and not (mistyped and state.failed_attempts):
            state.order_miss_excused = True
            return BotResponse([reply], failed=False)
        recounted, state.order_miss_excused = int(state.order_miss_excused), False
        return BotResponse([reply], failed=True, recounted=recounted)

    def gives_order_number(self, text: str) -> bool:
        """``text`` is an order number with at most a few words around it ("è ND-369246",
        "pedido ND-195028", "sorry, it's ND-400922"): an answer, not a request."""
        found = self.order_numbers.first(text)
        if found is None:
            return False
        rest = text[:found.start] + " " + text[found.end:]
        return len(WORD.findall(rest)) <= GIVEN_NUMBER_WORDS

    @staticmethod
    def _asks_about_the_order(state: ConversationState, text: str, found: FoundNumber,
                              analysis: AnalysisResult) -> bool:
        """An order number is a request for its status unless the message confidently asks
        something else about it (an invoice, a refund, a cancellation): the bare number, an
        answer to "send me your order number", or a tracking question."""
        rest = text[:found.start] + " " + text[found.end:]
        bare = not any(ch.isalpha() for ch in rest)
        other = (analysis.intent not in ("track_order", "delivery_period", OUT_OF_SCOPE)
                 and analysis.intent_confidence >= ACT_CONFIDENCE)
        return bare or state.step == "awaiting_order_number" or not other

    @staticmethod
    def _asks_something_else(text: str, found: FoundNumber, analysis: AnalysisResult) -> bool:
        """A message with an order number, more than a few other words, out of scope for the
        intent model and with no word about where the order is or when it comes."""
        rest = text[:found.start] + " " + text[found.end:]
        return (analysis.intent == OUT_OF_SCOPE and analysis.intent_confidence >= ACT_CONFIDENCE
                and len(WORD.findall(rest)) > GIVEN_NUMBER_WORDS
                and not _STATUS_WORDS.search(" ".join(words_of(rest))))

    @staticmethod
    def _looks_like_an_attempt(text: str, analysis: AnalysisResult) -> bool:
        """While waiting for an order number: a short code-like answer is a (bad) attempt."""
        words = len(text.split())
        return (any(ch.isdigit() for ch in text) and words <= GIVEN_NUMBER_WORDS) or (
            words <= 2 and analysis.intent in ("out_of_scope", "track_order"))
