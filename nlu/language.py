"""A small, dependency-free language guess for choosing the bot's reply language.

Counts frequent function words of each supported language. Good enough to tell an Italian
"dov'è il mio ordine" from an English "where is my order"; the multilingual issue replaces it
with a measured detector.
"""

from __future__ import annotations

import re

STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset("the my is where i you to and a of it for please order have can not what how "
                    "hi hello thanks want need".split()),
    "it": frozenset("il la lo le gli mio mia è dove non per che un una di del della sono ho "
                    "ciao grazie vorrei ordine voglio come quando perché ancora mi ti".split()),
    "es": frozenset("el la los las mi mis es dónde donde no por que un una de del pedido quiero "
                    "hola gracias cómo como cuando está tengo".split()),
    "pt": frozenset("o a os as meu minha é onde não por que um uma de do da pedido quero olá "
                    "obrigado obrigada como quando está tenho você".split()),
}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def guess_language(text: str, allowed: list[str], default: str) -> str:
    """The allowed language with most function words in ``text``; ``default`` on a tie/none."""
    words = [w.lower() for w in _WORD.findall(text)]
    scores = {lang: sum(w in STOPWORDS.get(lang, ()) for w in words) for lang in allowed}
    best = max(scores.values(), default=0)
    winners = [lang for lang, s in scores.items() if s == best]
    return winners[0] if best > 0 and len(winners) == 1 else default
