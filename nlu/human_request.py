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
and "la persona que atendió fue muy amable" talk about people without asking for one.
"""

from __future__ import annotations

import re

from nlu.analyzer import AnalysisResult, BundleAnalyzer
from nlu.similarity import ExampleIndex
from nlu.text import fold

#: A keyword counts in a clause of at most this many words without further evidence
#: ("AGENT!!!", "ok. operatore per favore", "... </script> agent please").
SHORT_MESSAGE_WORDS = 4
_CLAUSE_BREAK = re.compile(r"[.!?¿¡;,:()<>\[\]{}\"/\n]+")
#: ... or in a longer one whose nearest example is a request at least this close.
KEYWORD_SIMILARITY = 0.5


def words_of(text: str) -> list[str]:
    """The folded words of ``text`` (letters and digits; punctuation and emoji split them)."""
    return "".join(ch if ch.isalnum() else " " for ch in fold(text)).split()


def names_a_human(text: str, keywords: list[str]) -> bool:
    """True when the message names a human ('agent', 'operatore', ...) as a whole word."""
    words = set(words_of(text))
    return any(fold(k) in words for k in keywords)


class HumanRequests:
    """The flow's example requests embedded with one bundle, and its keywords."""

    def __init__(self, examples: list[str], counterexamples: list[str], keywords: list[str],
                 analyzer: BundleAnalyzer, min_similarity: float) -> None:
        self.keywords = list(keywords)
        self.min_similarity = min_similarity
        self._requests = len(examples)
        self._examples = ExampleIndex(list(examples) + list(counterexamples), analyzer)

    def nearest(self, analysis: AnalysisResult) -> tuple[bool, float]:
        """Whether the nearest example is a request, and its cosine similarity."""
        nearest = self._examples.nearest(analysis)
        if nearest is None:
            return False, 0.0
        return nearest[0] < self._requests, nearest[1]

    def asks(self, text: str, analysis: AnalysisResult) -> bool:
        """Whether ``text`` (analysed as ``analysis``) asks for a human."""
        is_request, similarity = self.nearest(analysis)
        if is_request and similarity >= self.min_similarity:
            return True
        if is_request and similarity >= KEYWORD_SIMILARITY and names_a_human(text, self.keywords):
            return True
        return any(names_a_human(c, self.keywords) and len(words_of(c)) <= SHORT_MESSAGE_WORDS
                   for c in _CLAUSE_BREAK.split(text))
