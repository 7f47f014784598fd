"""Explicit requests for a human, understood by meaning, not by a keyword list alone.

A keyword anywhere fired on "another person can collect the parcel" and missed "¿me pasas con
un asesor?". A message asks for a human when:

- its nearest neighbour among the flow's examples is a request (``explicit_examples``) rather
  than a non-request (``explicit_counterexamples``), both in four languages and embedded with
  the conversation's own bundle, and it is at least ``explicit_similarity`` close: "someone
  who isn't a bot", "alguém de verdade", "qualcuno in carne e ossa". Nearest neighbour, not a
  fixed cosine: e5 puts every English question 0.9 close to every other (measured: "what's
  the weather like in Rome tomorrow?" was 0.95 from a request), MiniLM spreads them;
- or it names a human with one of the flow's ``explicit_keywords`` ("operatore", "asesor",
  "agent") in a short clause ("agent pls", "ok. humano por favor") or in a message whose
  nearest example is a request: "the agent told me it was shipped" names an agent but asks for
  none.

"person", "persona", "pessoa", "someone" are not keywords: "my sister will pick up the parcel"
and "la persona que atendió fue muy amable" talk about people without asking for one. They
count after a verb of talking or passing on ("I need to speak to someone about my invoice",
"me podéis pasar con alguien de facturación", "preciso falar com alguém sobre a nota"), the
request clause that the rest of a long message drowns in an embedding.

A request in one clause of a longer message ("locked out after too many tries, need an actual
person to unlock it pls", "¿hay alguna persona que me pueda atender? es sobre mi factura") is
looked for clause by clause too: the story around a request pulls the whole message's
embedding away from every example. A clause that names someone (:data:`SOMEONE`: "person",
"qualcuno dello staff", "alguna persona", "um técnico"), not someone else's ("era para otra
persona", "my mum"), is embedded on its own, and asks when its nearest example is a request
as close as ``explicit_similarity``.
Embeddings alone do not tell a clause's request from its denial ("no hace falta que me pases
con nadie" sits as close to a request as "hay alguna persona que me pueda atender"), hence the
named someone and the denials below.

A keyword typed with one slip ("humna", "ajente", "atendete"), or two in a long word
("oprtaore"), counts in a clause of one or two words.
"""

from __future__ import annotations

import functools
import re

from rapidfuzz.distance import OSA

from tierline.nlu.analyzer import AnalysisResult, BundleAnalyzer
from tierline.nlu.labels import OUT_OF_SCOPE
from tierline.nlu.similarity import ExampleIndex
from tierline.nlu.text import fold, words_of

#: A keyword counts in a clause of at most this many words without further evidence
#: ("AGENT!!!", "ok. operatore per favore", "... </script> agent please").
SHORT_MESSAGE_WORDS = 4
#: A keyword with a slip counts only in a clause this short ("ajente porfavor", "humna pls"):
#: "the operation was quick" is a real word one slip from "operator".
TYPO_CLAUSE_WORDS = 2
_CLAUSE_BREAK = re.compile(r"[.!?¿¡;,:()<>\[\]{}\"/\n]+")
#: ... or in a longer one whose nearest example is a request at least this close.
KEYWORD_SIMILARITY = 0.5
#: The intent model says out of scope at least this sure (as the FAQ's rule reads it).
OUT_OF_SCOPE_CONFIDENCE = 0.5
#: A clause is embedded on its own when it has at least this many words ("ok", "tipo 40 pezzi"
#: say too little to be near anything for a reason).
CLAUSE_MIN_WORDS = 3
#: Someone who could help, in en/it/es/pt (folded words), beside the flow's keywords.
SOMEONE = re.compile(
    r"\b(?:person|people|someone|somebody|anyone|human|staff|team|technician|specialist|"
    r"salesperson|sales person|manager|qualcuno|persona|persone|staff|tecnico|responsabile|"
    r"amministrazione|commerciale|alguien|equipo|responsable|administracion|comercial|"
    r"pessoa|alguem|equipe|responsavel|gerente)\b")
