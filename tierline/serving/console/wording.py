"""The console's words for what the models say: reason sentences, intent names, cue and tier
names, in English, Italian, Spanish and Portuguese.

A decision's reasons are stable codes with parameters (:mod:`tierline.nlu.reasons`); here
each code has a sentence per language, and each parameter that is a model's label (an intent,
a cue, a tier, a policy feature) a display name, so an Italian agent reads "Argomento
delicato: eliminare l'account." where the API says ``sensitive topic: delete_account``. One
table per language with the same keys (a test holds them equal, and holds every reason code,
intent and feature named), like the console's other strings (:mod:`.i18n`).

Words the customer typed (a swear word, a negative word) are shown as they were written;
templates escape everything returned here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tierline.nlu.reasons import Reason

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "reason.asked_for_human": "The customer asked for a human agent.",
        "reason.failed_replies.one": "The bot failed to help once.",
        "reason.failed_replies": "The bot failed to help {count} times.",
        "reason.frustrated": "The customer is frustrated (score {score}).",
        "reason.frustrated.cues": "The customer is frustrated (score {score}): {cues}.",
        "reason.frustrated_earlier": "The customer was frustrated earlier in the conversation "
                                     "(score {score}).",
        "reason.sensitive_topic": "Sensitive topic: {intent}.",
        "reason.vip": "VIP customer.",
        "reason.premium": "Premium customer.",
        "reason.repeated_request": "The customer asked for this again: {intent}.",
        "reason.long_conversation": "Long conversation ({messages} messages).",
        "reason.shouting": "The customer is shouting (all caps).",
        "reason.swearing": "The customer is swearing (“{word}”).",
        "reason.problem_report": "A {tier} customer reports a problem.",
        "reason.repeat_contact": "The customer has written about this before.",
        "reason.delivered_not_received": "The order shows delivered, but the customer did not receive it.",
        "reason.dispute": "The customer threatens a chargeback or legal action.",
        "reason.double_charge": "The customer reports a double charge.",
        "reason.bot_insult": "The customer is insulting the bot.",
        "reason.missing_item": "Part of the order is missing.",
        "reason.fed_up": "The customer says they are fed up.",
        "reason.tried_again": "The customer already tried several times.",
        "reason.sarcasm": "The customer is being sarcastic about a delay.",
        "reason.invoice_error": "The customer reports a mistake on an invoice.",
        "reason.review_threat": "The customer threatens a bad review.",
        "reason.money_back": "The customer asks for their money back.",
        "reason.cancel_request": "The customer asks to cancel an order.",
        "cue.repeat_contact": "written about this before",
        "cue.delivered_not_received": "delivered but not received",
        "cue.dispute": "a chargeback or legal threat",
        "cue.double_charge": "a double charge",
        "cue.bot_insult": "insults at the bot",
        "cue.missing_item": "part of the order missing",
        "cue.fed_up": "“fed up”",
        "cue.tried_again": "tried several times",
        "cue.sarcasm": "sarcasm about a delay",
        "cue.invoice_error": "mistake on an invoice",
        "cue.review_threat": "bad review threatened",
        "cue.money_back": "money asked back",
        "cue.cancel_request": "asks to cancel an order",
        "reason.score": "Escalation score {p}, at or above the {tier} threshold of {threshold} "
                        "(mostly {features}).",
        "reason.with_agent": "The conversation is already with an agent.",
        "reason.csat_recorded": "Satisfaction score {score} recorded.",
        "and": "and",
        "cue.all_caps": "all caps",
        "cue.exclamation_run": "a run of exclamation marks",
        "cue.question_run": "a run of question marks",
        "cue.elongated_word": "stretched words",
        "cue.repeated_complaint": "a repeated complaint",
        "tier.standard": "standard",
        "tier.premium": "premium",
        "tier.vip": "VIP",
        "intent.cancel_order": "Cancel an order",
        "intent.change_order": "Change an order",
        "intent.change_shipping_address": "Change the shipping address",
        "intent.check_cancellation_fee": "Cancellation fee",
        "intent.check_invoice": "Check an invoice",
        "intent.check_payment_methods": "Payment methods",
        "intent.check_refund_policy": "Refund policy",
        "intent.complaint": "Complaint",
        "intent.contact_customer_service": "Contact customer service",
        "intent.contact_human_agent": "Talk to a person",
        "intent.create_account": "Create an account",
        "intent.delete_account": "Delete the account",
        "intent.delivery_options": "Delivery options",
        "intent.delivery_period": "Delivery time",
        "intent.edit_account": "Edit the account",
        "intent.get_invoice": "Get an invoice",
        "intent.get_refund": "Get a refund",
        "intent.newsletter_subscription": "Newsletter subscription",
        "intent.payment_issue": "Payment problem",
        "intent.place_order": "Place an order",
        "intent.recover_password": "Recover the password",
        "intent.registration_problems": "Registration problems",
        "intent.review": "Leave a review",
        "intent.set_up_shipping_address": "Set up a shipping address",
        "intent.switch_account": "Switch account",
        "intent.track_order": "Track an order",
        "intent.track_refund": "Track a refund",
        "intent.greeting": "Greeting",
        "intent.goodbye": "Goodbye",
        "intent.thanks": "Thanks",
        "intent.out_of_scope": "Out of scope",
        "feature.frustration": "frustration",
        "feature.max_frustration": "the highest frustration so far",
        "feature.frustrated_turns": "frustrated messages",
        "feature.failed_attempts": "failed bot replies",
        "feature.explicit_request": "a request for a human",
        "feature.p_contact_human": "wanting to talk to a person",
        "feature.p_sensitive_billing": "a sensitive billing topic",
        "feature.p_sensitive_other": "another sensitive topic",
        "feature.p_complaint": "a complaint",
        "feature.premium": "the premium tier",
        "feature.vip": "the VIP tier",
        "feature.repeated_intent": "a repeated request",
        "feature.turns": "the conversation's length",
        "feature.cue_count": "signs of frustration",
        "feature.vip_x_frustration": "a frustrated VIP",
        "feature.vip_x_sensitive": "a VIP with a sensitive topic",
        "feature.p_out_of_scope": "an out-of-scope message",
        "feature.p_small_talk": "small talk",
        "feature.intent_confidence": "the intent's confidence",
    },
    "it": {
        "reason.asked_for_human": "Il cliente ha chiesto di parlare con un operatore.",
        "reason.failed_replies.one": "Il bot non è riuscito ad aiutare una volta.",
        "reason.failed_replies": "Il bot non è riuscito ad aiutare {count} volte.",
        "reason.frustrated": "Il cliente è frustrato (punteggio {score}).",
        "reason.frustrated.cues": "Il cliente è frustrato (punteggio {score}): {cues}.",
        "reason.frustrated_earlier": "Il cliente era già frustrato prima nella conversazione "
                                     "(punteggio {score}).",
        "reason.sensitive_topic": "Argomento delicato: {intent}.",
        "reason.vip": "Cliente VIP.",
        "reason.premium": "Cliente premium.",
        "reason.repeated_request": "Il cliente ha ripetuto la richiesta: {intent}.",
        "reason.long_conversation": "Conversazione lunga ({messages} messaggi).",
        "reason.shouting": "Il cliente sta urlando (tutto maiuscolo).",
        "reason.swearing": "Il cliente usa parolacce («{word}»).",
        "reason.problem_report": "Un cliente {tier} segnala un problema.",
        "reason.repeat_contact": "Il cliente ha già scritto per questo.",
        "reason.delivered_not_received": "L'ordine risulta consegnato, ma il cliente non l'ha ricevuto.",
        "reason.dispute": "Il cliente minaccia uno storno o un'azione legale.",
        "reason.double_charge": "Il cliente segnala un doppio addebito.",
        "reason.bot_insult": "Il cliente insulta il bot.",
        "reason.missing_item": "Manca una parte dell'ordine.",
        "reason.fed_up": "Il cliente dice di essere stufo.",
        "reason.tried_again": "Il cliente ha già provato più volte.",
        "reason.sarcasm": "Il cliente fa del sarcasmo su un ritardo.",
        "reason.invoice_error": "Il cliente segnala un errore in fattura.",
        "reason.review_threat": "Il cliente minaccia una recensione negativa.",
        "reason.money_back": "Il cliente chiede indietro i soldi.",
        "reason.cancel_request": "Il cliente chiede di annullare un ordine.",
        "cue.repeat_contact": "ha già scritto",
        "cue.delivered_not_received": "consegnato ma non ricevuto",
        "cue.dispute": "minaccia di storno o azione legale",
        "cue.double_charge": "doppio addebito",
        "cue.bot_insult": "insulti al bot",
        "cue.missing_item": "parte dell'ordine mancante",
        "cue.fed_up": "«stufo»",
        "cue.tried_again": "ha già provato più volte",
        "cue.sarcasm": "sarcasmo su un ritardo",
        "cue.invoice_error": "errore in fattura",
        "cue.review_threat": "minaccia di recensione negativa",
        "cue.money_back": "rimborso chiesto",
        "cue.cancel_request": "annullamento chiesto",
        "reason.score": "Punteggio di passaggio {p}, pari o superiore alla soglia {tier} di "
                        "{threshold} (soprattutto per {features}).",
        "reason.with_agent": "La conversazione è già con un operatore.",
        "reason.csat_recorded": "Voto di soddisfazione {score} registrato.",
        "and": "e",
        "cue.all_caps": "tutto maiuscolo",
        "cue.exclamation_run": "una raffica di punti esclamativi",
        "cue.question_run": "una raffica di punti interrogativi",
        "cue.elongated_word": "parole allungate",
        "cue.repeated_complaint": "una lamentela ripetuta",
        "tier.standard": "standard",
        "tier.premium": "premium",
        "tier.vip": "VIP",
        "intent.cancel_order": "Annullare un ordine",
        "intent.change_order": "Modificare un ordine",
        "intent.change_shipping_address": "Cambiare l'indirizzo di spedizione",
        "intent.check_cancellation_fee": "Penale di annullamento",
        "intent.check_invoice": "Controllare una fattura",
        "intent.check_payment_methods": "Metodi di pagamento",
        "intent.check_refund_policy": "Politica di rimborso",
        "intent.complaint": "Reclamo",
        "intent.contact_customer_service": "Contattare il servizio clienti",
        "intent.contact_human_agent": "Parlare con un operatore",
        "intent.create_account": "Creare un account",
        "intent.delete_account": "Eliminare l'account",
        "intent.delivery_options": "Opzioni di consegna",
        "intent.delivery_period": "Tempi di consegna",
        "intent.edit_account": "Modificare l'account",
        "intent.get_invoice": "Ricevere una fattura",
        "intent.get_refund": "Ottenere un rimborso",
        "intent.newsletter_subscription": "Iscrizione alla newsletter",
        "intent.payment_issue": "Problema di pagamento",
        "intent.place_order": "Fare un ordine",
        "intent.recover_password": "Recuperare la password",
        "intent.registration_problems": "Problemi di registrazione",
        "intent.review": "Lasciare una recensione",
        "intent.set_up_shipping_address": "Impostare un indirizzo di spedizione",
        "intent.switch_account": "Cambiare account",
        "intent.track_order": "Seguire un ordine",
        "intent.track_refund": "Seguire un rimborso",
        "intent.greeting": "Saluto",
        "intent.goodbye": "Congedo",
        "intent.thanks": "Ringraziamento",
        "intent.out_of_scope": "Fuori ambito",
        "feature.frustration": "la frustrazione",
        "feature.max_frustration": "la frustrazione più alta finora",
        "feature.frustrated_turns": "i messaggi frustrati",
        "feature.failed_attempts": "le risposte fallite del bot",
        "feature.explicit_request": "la richiesta di un operatore",
        "feature.p_contact_human": "il desiderio di parlare con una persona",
        "feature.p_sensitive_billing": "un argomento delicato di fatturazione",
        "feature.p_sensitive_other": "un altro argomento delicato",
        "feature.p_complaint": "un reclamo",
        "feature.premium": "il livello premium",
        "feature.vip": "il livello VIP",
        "feature.repeated_intent": "una richiesta ripetuta",
        "feature.turns": "la lunghezza della conversazione",
        "feature.cue_count": "i segnali di frustrazione",
        "feature.vip_x_frustration": "un VIP frustrato",
        "feature.vip_x_sensitive": "un VIP con un argomento delicato",
        "feature.p_out_of_scope": "un messaggio fuori ambito",
        "feature.p_small_talk": "la conversazione generica",
        "feature.intent_confidence": "la sicurezza sull'intento",
    },
    "es": {
        "reason.asked_for_human": "El cliente pidió hablar con un agente.",
        "reason.failed_replies.one": "El bot no pudo ayudar una vez.",
        "reason.failed_replies": "El bot no pudo ayudar {count} veces.",
        "reason.frustrated": "El cliente está frustrado (puntuación {score}).",
        "reason.frustrated.cues": "El cliente está frustrado (puntuación {score}): {cues}.",
        "reason.frustrated_earlier": "El cliente ya estuvo frustrado antes en la conversación "
                                     "(puntuación {score}).",
        "reason.sensitive_topic": "Tema delicado: {intent}.",
        "reason.vip": "Cliente VIP.",
        "reason.premium": "Cliente premium.",
        "reason.repeated_request": "El cliente repitió la petición: {intent}.",
        "reason.long_conversation": "Conversación larga ({messages} mensajes).",
        "reason.shouting": "El cliente está gritando (todo en mayúsculas).",
        "reason.swearing": "El cliente dice palabrotas («{word}»).",
        "reason.problem_report": "Un cliente {tier} informa de un problema.",
        "reason.repeat_contact": "El cliente ya ha escrito por esto.",
        "reason.delivered_not_received": "El pedido figura como entregado, pero el cliente no lo ha recibido.",
        "reason.dispute": "El cliente amenaza con un contracargo o acciones legales.",
        "reason.double_charge": "El cliente informa de un cobro doble.",
        "reason.bot_insult": "El cliente insulta al bot.",
        "reason.missing_item": "Falta parte del pedido.",
        "reason.fed_up": "El cliente dice que está harto.",
        "reason.tried_again": "El cliente ya lo ha intentado varias veces.",
        "reason.sarcasm": "El cliente ironiza sobre un retraso.",
        "reason.invoice_error": "El cliente indica un error en una factura.",
        "reason.review_threat": "El cliente amenaza con una mala reseña.",
        "reason.money_back": "El cliente pide que le devuelvan el dinero.",
        "reason.cancel_request": "El cliente pide cancelar un pedido.",
        "cue.repeat_contact": "ya ha escrito",
        "cue.delivered_not_received": "entregado pero no recibido",
        "cue.dispute": "amenaza de contracargo o acción legal",
        "cue.double_charge": "cobro doble",
        "cue.bot_insult": "insultos al bot",
        "cue.missing_item": "falta parte del pedido",
        "cue.fed_up": "«harto»",
        "cue.tried_again": "varios intentos",
        "cue.sarcasm": "ironía sobre un retraso",
        "cue.invoice_error": "error en la factura",
        "cue.review_threat": "amenaza de mala reseña",
        "cue.money_back": "pide su dinero",
        "cue.cancel_request": "pide cancelar un pedido",
        "reason.score": "Puntuación de derivación {p}, igual o superior al umbral {tier} de "
                        "{threshold} (sobre todo por {features}).",
        "reason.with_agent": "La conversación ya está con un agente.",
        "reason.csat_recorded": "Puntuación de satisfacción {score} registrada.",
        "and": "y",
        "cue.all_caps": "todo en mayúsculas",
        "cue.exclamation_run": "varias exclamaciones seguidas",
        "cue.question_run": "varias interrogaciones seguidas",
        "cue.elongated_word": "palabras alargadas",
        "cue.repeated_complaint": "una queja repetida",
        "tier.standard": "estándar",
        "tier.premium": "premium",
        "tier.vip": "VIP",
        "intent.cancel_order": "Cancelar un pedido",
        "intent.change_order": "Modificar un pedido",
        "intent.change_shipping_address": "Cambiar la dirección de envío",
        "intent.check_cancellation_fee": "Cargo por cancelación",
        "intent.check_invoice": "Consultar una factura",
        "intent.check_payment_methods": "Métodos de pago",
        "intent.check_refund_policy": "Política de reembolso",
        "intent.complaint": "Queja",
        "intent.contact_customer_service": "Contactar con atención al cliente",
        "intent.contact_human_agent": "Hablar con una persona",
        "intent.create_account": "Crear una cuenta",
        "intent.delete_account": "Eliminar la cuenta",
        "intent.delivery_options": "Opciones de entrega",
        "intent.delivery_period": "Plazo de entrega",
        "intent.edit_account": "Editar la cuenta",
        "intent.get_invoice": "Obtener una factura",
        "intent.get_refund": "Obtener un reembolso",
        "intent.newsletter_subscription": "Suscripción al boletín",
        "intent.payment_issue": "Problema con el pago",
        "intent.place_order": "Hacer un pedido",
        "intent.recover_password": "Recuperar la contraseña",
        "intent.registration_problems": "Problemas de registro",
        "intent.review": "Dejar una reseña",
        "intent.set_up_shipping_address": "Configurar una dirección de envío",
        "intent.switch_account": "Cambiar de cuenta",
        "intent.track_order": "Seguir un pedido",
        "intent.track_refund": "Seguir un reembolso",
        "intent.greeting": "Saludo",
        "intent.goodbye": "Despedida",
        "intent.thanks": "Agradecimiento",
        "intent.out_of_scope": "Fuera de ámbito",
        "feature.frustration": "la frustración",
        "feature.max_frustration": "la frustración más alta hasta ahora",
        "feature.frustrated_turns": "los mensajes frustrados",
        "feature.failed_attempts": "las respuestas fallidas del bot",
        "feature.explicit_request": "la petición de un agente",
        "feature.p_contact_human": "las ganas de hablar con una persona",
        "feature.p_sensitive_billing": "un tema delicado de facturación",
        "feature.p_sensitive_other": "otro tema delicado",
        "feature.p_complaint": "una queja",
        "feature.premium": "el nivel premium",
        "feature.vip": "el nivel VIP",
        "feature.repeated_intent": "una petición repetida",
        "feature.turns": "la longitud de la conversación",
        "feature.cue_count": "las señales de frustración",
        "feature.vip_x_frustration": "un VIP frustrado",
        "feature.vip_x_sensitive": "un VIP con un tema delicado",
        "feature.p_out_of_scope": "un mensaje fuera de ámbito",
        "feature.p_small_talk": "la charla trivial",
        "feature.intent_confidence": "la confianza en la intención",
    },
    "pt": {
        "reason.asked_for_human": "O cliente pediu para falar com um atendente.",
        "reason.failed_replies.one": "O bot não conseguiu ajudar uma vez.",
        "reason.failed_replies": "O bot não conseguiu ajudar {count} vezes.",
        "reason.frustrated": "O cliente está frustrado (pontuação {score}).",
        "reason.frustrated.cues": "O cliente está frustrado (pontuação {score}): {cues}.",
        "reason.frustrated_earlier": "O cliente já estava frustrado antes na conversa "
                                     "(pontuação {score}).",
        "reason.sensitive_topic": "Assunto sensível: {intent}.",
        "reason.vip": "Cliente VIP.",
        "reason.premium": "Cliente premium.",
        "reason.repeated_request": "O cliente repetiu o pedido: {intent}.",
        "reason.long_conversation": "Conversa longa ({messages} mensagens).",
        "reason.shouting": "O cliente está gritando (tudo em maiúsculas).",
        "reason.swearing": "O cliente está xingando (“{word}”).",
        "reason.problem_report": "Um cliente {tier} relata um problema.",
        "reason.repeat_contact": "O cliente já escreveu sobre isto.",
        "reason.delivered_not_received": "O pedido consta como entregue, mas o cliente não o recebeu.",
        "reason.dispute": "O cliente ameaça com estorno ou ação judicial.",
        "reason.double_charge": "O cliente relata uma cobrança em dobro.",
        "reason.bot_insult": "O cliente está insultando o bot.",
        "reason.missing_item": "Falta parte do pedido.",
        "reason.fed_up": "O cliente diz que está farto.",
        "reason.tried_again": "O cliente já tentou várias vezes.",
        "reason.sarcasm": "O cliente ironiza sobre um atraso.",
        "reason.invoice_error": "O cliente aponta um erro numa fatura.",
        "reason.review_threat": "O cliente ameaça com uma avaliação negativa.",
        "reason.money_back": "O cliente pede o dinheiro de volta.",
        "reason.cancel_request": "O cliente pede para cancelar um pedido.",
        "cue.repeat_contact": "já escreveu antes",
        "cue.delivered_not_received": "entregue mas não recebido",
        "cue.dispute": "ameaça de estorno ou ação judicial",
        "cue.double_charge": "cobrança em dobro",
        "cue.bot_insult": "insultos ao bot",
        "cue.missing_item": "parte do pedido faltando",
        "cue.fed_up": "“farto”",
        "cue.tried_again": "várias tentativas",
        "cue.sarcasm": "ironia sobre um atraso",
        "cue.invoice_error": "erro na fatura",
        "cue.review_threat": "ameaça de avaliação negativa",
        "cue.money_back": "pede o dinheiro de volta",
        "cue.cancel_request": "pede para cancelar um pedido",
        "reason.score": "Pontuação de encaminhamento {p}, igual ou acima do limite {tier} de "
                        "{threshold} (principalmente: {features}).",
        "reason.with_agent": "A conversa já está com um atendente.",
        "reason.csat_recorded": "Nota de satisfação {score} registrada.",
        "and": "e",
        "cue.all_caps": "tudo em maiúsculas",
        "cue.exclamation_run": "vários pontos de exclamação seguidos",
        "cue.question_run": "vários pontos de interrogação seguidos",
        "cue.elongated_word": "palavras alongadas",
        "cue.repeated_complaint": "uma reclamação repetida",
        "tier.standard": "padrão",
        "tier.premium": "premium",
        "tier.vip": "VIP",
        "intent.cancel_order": "Cancelar um pedido",
        "intent.change_order": "Alterar um pedido",
        "intent.change_shipping_address": "Alterar o endereço de entrega",
        "intent.check_cancellation_fee": "Taxa de cancelamento",
        "intent.check_invoice": "Consultar uma fatura",
        "intent.check_payment_methods": "Formas de pagamento",
        "intent.check_refund_policy": "Política de reembolso",
        "intent.complaint": "Reclamação",
        "intent.contact_customer_service": "Contatar o atendimento ao cliente",
        "intent.contact_human_agent": "Falar com uma pessoa",
        "intent.create_account": "Criar uma conta",
        "intent.delete_account": "Excluir a conta",
        "intent.delivery_options": "Opções de entrega",
        "intent.delivery_period": "Prazo de entrega",
        "intent.edit_account": "Editar a conta",
        "intent.get_invoice": "Obter uma fatura",
        "intent.get_refund": "Obter um reembolso",
        "intent.newsletter_subscription": "Assinatura da newsletter",
        "intent.payment_issue": "Problema de pagamento",
        "intent.place_order": "Fazer um pedido",
        "intent.recover_password": "Recuperar a senha",
        "intent.registration_problems": "Problemas de cadastro",
        "intent.review": "Deixar uma avaliação",
        "intent.set_up_shipping_address": "Cadastrar um endereço de entrega",
        "intent.switch_account": "Trocar de conta",
        "intent.track_order": "Rastrear um pedido",
        "intent.track_refund": "Acompanhar um reembolso",
        "intent.greeting": "Saudação",
        "intent.goodbye": "Despedida",
        "intent.thanks": "Agradecimento",
        "intent.out_of_scope": "Fora do escopo",
        "feature.frustration": "a frustração",
        "feature.max_frustration": "a maior frustração até agora",
        "feature.frustrated_turns": "as mensagens frustradas",
        "feature.failed_attempts": "as respostas do bot que falharam",
        "feature.explicit_request": "o pedido de um atendente",
        "feature.p_contact_human": "a vontade de falar com uma pessoa",
        "feature.p_sensitive_billing": "um assunto sensível de cobrança",
        "feature.p_sensitive_other": "outro assunto sensível",
        "feature.p_complaint": "uma reclamação",
        "feature.premium": "o nível premium",
        "feature.vip": "o nível VIP",
        "feature.repeated_intent": "um pedido repetido",
        "feature.turns": "o tamanho da conversa",
        "feature.cue_count": "os sinais de frustração",
        "feature.vip_x_frustration": "um VIP frustrado",
        "feature.vip_x_sensitive": "um VIP com um assunto sensível",
        "feature.p_out_of_scope": "uma mensagem fora do escopo",
        "feature.p_small_talk": "a conversa casual",
        "feature.intent_confidence": "a confiança na intenção",
    },
}
#: Languages whose numbers take a decimal comma.
_DECIMAL_COMMA = frozenset({"it", "es", "pt"})


def _table(lang: str) -> dict[str, str]:
    return WORDS.get(lang, WORDS["en"])


def intent_name(intent: str | None, lang: str) -> str:
    """An intent's display name ("Delete the account", "Eliminare l'account"); a label the
    table lacks is shown as it is."""
    if not intent:
        return "–"
    return _table(lang).get(f"intent.{intent}", intent)


def _number(value: Any, lang: str) -> str:
    text = f"{float(value):.2f}"
    return text.replace(".", ",") if lang in _DECIMAL_COMMA else text


def _in_sentence(name: str) -> str:
    """A display name inside a sentence: "Delete the account" -> "delete the account"."""
    return name[:1].lower() + name[1:] if name[1:2].islower() else name


def _cue(cue: str, table: Mapping[str, str]) -> str:
    """A cue as agents read it: a word the customer typed in quotes, a kind by its name."""
    if ":" in cue:
        return f"“{cue.split(':', 1)[1]}”"
    return table.get(f"cue.{cue}", cue.replace("_", " "))


def cue_names(cues: list[str], lang: str) -> str:
    """The cues of a message as agents read them, listed in ``lang`` ("tutto maiuscolo,
    doppio addebito e “vergogna”")."""
    table = _table(lang)
    return _listing([_cue(c, table) for c in cues], table)


def number(value: Any, lang: str) -> str:
    """A score with two decimals, a decimal comma in it/es/pt."""
    return _number(value or 0, lang)


def _listing(items: list[str], table: Mapping[str, str]) -> str:
    """'a, b and c' in the table's language."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {table['and']} {items[-1]}"


def reason_sentence(reason: Reason | Mapping[str, Any], lang: str) -> str:
    """One reason as a sentence in ``lang`` ("Sensitive topic: delete the account.").

    A code without a sentence (``other``: a stored phrase no pattern reads) is shown in the
    words it was stored with; a parameter missing from an odd stored row leaves the English
    phrase of the API rather than a crash."""
    if not isinstance(reason, Reason):
        reason = Reason.from_dict(dict(reason))
    table, p = _table(lang), reason.params
    key = f"reason.{reason.code}"
    if key not in table:
        return reason.text
    try:
        if reason.code == "failed_replies" and int(p["count"]) == 1:
            key += ".one"
        if reason.code == "frustrated" and p.get("cues"):
            key += ".cues"
        values = {
            "count": p.get("count"), "messages": p.get("messages"), "word": p.get("word"),
            "score": _number(p["score"], lang) if "score" in p and reason.code != "csat_recorded"
            else p.get("score"),
            "p": _number(p["p"], lang) if "p" in p else None,
            "threshold": _number(p["threshold"], lang) if "threshold" in p else None,
            "tier": table.get(f"tier.{p.get('tier')}", p.get("tier")),
            "intent": _in_sentence(intent_name(p.get("intent"), lang)),
            "cues": _listing([_cue(c, table) for c in p.get("cues") or []], table),
            "features": _listing([table.get(f"feature.{f}", str(f).replace("_", " "))
                                  for f in p.get("features") or []], table),
        }
        return table[key].format(**values)
    except (KeyError, TypeError, ValueError):
        return reason.text
