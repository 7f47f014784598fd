"""The one analysis entry point: each text goes to the bundle shipped for its language.

``tierline.nlu.Analyzer`` is what every caller uses (``/v1/analyze``, ``tierline analyze``, the turn
engine, batch evaluation, the notebooks). It takes texts and, optionally, their language; it
detects the language of a text when none is given (:mod:`tierline.nlu.language`, from the text alone,
so a result never depends on what else is analysed with it) and runs the bundle of that
language. Every result says which language it was analysed as and which model produced it.

The shipped routing: English on ``models/nlu`` (measured better and 3x faster on English),
Italian, Spanish and Portuguese on ``models/nlu-multilingual`` (loaded on first use, so an
English-only caller never loads the second encoder). Running Italian through the English
bundle gave frustration ROC-AUC 0.61 instead of 0.85 (models/README.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

from tierline.nlu.analyzer import AnalysisResult, BundleAnalyzer
from tierline.nlu.bundle import DEFAULT_BUNDLE_DIR, MULTILINGUAL_BUNDLE_DIR, MULTILINGUAL_LANGUAGES
from tierline.nlu.language import guess_language

#: The languages tierline's shipped models and bot flows support.
SUPPORTED_LANGUAGES = ("en", "it", "es", "pt")
DEFAULT_LANGUAGE = "en"

T = TypeVar("T")


class Lazy(Generic[T]):
    """A value loaded on first use, once, thread-safely (a second encoder costs ~40 MB and a
    second of start-up: an English-only caller never pays for it)."""

    def __init__(self, load: Callable[[], T]) -> None:
        self._load = load
        self._value: T | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, value: T) -> Lazy[T]:
        """An already loaded value."""
        lazy = cls(lambda: value)
        lazy._value = value
        return lazy

    @property
    def loaded(self) -> bool:
        return self._value is not None

    def get(self) -> T:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._load()
        return self._value


LazyBundle = Lazy[BundleAnalyzer]


class Analyzer:
    """Texts (and optional languages) in, one :class:`AnalysisResult` per text out.

    ``routes`` maps languages to bundles; a language without a route goes to ``default``'s
    bundle (the results still say which language and model; the bundle adds a warning when it
    was not trained for that language).
    """

    def __init__(self, default: LazyBundle, routes: dict[str, LazyBundle] | None = None,
                 languages: Sequence[str] = SUPPORTED_LANGUAGES,
                 default_language: str = DEFAULT_LANGUAGE) -> None:
        self.default = default
        self.routes = dict(routes or {})
        #: The languages detection chooses among.
        self.languages = list(languages)
        #: The language of a text that gives detection nothing to go on ("ok", "ND-123456").
        self.default_language = default_language

    @classmethod
    def load(cls, path: str | Path | None = None, *, threads: int = 1,
             languages: Sequence[str] = SUPPORTED_LANGUAGES,
             default_language: str = DEFAULT_LANGUAGE) -> Analyzer:
        """The shipped routing (``path`` None), or one bundle folder for every language."""
        if path is not None:
            return cls(LazyBundle.of(BundleAnalyzer.load(path, threads=threads)),
                       languages=languages, default_language=default_language)
        multilingual = LazyBundle(lambda: BundleAnalyzer.load(MULTILINGUAL_BUNDLE_DIR,
                                                              threads=threads))
        return cls(LazyBundle(lambda: BundleAnalyzer.load(DEFAULT_BUNDLE_DIR, threads=threads)),
                   {lang: multilingual for lang in MULTILINGUAL_LANGUAGES},
                   languages=languages, default_language=default_language)

    def bundle_for(self, language: str) -> BundleAnalyzer:
        """The bundle that analyses ``language``."""
        return self.routes.get(language, self.default).get()

    def detect(self, text: str, default: str | None = None) -> str:
        """The language of ``text`` among :attr:`languages` (``default`` when unsure)."""
        return guess_language(text, self.languages, default or self.default_language)

    def analyze(self, texts: Sequence[str], language: str | Sequence[str | None] | None = None
                ) -> list[AnalysisResult]:
        """Analyse ``texts``; one result per text, in order.

        ``language``: one ISO 639-1 code for all texts, one per text (``None`` entries are
        detected), or ``None`` to detect each text's language from the text alone. A text's
        result is the same alone, in any batch and at any position.
        """
        if isinstance(texts, str):
            raise TypeError("analyze() takes a list of texts, not a single string")
        texts = list(texts)
        if language is None or isinstance(language, str):
            languages: list[str | None] = [language] * len(texts)
        else:
            languages = list(language)
            if len(languages) != len(texts):
                raise ValueError("one language per text")
        for i, lang in enumerate(languages):
            if lang is not None and lang not in self.languages:
                raise ValueError(f"language {lang!r} of text {i} is not one of {self.languages}")
        resolved = [lang or (self.detect(t) if isinstance(t, str) else self.default_language)
                    for t, lang in zip(texts, languages)]
        groups: dict[str, list[int]] = {}
        for i, lang in enumerate(resolved):
            groups.setdefault(lang, []).append(i)
        results: list[AnalysisResult | None] = [None] * len(texts)
        for lang, idx in groups.items():
            analyzed = self.bundle_for(lang).analyze([texts[i] for i in idx], language=lang)
            for i, result in zip(idx, analyzed):
                results[i] = result
        return results  # type: ignore[return-value]