#: Someone else's person: "era para otra persona", "my other half will call", "la mia vicina".
_SOMEONE_ELSE = re.compile(
    r"\b(?:(?:other|another|altra|altro|otra|otro|outra|outro|stessa|misma|mesma)"
    r"(?: \w+)? (?:person|persona|pessoa|people|persone)|(?:someone|somebody|anyone) else|"
    r"qualcun altro|qualcun altra|alguien mas|alguem mais|"
    # ... or the customer's family, friends or neighbours: "my sister will pick up the parcel",
    # "quem vai receber é minha sogra", "mio marito ha ordinato"
    r"my (?:sister|brother|mum|mom|mother|dad|father|husband|wife|partner|boyfriend|girlfriend|"
    r"son|daughter|neighbour|neighbor|friend|mother in law|father in law|flatmate|roommate|"
    r"grandma|grandmother|grandpa|aunt|uncle|cousin)|"
    r"(?:mia|mio) (?:sorella|fratello|mamma|madre|papa|padre|marito|moglie|compagno|compagna|"
    r"ragazzo|ragazza|figlio|figlia|vicina|vicino|amica|amico|suocera|suocero|cognata|cognato|"
    r"nonna|nonno|zia|zio|cugina|cugino|coinquilina|coinquilino)|"
    r"mi (?:hermana|hermano|mama|madre|papa|padre|marido|esposo|esposa|mujer|pareja|novio|novia|"
    r"hijo|hija|vecina|vecino|amiga|amigo|suegra|suegro|cunada|cunado|abuela|abuelo|tia|tio|"
    r"prima|primo)|"
    r"(?:minha|meu) (?:irma|irmao|mae|pai|marido|esposa|mulher|namorado|namorada|filho|filha|"
    r"vizinha|vizinho|amiga|amigo|sogra|sogro|cunhada|cunhado|avo|tia|tio|prima|primo))\b")


def _out_of_scope(analysis: AnalysisResult) -> bool:
    return analysis.intent == OUT_OF_SCOPE and analysis.intent_confidence >= OUT_OF_SCOPE_CONFIDENCE


