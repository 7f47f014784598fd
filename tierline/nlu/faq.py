"""FAQ matching: by the NLU intent first, then by embedding similarity with the same encoder,
then by the entry's keywords.

"how long does shipping take" finds the delivery-time entry either because the intent model
says ``delivery_period`` or because its sentence embedding is close to an example question.
A question naming a keyword of an entry ("can I pay with Klarna?", "do you offer express
delivery to London?") finds it when the intent model read it as out of scope and no example is
close enough: the business names what its answers are about in so many words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from tierline.nlu.analyzer import AnalysisResult, BundleAnalyzer
from tierline.nlu.flow import FlowError
from tierline.nlu.labels import OUT_OF_SCOPE
from tierline.nlu.similarity import ExampleIndex
from tierline.nlu.text import words_of


#: A keyword said not to be the question: "I SAID ADDRESS not delivery times" (folded words
#: before the keyword).
_NEGATED = re.compile(r"\b(?:not|non|no|nao|nicht)\s*$")


class FaqEntry(BaseModel):
    """One FAQ answer with the intents and example questions that lead to it."""

    id: str
    intents: list[str] = []
    questions: dict[str, list[str]]
    #: Words or phrases (any language, matched as whole folded words) that make a question this
    #: entry's: brands of payment, "express", "pick-up point"...
    keywords: list[str] = []
    answer: dict[str, str]


@dataclass(frozen=True)
class FaqMatch:
    """The entry that answers a message, how it matched, and the similarity."""

    entry: FaqEntry
    by: str  # "intent", "similarity" or "keyword"
    similarity: float


class FaqIndex:
    """FAQ entries with their example questions embedded once at load time."""

    def __init__(self, entries: list[FaqEntry], analyzer: BundleAnalyzer, min_similarity: float,
                 out_of_scope_similarity: float | None = None) -> None:
        self.entries = entries
        self.min_similarity = min_similarity
        self.out_of_scope_similarity = max(min_similarity, out_of_scope_similarity or 0.0)
        pairs = [(i, q) for i, e in enumerate(entries) for qs in e.questions.values() for q in qs]
        self._owner = [i for i, _ in pairs]
        self._keywords = {e.id: [" ".join(words_of(k)) for k in e.keywords] for e in entries}
        self._questions = ExampleIndex([q for _, q in pairs], analyzer)

    @classmethod
    def load(cls, path: Path, analyzer: BundleAnalyzer, min_similarity: float,
             out_of_scope_similarity: float | None = None) -> FaqIndex:
        """Read the FAQ YAML (a list of entries) and embed its questions.

        A file that cannot be read raises :class:`FlowError` naming it (a reload's error
        said "while parsing a flow sequence in <unicode string>", not which file)."""
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or []
            entries = TypeAdapter(list[FaqEntry]).validate_python(raw)
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            raise FlowError(f"{path}: {exc}") from exc
        return cls(entries, analyzer, min_similarity, out_of_scope_similarity)

    def match(self, analysis: AnalysisResult, text: str | None = None) -> FaqMatch | None:
        """The best entry for ``analysis``, or None when nothing is close enough. With the
        message's ``text``, a calm question that names one entry's keywords (no problem, no cue,
        not frustrated: "I SAID ADDRESS not delivery times" is no question about them) finds it
        last."""
        for entry in self.entries:
            if analysis.intent in entry.intents and analysis.intent_confidence >= 0.5:
                return FaqMatch(entry, "intent", 1.0)
        nearest = self._questions.nearest(analysis)
        needed = (self.out_of_scope_similarity
                  if analysis.intent == OUT_OF_SCOPE and analysis.intent_confidence >= 0.5
                  else self.min_similarity)
        if nearest is not None and nearest[1] >= needed:
            return FaqMatch(self.entries[self._owner[nearest[0]]], "similarity", nearest[1])
        if (text is not None and "?" in text and not analysis.problem and not analysis.cues
                and not analysis.frustrated):
            folded = _padded(text)
            named = [e for e in self.entries if self._named(e, folded)]
            if len(named) == 1:  # one entry named, not a question about several things
                return FaqMatch(named[0], "keyword", 0.0)
        return None

    def names(self, entry: FaqEntry, text: str, also_in: str | None = None) -> bool:
        """``text`` names one of ``entry``'s keywords, not negated ("can I pay with PayPal?"
        names the payment methods' entry; "I SAID ADDRESS not delivery times" does not); with
        ``also_in``, one that text names as well (an answer that says "PayPal")."""
        return self._named(entry, _padded(text),
                           _padded(also_in) if also_in is not None else None)

    def _named(self, entry: FaqEntry, folded: str, other: str | None = None) -> bool:
        """:meth:`names` on text already folded by :func:`_padded` (folded once for all
        entries)."""
        return any(f" {k} " in folded and not _NEGATED.search(folded.split(f" {k} ")[0])
                   and (other is None or f" {k} " in other)
                   for k in self._keywords[entry.id])


def _padded(text: str) -> str:
    """``text``'s folded words, a space either side, for whole-word keyword tests."""
    return f" {' '.join(words_of(text))} "
