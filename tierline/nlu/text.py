"""Input hygiene shared by training and run time.

Messages from WhatsApp can hold anything: lone surrogates from broken clients, NUL bytes,
50,000 characters of pasted logs. The model must see a clean, bounded string, and the caller
must learn when the text was cut.
"""

from __future__ import annotations

import functools
import re
import unicodedata

#: A word: a run of letters (no digits, no underscore), in any script. Cues, language
#: detection and the bot's small talk all split text this way.
WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
#: A letter typed three or more times in a row ("noooo", "graziee" has two: not elongated).
ELONGATED = re.compile(r"([^\W\d_])\1{2,}", re.UNICODE)


#: Strings up to this length are folded through the cache (words, keywords, short messages);
#: longer ones are folded afresh, so a 50,000-character message is never kept in memory.
FOLD_CACHE_CHARS = 64


def fold(text: str) -> str:
    """Lower-case without accents: 'Inútil' matches 'inutil', 'Operatóre' 'operatore'.

    Cached for short strings: every message folds its words, and the flow's keyword list,
    again."""
    return _fold_cached(text) if len(text) <= FOLD_CACHE_CHARS else _fold(text)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


_fold_cached = functools.lru_cache(maxsize=4096)(_fold)


def words_of(text: str) -> list[str]:
    """The folded words of ``text`` (letters and digits; punctuation and emoji split them)."""
    return "".join(ch if ch.isalnum() else " " for ch in fold(text)).split()


def squash_elongation(word: str) -> str:
    """``word`` with every run of three or more equal letters cut to one ("holaaa" -> "hola")."""
    return ELONGATED.sub(r"\1", word)


#: Characters kept before tokenisation. The model window is far shorter (see the bundle's
#: ``max_length``); this bound only keeps tokenisation time flat for huge inputs.
MAX_MODEL_CHARS = 2000


def clean_text(text: str) -> str:
    """Return ``text`` as valid, NFC-normalised Unicode with control characters blanked.

    Lone surrogates (which cannot be encoded to UTF-8) become U+FFFD instead of raising.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    valid = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    valid = unicodedata.normalize("NFC", valid)
    return "".join(" " if unicodedata.category(ch) == "Cc" and ch not in "\n\t" else ch for ch in valid)


def is_blank(text: str) -> bool:
    """True when nothing classifiable is left: empty, whitespace or invisible format characters."""
    return not any(not ch.isspace() and unicodedata.category(ch) not in ("Cf", "Zs") for ch in text)