#: Talking to, or being passed to, someone: a request for a person in en/it/es/pt (folded).
TALK_TO_SOMEONE = re.compile(
    r"\b(?:(?:speak|talk|chat)(?:ing)? (?:to|with)|put me (?:through|thru) to|pass me to|"
    r"parlare con|parlo con|passare a|passarmi|passami|"
    r"hablar con|pasar con|pasarme con|pasas con|pases con|pasame con|comunicar con|"
    r"falar com|passar pra|passar para|passa pra|passa para|me passa)\s+"
    r"(?:someone|somebody|a person|a real person|an actual person|a human|"
    r"qualcuno|qlc|qlcn|qualcunu|una persona|un umano|alguien|una persona|alguem|uma pessoa|"
    r"uno vero|una vera|un cristiano|nu cristiano|"
    r"uno reale|uno di voi|una di voi|uno de verdad|alguien real|um de verdade|alguem real)\b"
    # ... or anything but a bot: "non un bot", "not a robot", "no una máquina", "não um robô"
    r"|\b(?:not|non|no|nao) (?:a |an |un |uno |una |um |uma )?(?:bot|robot|robo|chatbot|machine|"
    r"macchina|maquina)\b(?! (?:problem|issue|question))"
    # ... or to be called back by one: "can someone call me", "me puede llamar alguien"
    r"|\b(?:(?:mi )?fate chiamare|fatemi chiamare|farmi chiamare|mi fa chiamare|"
    r"que me llame alguien|hacer que me llamen)\b"
    r"|\b(?:con|cu) cui (?:posso|pozzu|pozzo|potrei) (?:parlare|parrari|parla)\b"
    r"|\b(?:no|non) (?:cu|con|com|with) (?:na |una |uma |a )?(?:macchinetta|macchina|maquina|"
    r"machine|robot|robo|bot)\b"
    r"|\b(?:someone|somebody|qualcuno|qlc|qlcn|collega|alguien|alguem|employees?|staff members?|"
    r"member of staff|dipendente|addett[oa]|alguno|empleado|funcionari[oa]|colaborador\w*)\b"
    r"(?:\s+\w+){0,4}?\s+(?:call|ring|phone|richiam|chiam|telefon|llam|ligar|liga)\w*"
    r"|\b(?:call|ring|richiam|chiam|llam|ligar|liga)\w*(?:\s+\w+){0,3}?\s+"
    r"(?:someone|somebody|qualcuno|collega|alguien|alguem)\b"
    # ... or to hear back from one: "could someone from your team get back to me"
    r"|\b(?:someone|somebody|qualcuno|alguien|alguem)\b(?:\s+\w+){0,5}?\s+(?:get back to me|"
    r"contact me|reach out|ricontattarmi|contattarmi|contactarme|contactame|me contacte|"
    r"entrar em contato comigo|me contatar|atender(?:me)?|atienda|atiende|me atenda)\b"
    r"|\b(?:atender(?:me)?|atienda|me atenda)\s+(?:\w+\s+){0,2}?(?:alguien|alguem|un asesor|"
    r"una asesora|un agente|una persona|uma pessoa|um atendente|uma atendente|um agente)\b"
    # ... "mi potete passare qualcuno che mi spiega", "¿podría tratar con una persona de su
    # departamento un asunto...?"
    r"|\bmi (?:potete |puoi |puo |potreste |potresti |potrebbe )?passa(?:re|te|i)? (?:qualcuno|"
    r"qlc|qlcn|una persona|un collega|una collega)\b"
    r"|\btratar(?: \w+){0,3}? con (?:una persona|alguien|un agente|un asesor|una asesora)\b"
    # ... or who to talk to: "who can I speak to about a bulk order?", "con chi posso parlare?",
    # "¿con quién hablo?", "com quem eu falo?"
    r"|\bwho (?:can|could|would|should|do) i (?:speak|talk|write) to\b"
    r"|\bcon chi (?:posso|devo|potrei|dovrei) (?:parlare|sentire)\b"
    r"|\bcon quien (?:puedo hablar|debo hablar|podria hablar|hablo)\b"
    r"|\bcom quem (?:eu )?(?:posso falar|devo falar|poderia falar|falo)\b"
    # ... "posso sentire qualcuno?" (Italian: to hear = to speak with)
    r"|\b(?:posso|vorrei|potrei|fammi|fatemi|volevo) sentire (?:qualcuno|una persona|un operatore)\b"
    # ... or someone who can help: "c'è qualcuno dell'amministrazione che mi può seguire?"
    r"|\b(?:is there|there s|c e|ce|hay|tem|existe) (?:someone|anyone|somebody|qualcuno|alguien|"
    r"alguem|a person|a human|a real person|una persona|un operatore|un umano|un agente|"
    r"un asesor|uma pessoa|um atendente|um humano)(?:\s+\w+){0,4}? (?:who|that|che|que) "
    r"(?:can|could|mi puo|puo|possa|mi possa|potrebbe|me pueda|pueda|puede|possa|pode|possa me|"
    r"pode me) (?:help|look|check|sort|fix|update|aiutar\w*|seguir\w*|aggiornar\w*|"
    r"controllar\w*|sistemar\w*|ayudar\w*|revisar\w*|mirar\w*|arreglar\w*|ajudar|atender|ver|"
    r"verificar|olhar|resolver|atualizar)\b"
    # ... "kindly connect me to a customer care executive"
    r"|\bconnect me (?:to|with) (?:a |an |the |your )?(?:customer (?:care|service|support)|"
    r"support|someone|somebody|executive)\b"
    # ... or someone to do what the bot cannot: "can someone from your team fix the address?",
    # "è possibile che qualcuno dello staff lo cambi a mano?", "¿alguien puede revisarlo?"
    r"|\b(?:can|could) (?:someone|somebody|anyone)(?! else)(?:\s+\w+){0,3}? (?:change|fix|check|"
    r"look|sort|update|correct|edit|help)\b"
    r"|\b(?:qualcuno|alguien|alguem)(?! altro| mas| mais| otra| outra)(?:\s+\w+){0,3}? "
    r"(?:(?:mi |me |lo |la |o |a )?(?:puo|potrebbe|puede|podria|pode|poderia) (?:me |lo |la |o |a )?"
    r"(?:cambiar\w*|sistemar\w*|controllar\w*|guardar\w*|modificar\w*|corregger\w*|aiutar\w*|"
    r"revisar\w*|mirar\w*|ayudar\w*|arreglar\w*|corregir\w*|verificar\w*|trocar|mudar|ver|"
    r"olhar|ajudar|resolver|corrigir|alterar)|(?:mi |me |lo |la |o |a )?(?:cambi|sistemi|"
    r"controlli|guardi|modifichi|corregga|aiuti|cambie|revise|mire|ayude|arregle|corrija|"
    r"modifique|troque|mude|verifique|veja|ajude|altere|resolva))\b"
    # ... or one to look into it: "would it be possible to have a colleague of yours look into it"
    r"|\b(?:have|get) (?:a |an |one of your )?(?:colleague|member of staff|staff member|person|human|"
    r"someone)(?: of yours)? (?:look|check|call|contact|handle|sort|deal)\b"
    # ... or it needs one: "this needs a human honestly"
    r"|\b(?:needs|need|requires) (?:a |an )?(?:human|real person|actual person|person to look)\b"
    # ... or to be called by the shop: "can you call me?", "mi potete chiamare?", "¿me podéis
    # llamar?", "vcs podem me ligar?" (a bot cannot phone anyone)
    r"|\b(?:(?:can|could|would) (?:you|u|one of you) (?:please |pls )?(?:call|ring|phone) me|"
    r"(?:mi|me) (?:potete|puoi|puo|potreste|potrebbe) (?:chiamare|richiamare|telefonare)|"
    r"(?<!non )(?<!nn )(?:chiamatemi|richiamatemi)|"
    r"me (?:podeis|puedes|puede|pueden|podrian|podriais|podria) (?:llamar|telefonear)|"
    r"(?:podeis|puedes|puede|pueden|podrian|podriais|podria) llamarme|(?<!no )(?:llamadme|llamame)|"
    r"(?:pode|podem|poderiam|podia|podiam|da pra|da para) (?:me (?:ligar|telefonar)|ligar me)|"
    r"(?<!nao )(?<!n )(?:me liguem|me ligue))\b"
    # ... or a real one: "is there anyone real", "with a real person", "un humano de verdad"
    r"|\b(?:anyone|someone|somebody|alguien|alguem|qualcuno|una persona|uma pessoa|a person) "
    r"(?:real|de verdad|de verdade|vero|vera|in carne e ossa|de carne y hueso|de carne e osso|"
    r"of flesh and blood|in the flesh)\b"
    r"|\b(?:in carne e ossa|de carne y hueso|de carne e osso|flesh and blood)\b"
    r"|\b(?:with|to|con|com|a) (?:a |an |una |uma |un )?(?:real|actual) (?:person|human)\b"
    # ... or a number to call one: "tem algum telefone que eu possa ligar?"
    r"|\b(?:phone|telefone|telefono|numero de telefone|numero di telefono)\b(?:\s+\w+){0,5}?\s+"
    r"(?:call|ligar|llamar|chiamare)\b"
    # ... or to phone the shop: "can I call you?", "tem como eu ligar pra vcs?", "prefiro
    # resolver por telefone", "posso chiamarvi?"
    r"|\b(?:(?:can|could|may) i (?:call|ring|phone) (?:you|u|someone|somebody|the shop)|"
    r"(?:posso|potrei) (?:chiamarvi|telefonarvi|chiamare qualcuno)|"
    r"(?:puedo|podria) (?:llamaros|llamarles|llamarlos|llamar a alguien)|"
    r"ligar (?:pra|para) (?:vcs|voces|vc|voce|a loja|alguem))\b"
    r"|\b(?:resolve|solve|sort|discuss|talk|speak|risolvere|sistemare|parlarne|resolver|hablar|"
    r"hablarlo|falar|conversar)(?:\s+\w+){0,3}? (?:by|over the|on the|per|al|por|pelo|via) "
    r"(?:phone|telephone|telefono|telefone)\b"
    # ... or would rather deal with one: "I'd rather deal with a person on this one"
    r"|\b(?:rather|prefer|preferably|preferirei|preferisco|prefiero|preferiria|prefiro)"
    r"(?: \w+){0,3}? (?:with|con|com) (?:a |an |una |uma |un |um |one of your |uno dei vostri |"
    r"uno de sus |uno de vuestros |um dos vossos |um de voces |a member of )?(?:real )?(?:person|"
    r"human|persona|pessoa|umano|humano|human being|essere umano|ser humano|staff|team|"
    r"people|personale|equipo|equipe)\b"
    r"|\brather than (?:a |the |your )?(?:machine|bot|robot|chatbot)\b"
    # ... or whether one is free: "c'è un collega disponibile?", "is anyone available?"
    r"|\b(?:is there|is|are|c e|ce|hay|esta|tem|existe|alguem|alguien|qualcuno) (?:a |an |un |una |"
    r"um |uma )?(?:colleague|collega|companero|colega|someone|anyone|anybody|qualcuno|alguien|"
    r"alguem|person|persona|pessoa|human|umano|humano|operatore|agent|agente|atendente|asesor)"
    r"(?: \w+)? (?:available|disponibile|disponible|disponivel|free right now|libero|libre|livre)\b"
    # ... or whether a person reads at all: "is there an actual person reading these?"
    r"|\b(?:actual|real) (?:person|human|people|humans) (?:reading|read|reads|here|there|"
    r"answering|behind)\b"
    r"|\b(?:qualcuno|una persona|alguien|una persona|alguem|uma pessoa) (?:di vero |de verdad |"
    r"de verdade |real |vera |vero )?(?:che legge|leyendo|que lea|que lee|lendo|que leia|que le)\b"
    r"|\b(?:customer (?:care|service)|assistenza|atencion al cliente|atendimento) (?:vero|real|"
    r"de verdad|de verdade|umano|humano|humana)\b"
    r"|\b(?:member of (?:staff|your team)|(?:someone|somebody|sombody|somone) (?:from|in|at) "
    r"(?:your |the )?(?:team|staff|customer serv\w*|support|billing))\b")


