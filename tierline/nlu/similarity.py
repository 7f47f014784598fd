"""Example sentences embedded once with a bundle's encoder, matched by cosine similarity.

The FAQ (example questions) and explicit requests for a human (example requests) both ask "is
this message close to one of these sentences?" with the embedding of the same encoder pass
that classified the message: no second model call.
"""

from __future__ import annotations

import numpy as np

from tierline.nlu.analyzer import AnalysisResult, BundleAnalyzer


class ExampleIndex:
    """``texts`` embedded by ``analyzer`` (L2-normalised), for the nearest example of a message."""

    def __init__(self, texts: list[str], analyzer: BundleAnalyzer) -> None:
        self.texts = list(texts)
        self._vectors = analyzer.embed(self.texts) if self.texts else np.zeros((0, 1))

    def nearest(self, analysis: AnalysisResult) -> tuple[int, float] | None:
        """The index of the closest example and its cosine similarity (None without examples
        or without an embedding, e.g. for an empty message)."""
        if analysis.embedding is None:
            return None
        return self.nearest_to(analysis.embedding)

    def nearest_to(self, vector: np.ndarray) -> tuple[int, float] | None:
        """The closest example to an L2-normalised ``vector`` and its cosine similarity."""
        if not len(self._vectors):
            return None
        sims = self._vectors @ vector
        best = int(sims.argmax())
        return best, float(sims[best])
