"""The console's words in English and Italian; the agent picks the language.

One table per language with the same keys (a test holds them equal), so a missing translation
is a failing test, not an English word in an Italian page.
"""

from __future__ import annotations

from typing import Literal

Language = Literal["en", "it"]
LANGUAGES: tuple[str, ...] = ("en", "it")

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "app": "tierline console",
        "sign_in": "Sign in",
        "token": "Agent token",
        "token_help": "The token printed by `tierline agents add`.",
        "bad_token": "That token is not valid.",
        "sign_out": "Sign out",
        "language": "Language",
        "queue": "Queue",
        "kpis": "KPIs",
        "signed_in_as": "Signed in as",
        "teams": "Teams",
        "all_teams": "all teams (admin)",
        "empty_queue": "No tickets waiting.",
        "ticket": "Ticket",
        "priority": "Priority",
        "vip": "VIP",
        "frustration": "Frustration",
        "team": "Team",
        "intent": "Intent",
        "reasons": "Why it escalated",
        "status": "Status",
        "age": "Age",
        "customer": "Customer",
        "tier": "Tier",
        "order_number": "Order number",
        "order_numbers": "Order numbers",
        "customer_name": "Name on WhatsApp",
        "customer_phone": "WhatsApp number",
        "cues": "Cues",
        "p_escalate": "P(escalate)",
        "csat": "CSAT",
        "context": "Context",
        "transcript": "Conversation",
        "role_customer": "Customer",
        "role_bot": "Bot",
        "role_agent": "Agent",
        "reply": "Reply",
        "send": "Send on WhatsApp",
        "window_closed": "The 24-hour window is closed: your reply will be sent as the template",
        "window_open": "The 24-hour window is open: your reply goes as a normal message.",
        "claim": "Claim",
        "resolve": "Resolve",
        "transfer": "Transfer to",
        "transfer_button": "Transfer",
        "label": "Label",
        "escalation_needed": "Was the escalation needed?",
        "yes": "yes",
        "no": "no",
        "earlier": "should have been earlier",
        "corrected_intent": "Intent (corrected)",
        "frustrated": "Customer frustrated?",
        "unknown": "not sure",
        "note": "Note",
        "save_label": "Save label",
        "label_saved": "Label saved.",
        "claimed": "You have claimed the ticket.",
        "sent_text": "Reply sent.",
        "sent_template": "Reply sent as a template (outside the 24-hour window).",
        "sent_callback": "Reply queued for the bot runtime that owns this conversation.",
        "sent_not_sent": "Reply saved in the transcript, not delivered: this conversation "
                         "belongs to a bot runtime, and no runtime callback is configured.",
        "transferred": "Ticket transferred.",
        "resolved": "Ticket resolved; the customer is asked for a score.",
        "err_resolved": "The ticket is already resolved.",
        "err_claimed": "Another agent has claimed this ticket.",
        "err_input": "That input was not accepted.",
        "err_csrf": "The form expired; reload the page and try again.",
        "not_found": "No such ticket.",
        "back": "Back to the queue",
        "notify_sound": "Sound on new tickets",
        "new_tickets": "new",
        "from": "From",
        "to": "To",
        "show": "Show",
        "total": "Total",
        "day": "Day",
        "conversations": "Conversations",
        "escalations": "Escalations",
        "escalation_rate": "Escalation rate",
        "team_share": "Share of escalations",
        "containment": "Containment",
        "queue_depth": "Queue depth",
        "first_reply": "Time to first agent reply (median)",
        "resolution": "Resolution time (median)",
        "by_day": "By day",
        "by_team": "By team",
        "status_open": "open",
        "status_claimed": "claimed",
        "status_resolved": "resolved",
        "priority_high": "high",
        "priority_normal": "normal",
        "priority_low": "low",
        "active": "active",
        "unit_min": "min",
        "unit_h": "h",
        "unit_d": "d",
        "kpi_scope": "Service-wide figures; UTC days.",
        "every_team": "all teams",
    },
    "it": {
        "app": "console tierline",
        "sign_in": "Accedi",
        "token": "Token operatore",
        "token_help": "Il token stampato da `tierline agents add`.",
        "bad_token": "Token non valido.",
        "sign_out": "Esci",
        "language": "Lingua",
        "queue": "Coda",
        "kpis": "Indicatori",
        "signed_in_as": "Connesso come",
        "teams": "Team",
        "all_teams": "tutti i team (admin)",
        "empty_queue": "Nessun ticket in attesa.",
        "ticket": "Ticket",
        "priority": "Priorità",
        "vip": "VIP",
        "frustration": "Frustrazione",
        "team": "Team",
        "intent": "Intento",
        "reasons": "Perché è stato passato",
        "status": "Stato",
        "age": "Attesa",
        "customer": "Cliente",
        "tier": "Livello",
        "order_number": "Numero d'ordine",
        "order_numbers": "Numeri d'ordine",
        "customer_name": "Nome su WhatsApp",
        "customer_phone": "Numero WhatsApp",
        "cues": "Segnali",
        "p_escalate": "P(passaggio)",
        "csat": "Soddisfazione",
        "context": "Contesto",
        "transcript": "Conversazione",
        "role_customer": "Cliente",
        "role_bot": "Bot",
        "role_agent": "Operatore",
        "reply": "Risposta",
        "send": "Invia su WhatsApp",
        "window_closed": "La finestra di 24 ore è chiusa: la risposta partirà come modello",
        "window_open": "La finestra di 24 ore è aperta: la risposta parte come messaggio normale.",
        "claim": "Prendi in carico",
        "resolve": "Risolvi",
        "transfer": "Trasferisci a",
        "transfer_button": "Trasferisci",
        "label": "Etichetta",
        "escalation_needed": "Il passaggio era necessario?",
        "yes": "sì",
        "no": "no",
        "earlier": "doveva avvenire prima",
        "corrected_intent": "Intento (corretto)",
        "frustrated": "Cliente frustrato?",
        "unknown": "non so",
        "note": "Nota",
        "save_label": "Salva etichetta",
        "label_saved": "Etichetta salvata.",
        "claimed": "Hai preso in carico il ticket.",
        "sent_text": "Risposta inviata.",
        "sent_template": "Risposta inviata come modello (fuori dalla finestra di 24 ore).",
        "sent_callback": "Risposta in coda per il bot esterno a cui appartiene questa "
                         "conversazione.",
        "sent_not_sent": "Risposta salvata nella trascrizione, non consegnata: questa "
                         "conversazione appartiene a un bot esterno e non è configurato "
                         "alcun callback verso di esso.",
        "transferred": "Ticket trasferito.",
        "resolved": "Ticket risolto; al cliente viene chiesto un voto.",
        "err_resolved": "Il ticket è già risolto.",
        "err_claimed": "Un altro operatore ha preso in carico questo ticket.",
        "err_input": "Dati non accettati.",
        "err_csrf": "Il modulo è scaduto; ricarica la pagina e riprova.",
        "not_found": "Ticket inesistente.",
        "back": "Torna alla coda",
        "notify_sound": "Suono per i nuovi ticket",
        "new_tickets": "nuovi",
        "from": "Dal",
        "to": "Al",
        "show": "Mostra",
        "total": "Totale",
        "day": "Giorno",
        "conversations": "Conversazioni",
        "escalations": "Passaggi",
        "escalation_rate": "Tasso di passaggio",
        "team_share": "Quota dei passaggi",
        "containment": "Contenimento",
        "queue_depth": "Ticket in coda",
        "first_reply": "Tempo alla prima risposta (mediana)",
        "resolution": "Tempo di risoluzione (mediana)",
        "by_day": "Per giorno",
        "by_team": "Per team",
        "status_open": "aperto",
        "status_claimed": "in carico",
        "status_resolved": "risolto",
        "priority_high": "alta",
        "priority_normal": "normale",
        "priority_low": "bassa",
        "active": "attivi",
        "unit_min": "min",
        "unit_h": "h",
        "unit_d": "g",
        "kpi_scope": "Dati di tutto il servizio; giorni UTC.",
        "every_team": "tutti i team",
    },
}