#: Passing on to, or talking with, one of the flow's human words, a few words apart: "mi passate
#: un operatore per favore", "quisiera hablar con un agente", "me podem passar a um operador"
#: (folded; ``{keywords}`` is filled with the flow's keywords). The request clause of a long
#: message that tells a whole story first.
_PASS_TO = (r"\b(?:passate(?:mi)?|passami|passarmi|passare|passi|pasar(?:me)?|pasame|pasen(?:me)?|"
            r"pases|pasas|hablar|falar|passar|passem|passa|speak|talk|chat|transfer me|parla|"
            r"put me through|connect me|parlare|comunicar(?:me)?)"
            r"(?: \w+){{0,3}}? (?:{keywords})\b")
#: Wanting, needing or asking whether there is one of the flow's human words, a few words
#: apart: "c'è un operatore che può aggiornarmi i dati?", "necesito un asesor ya", "is there an
#: agent available", "queria um atendente pra resolver isso" (folded; ``{keywords}`` filled).
_WANTS_ONE = (r"\b(?:want|wanna|need|needs|would like|d like|can i (?:get|have)|is there|are there|"
              r"any|voglio|vorrei|volevo|mi serve|serve|ho bisogno di|c e|ci sono|"
              r"quiero|quisiera|necesito|me hace falta|hay|quero|queria|gostaria de|preciso de|"
              r"preciso|tem algum|tem um|tem uma)(?: \w+){{0,2}}? (?:{keywords})\b")
