"""Surface cues of frustration that a lowercasing tokenizer cannot see.

The encoder's WordPiece tokenizer lowercases, so "THIS IS USELESS!!!" and "this is useless!!!"
reach it as the same ids. These cues are computed from the raw text and fed into the exported
model as an extra input beside the token ids (see ``tierline.training.modeling``), where they enter the
frustration logit through non-negative weights: a cue can only raise the score, never lower it.

Every feature is scaled to ``[0, 1]`` so its learned weight is comparable across cues. The same
function runs at training time and at run time, so there is one definition of each cue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from tierline.nlu.text import WORD, fold, squash_elongation

#: Feature order of the ``cues`` model input. Changing it requires retraining.
CUE_NAMES: tuple[str, ...] = (
    "all_caps",
    "exclamations",
    "question_run",
    "elongated_word",
    "negative_words",
    "profanity",
    "repeated_complaint",
)

# Negative cue words in English, Italian, Spanish and Portuguese (accent-insensitive match).
NEGATIVE_WORDS: frozenset[str] = frozenset(
    {
        # English
        "useless", "ridiculous", "worst", "scam", "terrible", "awful", "horrible", "pathetic",
        "clowns", "incompetent", "buffoni", "buffone", "pagliacci", "incompetenti", "payasos",
        "incompetentes", "palhacos",
        "unacceptable", "disgusting", "disgrace", "joke", "incompetent", "furious", "angry",
        "fed", "sick", "annoyed", "annoying", "frustrated", "frustrating", "fraud", "liars",
        "shameful", "rubbish", "garbage", "hopeless", "stupid", "nonsense", "outrageous",
        # Italian
        "inutile", "inutili", "ridicolo", "ridicola", "vergogna", "vergognoso", "schifo",
        "pessimo", "pessima", "truffa", "truffatori", "assurdo", "inaccettabile", "incompetenti",
        "arrabbiato", "arrabbiata", "stufo", "stufa", "ladri", "vergognatevi", "indecente",
        # Spanish
        "inutil", "ridiculo", "ridicula", "verguenza", "pesimo", "pesima", "estafa", "horrible",
        "inaceptable", "harto", "harta", "enfadado", "enojado", "basura", "ladrones", "fatal",
        # Portuguese
        "ridicula", "vergonha", "pessimo", "golpe", "absurdo", "inaceitavel", "lixo", "farto",
        "farta", "irritado", "irritada", "horrivel", "palhacada",
    }
)

PROFANITY: frozenset[str] = frozenset(
    {
        "fuck", "fucking", "fucked", "shit", "shitty", "damn", "crap", "bullshit", "wtf", "hell",
        "cazzo", "merda", "cazzata", "cazzate", "fanculo", "vaffanculo", "stronzi", "porca",
        "mierda", "joder", "puta", "coño", "cono", "carajo", "porra", "caralho", "merda",
    }
)

# Markers that the customer is repeating themselves ("again", "still", "third time").
REPEAT_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        # "will def be ordering again" is loyalty, not a complaint repeated
        r"(?<!order )(?<!ordering )(?<!buy )(?<!buying )(?<!shop )(?<!shopping )(?<!back )"
        r"(?<!here )(?<!you )\bagain\b", r"\bstill\b", r"\b(?:second|third|fourth|fifth|\d+(?:st|nd|rd|th)) time\b",
        r"\balready (?:told|asked|said|wrote|called|sent)\b", r"\bhow many times\b",
        r"\bancora\b", r"\bdi nuovo\b", r"\bper l[' ]?ennesima volta\b", r"\bgia detto\b",
        r"\botra vez\b", r"\btodavia\b", r"\bde nuevo\b", r"\bya (?:dije|lo dije)\b",
        r"\bde novo\b", r"\bainda\b", r"\boutra vez\b", r"\bja disse\b",
    )
)

#: Laughter as typed in en/it/es/pt chats: haha, ahahah, jajaja, jeje, hehe, kkkk, rsrs, lol, xD.
#: Its repeated letters are not an elongated word, and laughter is not frustration. One syllable
#: is a word, not laughter: Italian "ho" (I have), "ha", English "he".
LAUGHTER = re.compile(r"^(?:a?(?:[hj][aeiou]){2,}h?|a?h?a(?:h+a+)+h?|(?:[aeiou][hj]){2,}[aeiou]?|"
                      r"k{3,}|(?:rs){2,}r?|(?:js){2,}j?|"
                      r"l+o+l+|lmf?a+o+|rofl|x+d+|hue(?:hue)+)$", re.IGNORECASE)
#: Thanks, approval, apologies and good news in en/it/es/pt (accent-folded): "GRAZIE MILLE!!!",
#: "obrigadaaa" or "YA ME HA LLEGADO!!! QUÉ RÁPIDO" is happy shouting (a negated arrival is a
#: problem report, which is never happy). A message with these and no problem word gets no caps,
#: exclamation or elongation cue (a cue can only raise frustration).
POSITIVE_WORDS: frozenset[str] = frozenset(
    """thanks thank thx ty tks great perfect awesome amazing love lovely nice cool brilliant
    excellent wonderful yes yay super sorry apologies welcome ok okay best beautiful gorgeous
    fantastic incredible omg loved loving happy bello bella belli belle bonito bonita
    fire lit dope slaps obsessed
    grazie mille perfetto perfetta ottimo ottima bravi bravo bellissimo bellissima bellissimi
    bellissime fantastico fantastica stupendo stupenda stupendi stupende meraviglioso
    meravigliosa gentilissimi gentilissimo scusa scusate scusami si evviva top adoro felice
    gracias genial perfecto perfecta estupendo estupenda maravilloso maravillosa buenisimo
    precioso preciosa preciosos preciosas encanta encantan encantado encantada vale perdon
    disculpa disculpe siento feliz
    obrigado obrigada obg valeu perfeito perfeita otimo otima maravilhoso maravilhosa incrivel
    lindo linda lindos lindas amei adorei desculpa desculpe sim show feliz
    fast quick arrived rapido rapida rapidissimo veloce velocissimo velocissima arrivato
    arrivata arrivati llegado llego rapidinho chegou chegaram
    """.split())
#: Arrival alone is no good news beside a swear word ("che cazzo, il pacco è arrivato aperto").
ARRIVAL_WORDS: frozenset[str] = frozenset(
    "arrived arrivato arrivata arrivati llegado llego chegou chegaram".split())
#: Praise among them (no plain "ok", "si" or apology): a message of praise is not a question the
#: bot failed to answer.
PRAISE_WORDS: frozenset[str] = frozenset(
    """great perfect awesome amazing love loves loved lovely nice brilliant excellent wonderful
    best beautiful gorgeous fantastic incredible super perfetto perfetta ottimo ottima bravi
    bravo bellissimo bellissima bellissimi bellissime fantastico fantastica stupendo stupenda
    stupendi stupende meraviglioso meravigliosa top adoro genial perfecto perfecta estupendo
    estupenda maravilloso maravillosa buenisimo precioso preciosa preciosos preciosas encanta
    encantan perfeito perfeita otimo otima maravilhoso maravilhosa incrivel lindo linda lindos
    lindas amei adorei""".split())
#: Words about a problem: with them, caps and "!!!" stay frustration even beside a thank-you
#: ("THANKS A LOT, STILL NO REFUND!!!").
PROBLEM_WORDS: frozenset[str] = frozenset(
    """where late delay delayed still never missing broken wrong refund charged twice lost
    damaged cancel nothing nobody waiting again scratch scratched scratches dent torn worried
    dove ritardo ancora mai rotto sbagliato rimborso addebitato perso danneggiato annullare
    niente nessuno aspetto aspettando graffio graffiato ammaccato strappato preoccupato fermo
    donde retraso todavia nunca roto equivocado reembolso cobrado perdido cancelar nada nadie
    esperando rayado rayon abollado preocupado
    onde cade atraso ainda nunca quebrado errado reembolso cobrado perdido cancelar nada
    ninguem esperando arranhado riscado amassado preocupado parado
    damaged dented cracked crack ammaccata ammaccati rotta rotti rotte danneggiata danneggiati
    graffiata crepa golpeada golpeado golpeadas danado danada rota rotas rotos grieta rajado
    danificado danificada amassada quebrada rachado rachada rachadura trincado
    risquinho riscadinho arranhadinho graffietto graffiettino rayita rayoncito
    ripped strappata strappati bucato bucata rasgado rasgada rasgados rasgadas furado furada
    descosido descosida descosturado descosturada
    stuck bloccato bloccata bloccati atascado atascada retenido retenida retido retida
    partido partida estragado estragada avariado avariada error errors errore errori erro erros
    stain stained stains macchia macchiato macchiata macchie mancha manchado manchada manchas
    chip chipped scheggiato scheggiata scheggiatura sbeccato sbeccata desportillado desportillada
    lascado lascada lascou
    atrasado atrasada atrasados atrasadas retrasado retrasada retrasados retrasadas
    """.split())
#: "Sorry, wrong chat": a message meant for someone else, not a problem with the shop
#: (folded text).
MISDIRECTED = re.compile(
    r"\b(?:wrong (?:chat|number|person|conversation|group)|(?:chat|numero|conversazione) "
    r"sbagliat[oa]|(?:me )?equivoque de (?:chat|numero|conversacion)|(?:numero|chat) "
    r"equivocado|(?:conversa|numero|chat|lugar|mensagem) errad[oa]|wrong message|"
    r"messaggio sbagliato|mensaje equivocado|(?:was|era) (?:for|per|pa|para|pro|pra) "
    r"(?:my|mia|mio|el|la|mi|o|a|meu|minha|um|uma|un|una|a) (?:group|gruppo|grupo|mum|mom|mamma|"
    r"boss|capo|jefe|chefe|madre|mae|familia|famiglia|colleague|collega|colega|companer[oa]))\b")
#: "Pressed the wrong button", "scritto per sbaglio", "apreté sin querer": a slip of the
#: customer's own, not a problem with the shop (folded text).
SLIP = re.compile(
    r"\b(?:(?:pressed|clicked|tapped|hit) (?:the )?wrong|by mistake|by accident|"
    r"(?:premuto|pigiato|cliccato|schiacciato)(?: \w+){0,2} sbagliato|per sbaglio|"
    r"sin querer|(?:aprete|pulse|toque|clique) (?:mal|otro|el boton equivocado)|"
    r"(?:apertei|cliquei|toquei) errado|sem querer|por engano|por error|por equivocacion|"
    r"sent by mistake|enviad[oa] por (?:engano|error))\b")
#: Something that should have happened did not, in en/it/es/pt (folded text): "the reset
#: email isnt coming", "nn mi arriva la mail", "no me llega el código", "não recebo o email",
#: "tracking hasnt moved". With PROBLEM_WORDS, what makes a message a problem report.
NOT_HAPPENING = re.compile(
    r"\b(?:not|never|isnt|hasnt|havent|doesnt|didnt|wont|cant|(?:isn|hasn|haven|doesn|didn|won|"
    r"can|aren|wasn) t|non|nn|no|nao|nunca|mai)\b"
    r"(?:\s+[^\W\d_]+){0,3}?\s+(?:arriv|coming|come\b|came\b|work|receiv|got\b|get\b|"
    r"moved|moving|move\b|llega|lleg[oa]|recib|funcion|chega|chegou|receb|funzion|mosso|muove|"
    r"movid|mueve|mexeu|mexe\b|"
    r"trov|encuentr|encontr|find|found|va\b|anda\b|vai\b|riesc|consig|pued|acced|log)\w*")
#: "Third time I write", "ho già scritto", "ya les escribí", "já mandei mensagem": the customer
#: has been in touch before about this, and the bot's answer did not end it (folded text).
REPEAT_CONTACT = re.compile(
    r"\b(?:(?:second|third|fourth|fifth|\d+(?:st|nd|rd|th)?) time (?:that )?(?:(?:i|im|i m|i am|ive|i ve|i have|"
    r"i had|i ve been|i have been) )?"
    r"(?:writ|ask|messag|contact|call|text)\w*|(?:writing|messaging|texting) (?:you )?again|"
    r"(?:torno|ritorno) a scriver\w*|vi riscrivo|(?:vuelvo|volvemos) a escribir\w*|"
    r"(?:escrevo|escrevendo|mandando mensagem) (?:de novo|outra vez|novamente)|(?:already|i ve|ive) (?:wrote|written|messaged|"
    r"contacted|emailed|called) (?:you|u|before|twice|\d)|how many times do i (?:have|need)|"
    r"(?:seconda|terza|quarta|quinta|\d+a) volta che (?:vi )?(?:scrivo|chiedo|contatto|chiamo)|"
    r"(?:vi )?ho gia (?:scritto|chiesto|contattato)|"
    r"(?:segunda|tercera|cuarta|quinta|\d+a) vez (?:que|q) (?:os |les |te )?(?:escribo|pregunto|"
    r"contacto|llamo)|ya (?:os |les |te )?(?:escribi|pregunte|contacte|llame)|"
    r"(?:segunda|terceira|quarta|quinta|\d+a) vez (?:que|q) (?:eu )?(?:escrevo|pergunto|"
    r"mando|entro em contato|ligo)|ja (?:escrevi|perguntei|mandei mensagem|entrei em contato))\b")
#: "Tracking says delivered but I never got it": the carrier's record against the customer's,
#: which the bot's order look-up can only repeat (folded text).
DELIVERED_NOT_RECEIVED = re.compile(
    r"\b(?:delivered|consegnat[oa]|entregad[oa]|entregue)\b.*\b(?:not|never|nt|non|nn|no|nao|"
    r"nunca|mai)\b(?: \w+){0,3}? (?:receiv|got|get|arriv|here|ricev|arriv|qui|recib|lleg|aqui|"
    r"receb|cheg)\w*"
    r"|\b(?:not|never|non|nn|no|nao) (?:been |stato |sido |foi )?(?:delivered|consegnat[oa]|"
    r"entregad[oa]|entregue)\b"
    r"|\b(?:delivered|consegnat[oa]|entregad[oa]|entregue)\b.*\b(?:nothing|nada|niente|nulla) "
    r"(?:here|aqui|qui|ca)\b"
    # ... "risulta consegnato ma qui non c'è niente", "says delivered and the only thing on my
    # doorstep is rain"
    r"|\b(?:delivered|consegnat[oa]|entregad[oa]|entregue)\b.*\b(?:here|qui|aqui|ca|aca)"
    r"(?: \w+){0,3}? (?:nothing|nada|niente|nulla|nessun\w*|ningun\w*|nenhum\w*)\b"
    r"|\b(?:delivered|consegnat[oa]|entregad[oa]|entregue)\b.*\b(?:the only thing|all i (?:got|see|"
    r"found)|l unica cosa|lo unico|a unica coisa)\b")
#: A payment dispute or legal threat: "chargeback", "desconocer el cargo", "avvocato",
#: "procon" (folded text).
DISPUTE = re.compile(
    r"\b(?:charge ?back|dispute (?:the |this |my )?(?:charge|payment|transaction)|lawyer|"
    r"small claims|trading standards|consumer protection|report you to|"
    r"contestare (?:l )?addebito|contestazione|storno|avvocat[oi]|denuncia|altroconsumo|"
    r"desconocer (?:el )?cargo|contracargo|abogad[oa]s?|denunciar|consumo|omic|"
    r"contestar (?:a )?cobranca|advogad[oa]|procon|reclame aqui|processar|"
    r"(?:abrir|abro|aprire|apro|open|file) (?:uma |una |a )?(?:contestacao|contestazione|disputa|"
    r"dispute|reclamacion con el banco)|contestacao no cartao)\b")
#: Charged twice, in so many words (folded text).
DOUBLE_CHARGE = re.compile(
    r"\b(?:(?:charged|billed|paid|debited) (?:me )?(?:twice|two times|2 times|2x|double)|"
    r"double (?:charge|charged|payment|billed)|(?:addebitat[oa]|pagat[oa]|addebito|scalat[oa]|"
    r"pagato)(?: \w+){0,3} (?:due|2) volte|doppio (?:addebito|pagamento)|"
    r"(?:cobrad[oa]|cobraron|cobro|pague|pagado|cargad[oa]|cargaron)(?: \w+){0,3} "
    r"(?:dos|2) veces|(?:cobro|cargo|pago) doble|cobraron doble|"
    r"(?:cobrad[oa]|cobraram|paguei|debitad[oa])(?: \w+){0,3} (?:duas|2) vezes|"
    r"cobranca (?:duplicada|dupla|em dobro)|cobraram em dobro|"
    r"(?:charged|addebitat\w*|cobrad[oa]|cobraron|cobraram|debitad[oa])(?: \w+){0,3} 2 ?x)\b")
#: Part of the order missing from the box: "only got 2 of the 3", "nella scatola ne mancava
#: uno", "solo venían 2", "veio faltando um item" (folded text).
MISSING_ITEM = re.compile(
    r"\b(?:only (?:got|received|came|arrived|had)(?: \w+){0,2} (?:of|out of)|"
    r"missing (?:an? |one |\d )?(?:item|piece|part|"
    r"product)|(?:item|piece|part)s? (?:is |are |was |were )?missing|"
    r"(?:ne )?mancava(?:no)?|mancano|manca (?:un|una|il|la|l)|(?:ne )?(?:ho ricevut[oi]|sono arrivat[ie]) "
    r"solo|solo (?:me )?(?:venian?|vino|llegaron|llego|trajo)|falta(?:ba|n)? (?:un|una|el|la|\d)|"
    r"(?:so|apenas) (?:veio|vieram|chegou|chegaram)|veio faltando|falt(?:ou|ava|am) (?:um|uma|o|a|\d))\b")
#: "Fed up", "estoy harta", "sono stufo", "farto de esperar": frustration said outright, which
#: a score reads as mild when the words around it are calm (folded text).
FED_UP = re.compile(
    r"\b(?:fed up|sick (?:and tired )?of|tired of waiting|had enough|sono stuf[oa]|mi sono "
    r"stufat[oa]|ne ho abbastanza|non ne posso piu|(?:estoy|ya estoy|me tiene) hart[oa]|"
    r"hasta las narices|(?:estou|to|ja estou) fart[oa]|de saco cheio|cansad[oa] de esperar|"
    r"are you kidding|(?:you re|youre|you are|u r|ur) kidding|you ve got to be kidding|"
    r"ma fatemi il piacere|ma per favore|ma va a ciapa|"
    r"(?:this|it s|its|it is|what|such|site is|service is) (?:is )?a (?:joke|farce)|"
    r"(?:e|sembra) una (?:barzelletta|presa in giro|farsa)|(?:e|parece) (?:uma )?piada|que piada|"
    r"(?:es|parece) (?:un chiste|una tomadura de pelo|una farsa)|"
    r"stai scherzando|state scherzando|mi (?:prendete|state prendendo) in giro|"
    r"me (?:estais|estan) tomando el pelo|es una broma|(?:ta|esta|e|so pode ser) (?:de )?brincadeira|"
    r"(?:been|sono stat[oa]|siamo stati|he sido|hemos sido|tenho sido|temos sido|fui) (?:very |really "
    r"|so |extremely |molto |davvero |fin troppo |muy |bastante |super |muito |bem )?(?:patient|"
    r"pazient[ie]|pacientes?))\b")
#: "Changed it 3 times", "tried twice", "l'ho provato due volte": the self-service the bot
#: would offer was tried already (folded text; with a problem only).
TRIED_AGAIN = re.compile(
    r"\b(?:tried|reset|changed|done|clicked|requested|provat[oa]|cambiat[oa]|resettat[oa]|"
    r"fatto|richiest[oa]|intentado|probado|cambiado|pedido|tentei|troquei|pedi|fiz)"
    r"(?: \w+){0,3} (?:\d+|two|three|four|several|many|due|tre|quattro|dos|tres|cuatro|"
    r"varias|duas|tres|quatro|varias) (?:times|volte|veces|vezes)\b"
    r"|\b(?:\d+|two|three|four|several|due|tre|dos|tres|duas) (?:times|volte|veces|vezes)"
    r"(?: \w+){0,2} (?:and|e|y) (?:still|nothing|niente|ancora|nada|sigue|continua|nn|non|no|nao)\b")
#: Downplaying: "but whatever", "ma vabbè", "pero bueno", "mas tudo bem": a mild annoyance
#: the customer lets go of (folded text).
DOWNPLAYED = re.compile(
    r"\b(?:but whatever|no big deal|not a big deal|never ?mind that|its fine|it s fine|"
    r"va ?bbe|vabbe|ma va bene|pazienza|poco male|pero bueno|no pasa nada|da igual|bueno da igual|"
    r"mas tudo bem|mas beleza|de boa|sem problema|nao tem problema|tranquilo|"
    # ... or the customer's own slip: "forgot my password AGAIN 🙄", "soy un desastre jajaja"
    r"my bad|my fault|colpa mia|culpa mia|minha culpa|i m (?:so )?(?:hopeless|a mess|a disaster)|"
    r"sono un disastro|soy un desastre|sou um desastre|(?:i )?forgot my password|"
    r"(?:me )?(?:he )?olvidado (?:de )?(?:la|mi) contrasena|mi sono dimenticat[oa] la password|"
    r"esqueci (?:a|minha) senha|ho dimenticato la password)\b")
#: Ironic praise of a failure: "great, 3 weeks for a tshirt 👏👏", "in ritardo. ancora.
#: complimenti davvero", "genial, 20 días para unas calcetas", "nossa que rapidez, só 1 mês pra
#: chegar" (folded text). Praise beside a long wait or a delay, where nothing says it arrived.
IRONY = re.compile(
    r"\b(?:great|amazing|wonderful|brilliant|fantastic|awesome|well done|nice one|thanks a lot|"
    r"thanks for nothing|what a service|great service|complimenti|bravi|bravissimi|ottimo|"
    r"grazie tante|grazie per niente|che efficienza|che velocita|genial|enhorabuena|felicidades|"
    r"que eficiencia|que rapidez|que maravilla|gracias por nada|menudo servicio|parabens|nossa|"
    r"que maravilha|otimo|obrigad[oa] por nada|que servico|fantastic[oa]|what a surprise|"
    r"che sorpresa|que sorpresa|que surpresa|unos cracks|sois unos cracks)\b")
#: Thanks for nothing, whatever else is said: "Gracias por nada 👏👏", "grazie per niente".
THANKS_FOR_NOTHING = re.compile(
    r"\b(?:thanks for nothing|thank you for nothing|grazie per (?:niente|nulla)|gracias por nada|"
    r"obrigad[oa] por nada|valeu por nada)\b")
LONG_WAIT = re.compile(
    r"\b(?:\d+|a|an|one|two|three|four|un|una|uno|due|tre|quattro|dos|tres|cuatro|um|uma|duas|"
    r"tres|quatro) (?:weeks?|months?|settimane|settimana|mesi|mese|semanas?|mes|meses|mes)\b|"
    r"\b(?:[7-9]|[1-9]\d|seven|eight|nine|ten|fifteen|twenty|sette|otto|nove|dieci|quindici|venti|"
    r"siete|ocho|nueve|diez|quince|veinte|sete|oito|dez|quinze|vinte) (?:days|giorni|dias)\b|"
    r"\b(?:another|un altra|altra|otra|outra)(?: \w+)? (?:week|settimana|semana)\b|"
    r"\b(?:since the|since|desde el|desde o|desde a|dal|da) (?:dia |day |giorno )?\d{1,2}"
    r"(?:st|nd|rd|th)?\b|"
    r"\b(?:late|delayed|still waiting|in ritardo|ritardo|ancora niente|retrasad[oa]|retraso|"
    r"sigo esperando|sto ancora aspettando|continuo (?:a )?(?:esperar|aspettare)|"
    r"ainda (?:estou )?esperando|"
    r"atrasad[oa]|atraso|otra vez|de novo|again)\b|"
    r"\b(?:\d+(?:st|nd|rd|th)|second|third|fourth|fifth) day\b|\bdays? (?:running|in a row)\b|"
    r"\b(?:since|da|dal|desde|desde el|desde a) (?:monday|tuesday|wednesday|thursday|friday|"
    r"lunedi|martedi|mercoledi|giovedi|venerdi|lunes|martes|miercoles|jueves|viernes|"
    r"segunda|terca|quarta|quinta|sexta|last week|la settimana scorsa|la semana pasada|"
    r"semana passada)\b|"
    # ... or said by an idiom: "manco a piedi ci mettevo tanto", "I could have walked it
    # faster", "andando llegaba antes", "a pé chegava mais rápido", "a passo di lumaca"
    r"\b(?:manco|nemmeno|neanche|neppure|ni|nem) (?:a piedi|a pie|andando|a pe)\b|"
    r"\ba piedi (?:facevo|faceva|facevamo|arrivav\w*|ci mettev\w*)|"
    r"\b(?:walk(?:ed|ing)?|on foot)(?: \w+){0,5}? (?:faster|quicker|sooner)\b|"
    r"\b(?:faster|quicker) (?:on foot|walking|to walk)\b|"
    r"\b(?:a pie|andando|caminando) (?:llega\w*|habria|iba|lo traia)\b|"
    r"\b(?:a pe|andando) (?:chega\w*|tinha chegado|ia mais rapido|era mais rapido)\b|"
    r"\b(?:a passo di lumaca|snail s pace|snail pace|at a snail|a paso de tortuga|"
    r"a ritmo de tortuga|a passo de tartaruga|a passo de caracol)\b")
ARRIVED = re.compile(
    r"\b(?:arrived|came|got it|received|arrivat[oaie]|ricevut[oaie]|llego|llegaron|recibi|"
    r"chegou|chegaram|recebi)\b")
#: An invoice with a mistake: "my invoice has the wrong company name", "la fattura è intestata
#: male", "la factura salió con el nombre de mi antigua empresa, corregidla", "a fatura veio
#: com o NIF errado" (folded text): only a person can issue it again.
INVOICE_ERROR = re.compile(
    # The amount is wrong: "the amount is wrong, it say 89 euro", "l'importo è sbagliato"
    r"\b(?:amount|total|importo|totale|importe|valor|montante|cifra)(?: \w+){0,2}? "
    r"(?:is |e |es |esta |ta |are )?(?:wrong|incorrect|sbagliat\w*|errat\w*|equivocad\w*|"
    r"incorrect\w*|errad\w*)\b|"
    # ... or says one amount where the customer paid another: "the total say 112 euro and I
    # have paid 89 euro", "il totale dice 80 ma ho pagato 65"
    r"\b(?:total|amount|importo|totale|importe|valor|montante)\b(?: \w+){0,3}? \d+(?: \w+){0,8}? "
    r"(?:paid|pagato|pagado|pague|paguei)(?: \w+){0,2}? \d+\b|"
    # Charged more than the price: "I paid full price, £64 instead of £51.20", "mi avete
    # addebitato 40 invece di 30", "me cobraron el precio completo"
    r"\b(?:(?:paid|charged|pagato|addebitat\w*|pagado|pague|cobrad\w*|cobraron|paguei|"
    r"cobraram)(?: \w+){0,5}? (?:instead of|invece di|en vez de|em vez de|rather than)|"
    r"(?:paid|charged|pagato|addebitat\w*|pagado|pague|cobrad\w*|cobraron|paguei|cobraram) "
    r"(?:me |mi |the |el |il |o )?(?:full price|prezzo pieno|precio completo|precio total|preco cheio|"
    r"preco integral))\b|"
    r"\b(?:invoice|receipt|fattura|ricevuta|factura|recibo|fatura|nota fiscal)\b.*\b(?:wrong|"
    r"rifatt\w*|invece che|mancant\w*|rehacer|refazer|reemitir|reemit\w*|redo|"
    r"incorrect|mistake|error|correct|fix|reissue|sbagliat[oa]|errat[oa]|errore|intestata male|"
    r"corregg\w*|rifare|equivocad[oa]|incorrect[oa]|erro(?:r|neo|nea)|corrij\w*|correg\w*|"
    r"rehac\w*|antigua empresa|errad[oa]|corrig\w*|emitam outra|emitir outra|refazer|"
    r"missing|manca|mancano|falta|faltan?|faltando|tiene mal|tem mal|mal el|mal la|"
    r"old address|indirizzo vecchio|direccion antigua|endereco antigo|morada antiga|"
    r"maior|mayor|higher|piu alto|piu alta|serviva|otra persona|outra pessoa|a nome di|esta mal|"
    r"no aparece|nao aparece|non compare|doesn t show|"
    r"sem o|sem a|sin el|sin mi|without|senza)\b|"
    # ... or a tax number missing or wrong on its own: "DNI mal", "sem o meu NIF"
    r"\b(?:(?:dni|nif|cif|nie|cpf|cnpj|partita iva|p iva|codice fiscale|vat number|tax id)"
    r"(?: \w+){0,4}? (?:mal|errad\w*|equivocad\w*|sbagliat\w*|wrong|incorrect\w*)|"
    r"(?:sem|sin|senza|without) (?:o |el |la |il |mi |my |the |meu )?(?:dni|nif|cif|nie|cpf|cnpj|"
    r"partita iva|p iva|codice fiscale|vat number|tax id))\b|"
    # ... or an order that cost one amount and a statement that shows another: "l'ordine era di
    # 59,90 ma sull'estratto conto vedo 79,90"
    r"\b(?:era|was|costava|cost|costaba|custava) (?:di |de )?\d+(?: \w+){0,8}? (?:estratto conto|"
    r"statement|extracto|extrato|vedo|i see|veo|vejo|addebitat\w*|charged|cobrad\w*)(?: \w+){0,2}? "
    r"\d+\b|"
    # ... or shows another amount than was paid: "a fatura diz 89€ e eu paguei 79€"
    r"\b(?:says|shows|dice|pone|diz|mostra|riporta|segna) (?:\w+ )?\d+(?: \w+){0,6}? (?:i paid|paid|"
    r"ho pagato|pagato|pague|paguei) (?:\w+ )?\d+\b|"
    # ... or refunded a wrong amount: "mi avete rimborsato 39 euro invece di 59"
    r"\b(?:rimborsat\w*|refunded|reembolsad\w*|devolvieron|estornad\w*|devolveram)(?: \w+){0,3}? "
    r"\d+(?: \w+)? (?:invece di|instead of|en vez de|em vez de|rather than|not|e non|y no|e nao)\b|"
    # ... or taken more than the total: "you took £89 but the order total was £71"
    r"\b(?:took|charged|billed|cobraron|cobraram|addebitato|preso|tolto|pagato|paid)(?: \w+){0,3}? "
    r"(?:but|ma|pero|mas) (?:the )?(?:order |item )?(?:total|price|prezzo|totale|precio|preco|"
    r"valor) (?:was|era|is|e|es)\b|"
    # ... or a statement that does not match the order: "nell'estratto conto vedo 89€ ma
    # l'ordine era di 69, c'è un errore"
    r"\b(?:estratto conto|bank statement|statement|extracto|estado de cuenta|extrato)\b.*"
    r"\b(?:wrong|mistake|error|errore|sbagliat[oa]|errat[oa]|equivocad[oa]|erro|errad[oa]|"
    r"more|piu|mas|mais)\b|"
    r"\b(?:wrong|incorrect)\b(?: \w+){0,3} (?:on (?:the|my) )?(?:invoice|receipt)\b")
#: A delivery that is wrong or overdue without a problem word: "the 38 instead of the 39",
#: "lleva una semana sin moverse", "já devia ter chegado" (folded text): a problem report.
WRONG_OR_OVERDUE = re.compile(
    r"\b(?:instead of|invece (?:di|del|della|dello|dei|delle)|en (?:vez|lugar) (?:de|del)|"
    r"em (?:vez|lugar) (?:de|do|da)|sin moverse|sin actualizar|sem (?:se mexer|atualizar|mover)|"
    r"(?:should|was supposed to) (?:have )?(?:arrived|come|been here)|"
    r"doveva (?:arrivare|essere qui)|dovevano arrivare|deberia (?:haber|de haber) llegado|"
    r"tendria que haber llegado|devia (?:ter )?chegado|era (?:pra|para) (?:ter )?chegado|"
    r"\b(?:i ordered|ho ordinato|avevo ordinato|pedi|encomendei)\b.*\b(?:you ve sent|you sent|"
    r"sent me|i got|i received|mi avete mandato|mi avete spedito|mi e arrivat\w*|me habeis enviado|"
    r"me enviasteis|me han enviado|me llego|me mandaram|me enviaram|recebi)\b|"
    r"\b(?:you ve sent|you sent|sent me|mi avete mandato|mi avete spedito|dentro c e|me habeis enviado|"
    r"me han enviado|me mandaram|me enviaram|veio)\b.*\b(?:i ordered|avevo ordinato|ho ordinato|"
    r"yo pedi|pedi|encomendei|eu pedi)\b|"
    r"(?:but|and|ma|e|y|pero|mas) (?:i |io |yo |eu )?(?:ordered|l ho ordinat[oa]|l avevo ordinat[oa]|"
    r"avevo ordinato|la pedi|lo pedi|las pedi|los pedi|pedi|encomendei)|"
    # ... or a status that has not changed for days: "lo vedo in preparazione da 3 giorni",
    # "en preparación desde hace 4 días", "em preparação há 3 dias", "processing for 5 days"
    r"(?:in preparazione|in lavorazione|en preparacion|en proceso|em preparacao|em processamento|"
    r"processing|being prepared|pending) (?:da|desde hace|hace|ha|faz|for|since) "
    r"(?:\d+|due|tre|quattro|cinque|una settimana|dos|tres|cuatro|cinco|una semana|dois|tres|"
    r"quatro|cinco|uma semana|two|three|four|five|a week) ?(?:giorni|dias|days|settimane|semanas|"
    r"weeks)?)\b")
#: What a message is about, for routing (``routing.needs_topic``): money ("charged", "pago",
#: "fattura", "cobraram o frete") and an account ("password", "accedere", "senha") in
#: en/it/es/pt (folded text). Not cues: they neither escalate nor count as frustration.
TOPICS: dict[str, re.Pattern[str]] = {
    # A gift or greeting card is not a payment card: "do you sell gift cards?", "¿hacéis
    # envoltorio con tarjeta personalizada?", "juntar um cartão escrito à mão".
    "money": re.compile(
        r"\b(?:pay|pays|paid|paying|payment\w*|charge|charged|charges|charging|refund\w*|money|"
        r"(?<!gift )(?<!greeting )(?<!birthday )(?<!christmas )(?<!present )(?<!message )(?<!thank you )"
        r"(?<!handwritten )(?<!personali[sz]ed )cards?(?! (?:message|with a message|note))|"
        r"credit|debit\w*|invoices?|receipts?|bill|billed|billing|price|fees?|costs?|"
        r"euros?|dollars?|bank|transfer|paypal|pix|mbway|iban|chargeback|statement|penalty|vat|"
        r"pag(?!ina)[aoi]\w*|pague\w*|addebit\w*|rimbors\w*|soldi|carta di credito|fattur\w*|"
        r"ricevuta|ricevute|prezz\w*|costo|costa|costano|commission\w*|bonifico|scalat\w*|"
        r"estratto conto|cuesta|cuestan|custa|custam|"
        r"saldo|penale|penali|iva|"
        r"cobr\w*|cargo|cargos|cargad\w*|reembols\w*|dinero|plata|"
        r"tarjeta(?! (?:de )?(?:regalo|personalizada|escrita|de felicitacion|dedicada|con (?:un )?"
        r"mensaje))|factur\w*|recibo|"
        r"precio|cuota|comision\w*|transferencia|extracto|penalidad\w*|impuesto|penalties|"
        r"estorn\w*|dinheiro|"
        r"cartao(?! (?:de presente|presente|escrito|personalizado|de felicitacoes|com (?:uma )?"
        r"mensagem|de visita))|fatura|boleto|preco|taxas?|frete|nota fiscal|multas?|imposto|"
        r"juros|dni|nif|cif|partita iva|p iva|codice fiscale|vat number|cpf|cnpj|restituit\w*|"
        r"devolvi|devuelt[oa]|devolvid[oa]|returned|sent back|mandat[oa] indietro|extrato)\b"),
    "account": re.compile(
        r"\b(?:password|passwords|login|log in|logged in|sign in|signin|account|accounts|"
        r"register\w*|registration|sign up|signup|username|user name|otp|2fa|"
        r"accedere|accedo|accesso all account|credenziali|registrazione|registrarmi|acceder|"
        r"logar|"
        r"contrasena|cuenta|inici\w* (?:la )?sesion|registro|registrarme|"
        r"senha|(?:minha|sua|da|na|uma|de) conta|conta (?:bloqueada|suspensa)|cadastr\w*|login)\b"),
}
#: Gift wrapping asked for (folded text): a card named with it is a greeting card.
GIFT_WRAP = re.compile(r"\b(?:gift ?wrap\w*|wrap(?:ped|ping)?|envoltorio|envolver|embrulh\w*|"
                       r"pacchett\w* regalo|confezion\w* regalo|incart\w*|papel de regalo)\b")
_CARD_WORDS = re.compile(r"\b(?:cards?|tarjetas?|cartao|cartoes|cartaozinho|biglietto|carta)\b")
#: A public complaint threatened: "1 star review on trustpilot", "recensione da una stella",
#: "reseñas negativas en google", "avaliação negativa" (folded text).
REVIEW_THREAT = re.compile(
    r"\b(?:(?:1|one|a one|una|uma|un) ?(?:star|stella|estrella|estrela)s?|trustpilot|"
    r"(?:bad|negative|terrible|awful) reviews?|recension[ei] negativ[ei]|recensione da una stella|"
    r"resenas? negativas?|resenas? de una estrella|avaliac\w* negativ\w*|"
    r"(?:review|recensione|resena|avaliacao) (?:everywhere|ovunque|en todos lados|em todo lado))\b")
#: Money asked back: "put the paypal money back", "mi ridate i soldi", "me podéis devolver la
#: transferencia", "dá pra estornar" (folded text); not in a question asked just to know.
MONEY_BACK = re.compile(
    r"\b(?:(?:give|want|need|get|put|send) (?:me |us )?(?:my |the |our |that |paypal |this )*"
    r"money back|refund me|ridate(?:mi)? (?:i |indietro i )?soldi|ridatemi|rimborsatemi|"
    r"restituite(?:mi)? (?:i )?soldi|devolv\w* (?:el |la |mi |me |los |las )*(?:dinero|plata|"
    r"transferencia|pago|importe)|(?:dinheiro|valor) de volta|devolv\w* (?:o |meu |os )*dinheiro|"
    r"estorn\w*|(?<!not )(?<!t )(?:would like|d like|d rather have|rather have|want|need|can i (?:get|have)) "
    r"(?:a |my |the )?refund|(?<!non )(?:vorrei|voglio|preferirei) (?:il |un )?rimborso|"
    r"(?:preferirei|vorrei|voglio) riavere (?:i )?soldi|(?<!no )(?:quiero|quisiera|prefiero) "
    r"(?:un |el |que me hagan el )?reembolso|(?<!nao )(?:quero|queria|gostaria de|prefiro) (?:o |um )?"
    r"reembolso|"
    # ... or money owed back that has not come: "até agora nada do reembolso", "still nothing
    # back on my card", "il rimborso non è ancora arrivato"
    r"(?:nada|niente|nulla|nothing|nenhum|ningun)(?: \w+){0,2}? (?:do |del |de |of the |of my |"
    r"del mio |dal )?(?:reembolso|rimborso|refund|estorno)|nothing back on my (?:card|account)|"
    r"(?:still|yet) no (?:money|refund)|no money back|"
    r"(?:partial refund|rimborso parziale|reembolso parcial)(?: \w+){0,6}? (?:missing|mancano|manca|"
    r"faltan?|falta|is missing|are missing)|"
    r"(?:dinero|dinheiro|soldi|money|refund|rimborso|reembolso)(?: \w+){0,2}? (?:no|non|nn|nao|not|"
    r"still not|hasn t|hasnt) (?:\w+ )?(?:aparece|aparecido|apareceu|arriva|arrivato|llega|"
    r"llegado|chega|chegou|shown up|showed up|show up|come|arrived|visto)|ancora (?:niente|nessun) (?:soldi|rimborso)|"
    r"todavia sin (?:el )?(?:dinero|reembolso)|ainda sem (?:o )?(?:dinheiro|reembolso)|"
    r"(?:refund|rimborso|reembolso|estorno|dinero|dinheiro)(?: \w+){0,2}? (?:sigue sin|continua sem|"
    r"ainda sem|still hasn t|still not) (?:aparecer|llegar|chegar|cair|arrive|arrived|show up|"
    r"shown up|come)|"
    r"(?:refund|rimborso|reembolso|estorno)(?: \w+){0,3}? (?:not|non|nn|no|nao|never|hasn t|hasnt|"
    r"has not|still not|ancora non|todavia no|ainda nao)(?: \w+){0,2}? (?:arrived|arrivato|"
    r"llegado|llego|chegou|caiu|come|came|received|ricevuto|recibido|recebido|visto|vi)|"
    # ... "nn ho ricevuto il rimborso", "no me llega el reembolso", "ainda não recebi o reembolso"
    r"(?:not|non|nn|no|nao|never|haven t|havent|hasn t|hasnt|didn t|didnt|still not|ancora non|"
    r"todavia no|ainda nao)(?: \w+){0,2}? (?:received|got|seen|had|ricevuto|visto|avuto|arrivato|"
    r"recibido|recibi|llega|llegado|llego|visto|recebi|recebido|chegou|caiu|vi)"
    r" (?:the |my |il |el |mi |o |meu |a |minha |any )?(?:refund|rimborso|reembolso|estorno))\b")
#: Settled already: the money came back, the customer sorted it out ("o estorno caiu hoje,
#: valeu", "ya me llegó el reembolso", "cmq ho risolto da sola") (folded text).
SETTLED = re.compile(
    r"\b(?:(?:refund|reembolso|rimborso|estorno|dinero|soldi|dinheiro|money)\w*"
    # ... with no article between: "el dinero, la lámpara llegó rota" is money asked for and
    # a parcel that came, not a refund that came.
    r"(?: (?!not\b|non\b|nn\b|no\b|nao\b|never\b|still\b|ancora\b|ainda\b|todavia\b|"
    r"(?:the|a|an|la|el|il|lo|le|los|las|o|os|as|my|mi|mia|meu|minha)\b)\w+){0,2}? "
    r"(?:arrived|came through|came|arrivat\w*|llego|caiu|chegou|entrou|went through)|"
    # ... "got my refund", but not "nn ho ricevuto il rimborso", "ainda não recebi o reembolso"
    r"(?<!not )(?<!nt )(?<!never )(?<!non ho )(?<!nn ho )(?<!no )(?<!nao )(?<!n )(?<!havent )"
    r"(?<!haven t )(?<!didn t )(?<!didnt )(?<!still not )(?<!yet to have )"
    r"(?:got|received|ricevuto|recibi|recebi) (?:the |my |il |el |mi |o |meu )?(?:refund|rimborso|"
    r"reembolso|estorno)|ya me (?:llego|devolvieron)|(?:ho|abbiamo) risolto|"
    r"(?:already|all) sorted|sorted it|ya (?:esta|lo tengo) resuelto|lo he resuelto|"
    r"(?:volevo|was going to|wanted to|iba a|queria|ia) (?:annullar\w*|cancel\w*)(?: \w+){0,12}? "
    r"(?:arrivat\w*|arrived|arrive|llego|llegar|chegou|chegar|trovat\w*|found|encontre|achei|"
    r"apparso)|"
    r"(?:decided to keep|ho deciso di tener\w*|he decidido quedarme\w*|decidi quedarme\w*|"
    r"resolvi ficar|decidi ficar)|(?:i ll|ill|i will) (?:just )?keep (?:it|them)|"
    r"(?:va be|vabbe|ok|allora|quindi) (?:me )?lo tengo|me (?:lo|la|los|las) quedo|"
    r"(?:vou )?fic(?:o|ar) com (?:ele|ela|eles|elas)|"
    r"ja (?:resolvi|resolveu|esta resolvido)|consegui resolver|"
    # ... or told not to cancel after all: "non annullate niente, era dalla vicina"
    r"(?:don t|dont|do not|no need to|non|nn|no|nao)(?: \w+){0,2} (?:cancel|annull|cancel[ae]|"
    r"cancele)\w*(?: (?:it|anything|nothing|niente|nulla|nada|nao))?"
    r"(?: \w+){0,8}? (?:found|arrived|turned up|came|trovat\w*|arrivat\w*|apparso|"
    r"aparecio|encontre|llego|lo tenia|achei|chegou|apareceu|tava com|estava com))\b")
#: Asked to cancel an order, in so many words: "please cancel it before it ships", "vorrei
#: annullarlo", "cancelen mi pedido", "quero cancelar a encomenda" (folded text; not a
#: subscription or an account, and not when asked only to know or settled already).
CANCEL_REQUEST = re.compile(
    r"\b(?<!non )(?<!nn )(?<!no )(?<!nao )(?<!not )(?<!t )(?:(?:please|pls|plz|can you|could you|(?<!do )i want to|i d like to|id like to|"
    r"(?<!do )i need to|want to|wanna|would like to) cancel(?: it| them| that)?|"
    r"cancel (?:my|the|this|that) (?:order|purchase)|"
    r"(?:can|could|may) i (?:still )?cancel\b(?! (?:an|a) )|"
    r"(?:posso|potrei) (?:ancora )?annullar\w*\b(?! un )|"
    r"(?:puedo|podria) (?:todavia )?cancelar\w*\b(?! un )|"
    r"(?:posso|podia|poderia) (?:ainda )?cancelar\b(?! um )|"
    r"(?:vorrei|voglio|volevo|devo|potete|puoi|per favore|mi potete) annullar\w*|"
    r"annullate(?:mi|lo|la)?(?: l ordine| il mio ordine| tutto)?|"
    r"(?:quiero|quisiera|necesito|podeis|pueden|puedes|por favor|me podeis|me pueden) cancelar\w*|"
    r"cancel(?:adme|enme|adlo|enlo|alo|ame|amelo|arme)|cancela(?:r)? (?:el|mi) pedido|"
    r"(?:quero|queria|gostaria de|preciso|podem|pode|por favor|da pra|tem como) cancelar|"
    r"cancel(?:em|e) (?:o|meu|a|minha) (?:pedido|encomenda|compra))\b"
    r"(?! (?:\w+ ){0,2}(?:newsletter|subscription|iscrizione|abbonamento|suscripcion|assinatura|"
    r"account|cuenta|conta|email|e mail|notifiche|notificaciones|notificacoes))")
#: A negation in the few words before a "settled" phrase: "non ho ancora ricevuto il rimborso",
#: "I still haven't got my refund" (folded text, matched at the end of the words before).
_NEGATED_BEFORE = re.compile(r"\b(?:not|non|nn|no|nao|never|haven t|havent|hasn t|hasnt|didn t|"
                             r"didnt|mai|nunca)(?: \w+){0,2} ?$")
#: "what's the returns window again?": asked to be reminded, not a complaint repeated.
_REMIND_ME = re.compile(r"\b(?:again|di nuovo|de nuevo|de novo)\s*\?+\s*$", re.IGNORECASE)
_REFUND_WORD = re.compile(r"\b(?:refund\w*|rimbors\w*|reembols\w*|estorn\w*)\b")
#: "the partial refund came but the shipping costs are missing": settled only in part.
_BUT_SHORT = re.compile(r"\b(?:but|ma|pero|mas)\b.*\b(?:missing|mancano|manca|falta|faltan|"
                        r"short|less|meno|menos|not all|non tutto|no todo|nao tudo)\b")
#: A question asked only to know: "chiedo solo per sapere", "es solo para saber", "só pra
#: saber", "asking for a friend" (folded text): about refunds or cancelling in general.
HYPOTHETICAL = re.compile(
    r"\b(?:just asking|just wondering|asking for a friend|for my friend|out of curiosity|"
    r"asking in general|general question|pregunto en general|pregunta general|chiedo in generale|"
    r"(?:chiedo |pregunto |pergunto |asking )?(?:prima di (?:comprare|ordinare|acquistare)|"
    r"antes de (?:comprar|pedir|encomendar)|before (?:i )?(?:buy|order|buying|ordering))|"
    r"domanda generale|pergunto em geral|pergunta geral|(?:haven t|havent|have not) (?:ordered|bought) (?:anything )?yet|"
    r"non ho ancora (?:ordinato|comprato)|todavia no he comprado|aun no he comprado|"
    r"ainda nao comprei|ainda nao fiz (?:o )?pedido|"
    r"solo per sapere|chiedo solo|per curiosita|giusto per sapere|es solo para saber|"
    r"solo para saber|solo pregunto|por curiosidad|so pra saber|so para saber|por curiosidade|"
    r"so pergunto|pergunta so|just curious|only curious|(?:e )?so curiosidade|curiosidade (?:msm|"
    r"mesmo)|solo curiosidad|curiosidad nada mas|solo curiosita|pura curiosita|pura curiosidade?|"
    r"mera curiosidade?|just out of curiosity|"
    r"if i (?:wanted|were|was) to|se (?:io )?volessi|si (?:yo )?quisiera|se (?:eu )?quisesse)\b")
#: How returns or refunds work in general, the FAQ's question rather than a case: "can I return
#: something I bought in the sale?", "come funzionano i resi?", "¿se puede devolver algo?",
#: "como funciona a troca?" (only without a problem or an order number: see :func:`extract_cues`).
POLICY_QUESTION = re.compile(
    r"\b(?:how (?:do|does) (?:returns?|refunds?|exchanges?) work|"
    r"(?:what s|whats|what is) (?:your|the) (?:returns?|refund|exchange) policy|"
    r"(?:can|could) (?:i|you|we) (?:return|exchange|send back) (?:something|an item|items|things|"
    r"stuff|sale items|clothes)|do you (?:accept|take|do) (?:returns|exchanges)|"
    r"come funziona(?:no)? (?:il reso|i resi|il rimborso|i rimborsi|il cambio)|"
    r"(?:si puo|si possono|posso) (?:fare (?:il |un )?reso|restituire (?:qualcosa|un articolo|"
    r"gli articoli|la merce))|(?:politica|policy) (?:di reso|dei resi|de devoluci\w+|de devolu\w+|"
    r"de troca\w*)|como funciona(?:n)? (?:las? devoluci\w+|los reembolsos|el reembolso|los cambios|"
    r"a devolu\w+|as devolu\w+|a troca|as trocas|o reembolso)|"
    r"se (?:puede|pueden) (?:devolver|cambiar) (?:algo|un articulo|los articulos|la ropa|cosas)|"
    r"(?:puedo|podria) devolver (?:algo|un articulo|cosas)|(?:posso|da pra|da para) "
    r"(?:devolver|trocar) (?:algo|um item|uma peca|pecas|produtos|coisas))\b")
#: Insults about the bot itself ("sei un bot inutile", "robô burro", "this bot is useless").
BOT_WORDS: frozenset[str] = frozenset(
    "bot bots robot robo chatbot maquina machine automatica automatico automated automatic".split())
INSULTS: frozenset[str] = frozenset(
    """useless stupid dumb idiot idiotic pointless inutile inutili stupido scemo idiota cretino
    inutil tonto estupido burro imbecil lerdo idiota""".split())
#: "Non capisci una mazza", "no entiendes nada", "you don't understand anything" (folded).
NOTHING_UNDERSTOOD = re.compile(
    r"\b(?:(?:you|u) (?:don ?t|do not|dont) (?:understand|get) (?:anything|a thing|shit|nothing)|"
    r"(?:non|nn) capisc[ie] (?:una mazza|niente|nulla|un cazzo)|no (?:entiendes|entendes|"
    r"entiende) (?:nada|un carajo|una mierda)|(?:nao|vc nao|voce nao) entende (?:nada|porra nenhuma)|"
    # ... or does not answer what was asked: "perche nn rispondi", "why wont you answer"
    r"why (?:don t|dont|won t|wont|can t|cant) (?:you|u) (?:just )?(?:answer|reply|respond)|"
    r"perche (?:non|nn) (?:mi )?rispond\w*|por ?que no (?:me )?respond\w*|"
    # ... or the shop is called names: "you're a bunch of clowns", "sois unos payasos"
    r"(?:you re|you are|youre|siete|sois|son|voces sao|vcs sao|voces sao uns|vcs sao uns) "
    r"(?:a bunch of |dei |degli |unos |uns |uma cambada de |such )?(?:clowns|buffoni|pagliacci|"
    r"payasos|palhacos|incompetent\w*|idiots|idioti|idiotas|scammers|truffatori|estafadores|"
    r"ladri|ladrones|ladroes|thieves|a joke|una barzelletta|un chiste|uma piada)|"
    # ... or is called thick: "are you actually thick?", "sei sordo?", "¿eres tonto?"
    r"are (?:you|u) (?:actually |really |just |being )?(?:thick|stupid|dumb|an idiot|deaf|slow)|"
    r"(?:ma )?sei (?:scemo|stupido|sordo|tonto)|eres (?:tonto|idiota|sordo)|"
    r"(?:vc|voce) e (?:burro|surdo|lerdo)|"
    # ... or answers another question: "perguntei uma coisa e vc me respondeu outra"
    r"(?:i asked|perguntei|pregunte|ho chiesto) (?:one thing|something|uma coisa|una cosa)"
    r"(?: \w+){1,3}? (?:answered|replied|respondeu|respondiste|respondio|risposto)"
    r"(?: \w+)? (?:another|something else|outra|otra|un altra)|"
    r"por ?que (?:vc |voce )?nao (?:me )?respond\w*"
    r")\b")
#: Capitalised words that are names, not shouting ("ND-1234", "DHL", "VIP").
_CAPS_NAMES = frozenset("""ND VIP DHL UPS GLS TNT BRT SDA SEUR MRW CTT USPS FEDEX PDF SMS APP URL
    OTP IVA NIF CPF PIX IBAN PAYPAL MBWAY OMG LOL FAQ CEO HTTP WWW""".split())

#: Problem words that also open routine questions ("where is my order?", "dov'è il negozio?").
WHERE_WORDS: frozenset[str] = frozenset("where dove donde onde cade".split())
HAPPY_EMOJI = frozenset("😀😃😄😁😆😊🙂😉😍🥰😘❤💕💖👍🙏👏🎉🥳😂🤣😅☺🤗✨💯")
#: Emoji that praise on their own ("chegou tudo 🥰"); not a polite 🙏, a nervous 😅 or a laugh
#: beside a question the bot cannot answer ("nn capisco se lo fate o no 😅").
PRAISE_EMOJI = frozenset("😍🥰😘❤💕💖👏🎉🥳✨💯🤩😻")
LAUGHING_EMOJI = frozenset("😂🤣😆😹")

_CURRENCY = re.compile(r"[€$£]|\bR\$")
_WORD_OR_NUMBER = re.compile(r"[^\W_]+")
_EXCLAMATION_RUN = re.compile(r"[!¡]{2,}")
_ORDER_DIGITS = re.compile(r"\d{4,}")
_QUESTION_RUN = re.compile(r"[?¿!]*\?[?¿!]*")

#: Only the first this many characters are scanned: cues saturate long before, and a 50k-char
#: message must not cost more than a short one.
MAX_SCAN_CHARS = 4000


@dataclass(frozen=True)
class Cues:
    """The cue vector of one text and the names of the cues that fired (for explanations)."""

    values: np.ndarray  # float32, shape (len(CUE_NAMES),), each in [0, 1]
    fired: tuple[str, ...]
    #: Thanks, approval, laughter or happy emoji and no problem word: loud but not frustrated.
    happy: bool = False
    #: Reports a problem: a problem word ("late", "damaged", "rimborso"), swearing, a repeated
    #: complaint or something that does not happen ("no me llega el código").
    problem: bool = False
    #: What the message is about (:data:`TOPICS`): "money", "account".
    topics: tuple[str, ...] = ()
    #: Asked only to know ("chiedo solo per sapere"): a sensitive topic, not a request.
    hypothetical: bool = False
    #: Settled already ("o estorno caiu hoje, valeu"): nothing left to ask of the shop.
    settled: bool = False


def praises(text: str) -> bool:
    """Praise words or emoji in ``text`` ("OMG THE BOOTS ARE AMAZING", "chegou tudo lindo 🥰")."""
    return (any(ch in PRAISE_EMOJI for ch in text)
            or any(squash_elongation(fold(w)) in PRAISE_WORDS for w in WORD.findall(text)))


def extract_cues(text: str) -> Cues:
    """Compute the surface cues of ``text`` (raw, case preserved)."""
    text = text[:MAX_SCAN_CHARS]
    words, laughing = [], False
    for w in WORD.findall(text):
        if LAUGHTER.match(w):
            laughing = True
        else:
            words.append(w)
    long_words = [w for w in words if len(w) >= 2]
    caps_words = [w for w in long_words if w.isupper()]
    # Shouting needs at least two capitalised words: "OK" or "DHL" alone is not shouting.
    caps = len(caps_words) / len(long_words) if len(caps_words) >= 2 else 0.0

    n_excl = text.count("!") + text.count("¡")
    exclamations = min(n_excl, 4) / 4.0
    question_run = min(max((len(m) for m in _QUESTION_RUN.findall(text)), default=0) - 1, 3) / 3.0
    question_run = max(question_run, 0.0)

    folded = [fold(w) for w in words]
    squashed = [squash_elongation(f) for f in folded]
    # "jjjjjjjkkkkk" (a cat on the phone) squashes to no word: a mash, not an elongated word.
    elongated = [w for w, f, q in zip(words, folded, squashed)
                 if q != f and q not in POSITIVE_WORDS and len(q) >= 2 and set(q) & set("aeiouy")]
    negatives = sorted({w for w in folded if w in NEGATIVE_WORDS})
    swears = sorted({w for w in folded if w in PROFANITY})
    folded_text = " ".join(folded)
    plain_text = " ".join(_WORD_OR_NUMBER.findall(fold(text)))  # numbers kept: "2 volte"
    repeats = sum(1 for p in REPEAT_PATTERNS if p.search(folded_text))
    if repeats and _REMIND_ME.search(text):  # "so what's the returns window again?"
        repeats -= 1
    positive = (laughing or any(q in POSITIVE_WORDS for q in squashed)
                or any(ch in HAPPY_EMOJI for ch in text))
    slip_free = SLIP.sub(" ", MISDIRECTED.sub(" ", folded_text)).split()
    # "oh great, another 'your order is on its way'. really helpful 🙄": praise rolling its eyes
    eye_roll = (bool(IRONY.search(plain_text)) and any(ch in "🙄🙃" for ch in text) and not laughing
                and not any(ch in LAUGHING_EMOJI for ch in text))
    sarcastic = eye_roll or bool(IRONY.search(plain_text) and LONG_WAIT.search(plain_text)
                     and not ARRIVED.search(plain_text)) or bool(
        THANKS_FOR_NOTHING.search(plain_text) and not laughing
        and not any(ch in LAUGHING_EMOJI for ch in text))  # "obrigada por nada viu 😂" jokes
    reported = bool(repeats or sarcastic
                    or NOT_HAPPENING.search(folded_text) or WRONG_OR_OVERDUE.search(plain_text)
                    or any(f in PROBLEM_WORDS and f not in WHERE_WORDS for f in slip_free))
    # "VI ODIO!!! ho speso tutto lo stipendio 😂❤️", "terrible news: it fits perfectly 😭😂":
    # a strong word said laughing, with nothing going wrong, is a joke.
    if negatives and not reported and (laughing or any(ch in LAUGHING_EMOJI for ch in text)):
        negatives = []
    other_problem = bool(negatives or reported)
    # "damn that was quick!!", "porra, chegou rápido demais": swearing with good news and no
    # other problem is emphasis, not anger.
    if swears and not other_problem and (any(q in POSITIVE_WORDS and q not in ARRIVAL_WORDS
                                                 for q in squashed)
                                             or any(ch in LAUGHING_EMOJI for ch in text)):
        swears = []
    problem = bool(other_problem or swears)
    # "GRAZIE, WHERE IS MY ORDER??" is not happy shouting, though "where" alone reports nothing.
    happy = bool(positive and not problem and not any(f in WHERE_WORDS for f in slip_free))
    # "bit annoying it came in 2 boxes but whatever": let go of, unless sworn or shouted about.
    downplayed = bool(DOWNPLAYED.search(folded_text)) and not swears and caps < 0.5
    happy = happy or downplayed
    if happy:  # happy shouting, laughter: loud, not frustrated
        caps, exclamations, elongated = 0.0, 0.0, []

    values = np.array(
        [
            caps,
            exclamations,
            question_run,
            min(len(elongated), 2) / 2.0,
            min(len(negatives), 3) / 3.0,
            min(len(swears), 2) / 2.0,
            min(repeats, 2) / 2.0,
        ],
        dtype=np.float32,
    )
    fired: list[str] = []
    # Shouting about a problem: most words in capitals, or one capitalised word of stress
    # ("CANT LOG IN ... NOTHING", "it is NOT delivered", "ti ho chiesto QUANDO").
    stressed = [w for w in caps_words if w.isalpha() and len(w) >= 3 and w not in _CAPS_NAMES]
    if caps >= 0.5 or (problem and stressed and not happy):
        fired.append("all_caps")
    if exclamations and _EXCLAMATION_RUN.search(text):
        fired.append("exclamation_run")
    if question_run > 0:
        fired.append("question_run")
    if elongated:
        fired.append("elongated_word")
    fired.extend(f"negative_word:{w}" for w in negatives)
    fired.extend(f"profanity:{w}" for w in swears)
    if repeats:
        fired.append("repeated_complaint")
    fired.extend(name for name, pattern in (
        ("repeat_contact", REPEAT_CONTACT), ("delivered_not_received", DELIVERED_NOT_RECEIVED),
        ("dispute", DISPUTE), ("double_charge", DOUBLE_CHARGE), ("missing_item", MISSING_ITEM),
        ("fed_up", FED_UP), ("invoice_error", INVOICE_ERROR), ("review_threat", REVIEW_THREAT))
        if pattern.search(plain_text))
    if "invoice_error" in fired and "missing_item" in fired:  # "manca una cifra" on an invoice
        fired.remove("missing_item")

    if sarcastic:
        fired.append("sarcasm")
    # A general question about returns with no problem or order in it is the FAQ's to answer.
    hypothetical = bool(HYPOTHETICAL.search(plain_text)) or bool(
        POLICY_QUESTION.search(plain_text) and not problem and not _ORDER_DIGITS.search(text))
    settled = any(not _NEGATED_BEFORE.search(plain_text[max(0, m.start() - 30):m.start()])
                  and not _BUT_SHORT.search(plain_text[m.end():])
                  for m in SETTLED.finditer(plain_text))
    if not (hypothetical or settled) and MONEY_BACK.search(plain_text):
        fired.append("money_back")
    if not (hypothetical or settled) and CANCEL_REQUEST.search(plain_text):
        fired.append("cancel_request")
    if "missing_item" in fired and _REFUND_WORD.search(plain_text) and not (hypothetical or settled):
        # "rimborso parziale ma mancano le spese di spedizione": money owed, not a parcel's item
        fired.remove("missing_item")
        if "money_back" not in fired:
            fired.append("money_back")
    if problem and not happy and TRIED_AGAIN.search(plain_text):
        fired.append("tried_again")
    if (any(f in INSULTS or f in NEGATIVE_WORDS for f in folded) and any(f in BOT_WORDS for f in folded)
            or NOTHING_UNDERSTOOD.search(plain_text)):
        fired.append("bot_insult")
    # A card with a gift ("gift wrapping with a little card inside", "embrulho com cartão") is
    # a greeting card, not a payment card.
    money_text = (_CARD_WORDS.sub(" ", plain_text) if GIFT_WRAP.search(plain_text)
                  else plain_text)
    topics = tuple(name for name, pattern in TOPICS.items()
                   if pattern.search(money_text if name == "money" else plain_text)
                   or (name == "money" and _CURRENCY.search(text)))
    return Cues(values=values, fired=tuple(fired), happy=happy, problem=problem, topics=topics,
                hypothetical=hypothetical, settled=settled)


def cue_matrix(texts: list[str]) -> np.ndarray:
    """Stack the cue vectors of ``texts`` into a float32 ``(n, len(CUE_NAMES))`` matrix."""
    if not texts:
        return np.zeros((0, len(CUE_NAMES)), dtype=np.float32)
    return np.stack([extract_cues(t).values for t in texts])