#: Messages a redirect may name in its query string (``?done=`` / ``?error=``): only these keys
#: are ever shown, so a crafted URL cannot put text on the page.
FLASH_KEYS: frozenset[str] = frozenset({
    "label_saved", "claimed", "sent_text", "sent_template", "sent_callback", "sent_not_sent",
    "transferred", "resolved",
    "err_resolved", "err_claimed", "err_input", "err_csrf"})


def pick_language(value: str | None, accept_language: str | None = None) -> str:
    """A supported language: the asked one, else the browser's first choice, else English."""
    if value in LANGUAGES:
        return value
    first = (accept_language or "").split(",")[0].strip().lower()[:2]
    return first if first in LANGUAGES else "en"


def translator(lang: str):
    """``t(key)`` for templates: the word in ``lang`` (the key itself if unknown, never a crash)."""
    table = STRINGS.get(lang, STRINGS["en"])

    def t(key: str) -> str:
        return table.get(key, key)

    return t


def format_duration(seconds: float | None, lang: str) -> str:
    """'40 s', '42 min', '3.5 h', '2.0 d': how long a ticket waited, at a glance."""
    if seconds is None:
        return "–"
    t = translator(lang)
    if seconds < 60:
        return f"{max(seconds, 0):.0f} s"
    minutes = seconds / 60
    if minutes < 90:
        return f"{max(minutes, 0):.0f} {t('unit_min')}"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} {t('unit_h')}"
    return f"{minutes / 1440:.1f} {t('unit_d')}"