#: A human named only to say none is needed, or to tell of one spoken to before: "não precisa
#: de atendente não", "no need for an agent", "ayer hablé con una asesora y me solucionó todo",
#: "ho parlato con un operatore ieri" (folded).
_NOT_ASKING = (# ... the customer's own job: "I'm a travel agent", "soy agente inmobiliario"
               r"\b(?:i m|im|i am|sono|soy|sou|work as|lavoro come|trabajo de|trabajo como|"
               r"trabalho como) (?:a |an |un |una |um |uma )?(?:\w+ )?(?:{keywords})\b|"
               r"\b(?:travel|estate|real estate|insurance|immobiliare|inmobiliario|de viajes|"
               r"de viagens|di viaggio|de seguros) (?:{keywords})|(?:{keywords}) (?:immobiliare|"
               r"inmobiliario|de viajes|de viagens|di viaggio|de seguros|imobiliario)\b|"
               # ... or greeted: "say hi to the whole team from me!", "saluti a tutto il team"
               r"\b(?:say hi|say hello|greetings|regards|love|thanks|thank you|grazie|gracias|"
               r"obrigad[oa]|saluti|un saluto|saludos|beijos|abracos|cumprimentos)(?: \w+){{0,3}}? "
               r"(?:team|staff|equipo|equipe|squadra|ragazzi|chicos|pessoal)\b|"
               r"\b(?:no need|dont need|don t need|do not need|dont want|don t want|"
               r"(?:non|nn) (?:mi )?serve|non ho bisogno|non voglio|no necesito|no hace falta|no quiero|"
               r"nao precis[ao]|nao quero|sem necessidade|"
               r"spoke|talked|already spoke|ho parlato|ho sentito|abbiamo parlato|hable|hablamos|"
               r"me atendio|falei|falamos|conversei|me atendeu|nn ho bisogno|non c e bisogno|"
               r"nn c e bisogno|n precisa|no hace falta|no me hace falta|nao precisa)"
               r"(?: \w+){{0,4}}? (?:{keywords}|nadie|nessuno|ninguem|nobody|anyone|alguien|"
               r"qualcuno|alguem|colleague|collega|colleghi|colega|colegas|companer[ao])\b"
               # ... or one who helped already: "un vostro operatore mi ha aiutato tantissimo"
               r"|\b(?:{keywords}|persona|pessoa|person)(?: \w+){{0,3}}? (?:helped|"
               r"(?:mi|me|ci) (?:ha|hanno) (?:aiutat\w*|rispost\w*|risolt\w*)|"
               r"me (?:ayudo|ayudaron|atendio|ajudou|ajudaram|atendeu))\b")


def _typo_of(word: str, keyword: str) -> bool:
    """``word`` is ``keyword`` with one slip (two in words of eight letters or more)."""
    if len(keyword) < 5 or abs(len(word) - len(keyword)) > 1 or word[0] != keyword[0]:
        return False
    return OSA.distance(word, keyword) <= (2 if len(keyword) >= 8 else 1)


def names_a_human(text: str, keywords: list[str], typos: bool = False) -> bool:
    """True when the message names a human ('agent', 'operatore', ...) as a whole word, or
    with ``typos`` a slip of one ("ajente")."""
    words = set(words_of(text))
    folded = [fold(k) for k in keywords]
    if any(k in words for k in folded):
        return True
    return typos and any(_typo_of(w, k) for w in words for k in folded)


class HumanRequests:
    """The flow's example requests embedded with one bundle, and its keywords."""

    def __init__(self, examples: list[str], counterexamples: list[str], keywords: list[str],
                 analyzer: BundleAnalyzer, min_similarity: float) -> None:
        self.keywords = list(keywords)
        alternatives = "|".join(re.escape(fold(k)) for k in self.keywords) or "(?!)"
        self._pass_to = re.compile(_PASS_TO.format(keywords=alternatives))
        self._wants_one = re.compile(_WANTS_ONE.format(keywords=alternatives))
        self._not_asking = re.compile(_NOT_ASKING.format(keywords=alternatives))
        self.min_similarity = min_similarity
        self._requests = len(examples)
        self._analyzer = analyzer
        self._examples = ExampleIndex(list(examples) + list(counterexamples), analyzer)
        # Example requests this bundle's own intent model reads as out of scope: a message it
        # also reads so lies near them whatever it says ("¿quién canta esta canción?" is 0.92
        # from "is there a real person I can talk to" on the multilingual encoder).
        self._out_of_scope = [_out_of_scope(a) for a in
                              (analyzer.analyze(list(examples)) if examples else [])]
        #: Short messages' answers remembered (the same "hi", "3", "ok" come again and again).
        self._worded_cached = functools.lru_cache(maxsize=4096)(self._worded)

    def nearest(self, analysis: AnalysisResult) -> tuple[bool, float]:
        """Whether the nearest example is a request, and its cosine similarity."""
        nearest = self._examples.nearest(analysis)
        if nearest is None:
            return False, 0.0
        index, similarity = nearest
        if index >= self._requests or (self._out_of_scope[index] and _out_of_scope(analysis)):
            return False, similarity
        return True, similarity

    def asks(self, text: str, analysis: AnalysisResult) -> bool:
        """Whether ``text`` (analysed as ``analysis``) asks for a human."""
        folded = " ".join(words_of(text))
        declines = bool(self._not_asking.search(folded))
        if declines:
            return False
        if self._pass_to.search(folded):
            return True
        # "c'è un operatore che può...": wanting one, unless someone else's or a question about
        # what one did ("did an agent see my message?" names none to come).
        if self._wants_one.search(folded) and not _SOMEONE_ELSE.search(folded):
            return True
        # "outra pessoa pode buscar a encomenda?" reads close to a request; the person named
        # is someone else, so only words that ask (``_worded``) can make it one.
        someone_else = bool(_SOMEONE_ELSE.search(folded))
        is_request, similarity = self.nearest(analysis)
        if is_request and not someone_else:
            if similarity >= self.min_similarity:
                return True
            if similarity >= KEYWORD_SIMILARITY and names_a_human(text, self.keywords):
                return True
        if self._worded_cached(text) if len(text) <= 200 else self._worded(text):
            return True
        return not someone_else and self._clause_asks(text)

    def _clause_asks(self, text: str) -> bool:
        """A clause that names someone (:data:`SOMEONE`), not someone else's, and neither
        declines nor tells of one before, whose own embedding's nearest example is a request
        at least ``min_similarity`` close ("es una persona de total confianza" is 0.71 from
        one, "hay alguna persona que me pueda atender" 0.96)."""
        clauses = []
        for clause in _CLAUSE_BREAK.split(text[:1000]):
            folded = " ".join(words_of(clause))
            if (len(folded.split()) >= CLAUSE_MIN_WORDS
                    and (SOMEONE.search(folded) or names_a_human(clause, self.keywords))
                    and not _SOMEONE_ELSE.search(folded) and not self._not_asking.search(folded)):
                clauses.append(clause)
        for vector in self._analyzer.embed(clauses[:8]) if clauses else ():
            nearest = self._examples.nearest_to(vector)
            if nearest and nearest[0] < self._requests and nearest[1] >= self.min_similarity:
                return True
        return False

    @staticmethod
    def names_someone_else(text: str) -> bool:
        """Names another person than the customer ("someone else", "outra pessoa", "my
        sister", "minha sogra")."""
        return bool(_SOMEONE_ELSE.search(" ".join(words_of(text))))

    def declines(self, text: str) -> bool:
        """Names a human only to say none is needed, or to tell of one spoken to before
        ("não precisa de atendente", "ieri ho parlato con un operatore ed è tutto a posto")."""
        return bool(self._not_asking.search(" ".join(words_of(text))))

    def _worded(self, text: str) -> bool:
        """Asks in so many words, whatever the encoder says: "talk to someone", or a short
        clause naming a human ("humna pls", "operatore!!")."""
        if TALK_TO_SOMEONE.search(" ".join(words_of(text))):
            return True
        return any(len(words_of(c)) <= SHORT_MESSAGE_WORDS
                   and names_a_human(c, self.keywords, typos=len(words_of(c)) <= TYPO_CLAUSE_WORDS)
                   for c in _CLAUSE_BREAK.split(text))
