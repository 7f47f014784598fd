"""tierline's run-time NLU: intent + frustration from text, with surface cues. No torch here.

``Analyzer`` is the one entry point: it routes each text to the bundle of its language.
"""

from tierline.nlu.analyzer import AnalysisResult, BundleAnalyzer, ModelId
from tierline.nlu.cues import CUE_NAMES, extract_cues
from tierline.nlu.labels import INTENT_LABELS, OUT_OF_SCOPE
from tierline.nlu.routing import Analyzer

__all__ = ["AnalysisResult", "Analyzer", "BundleAnalyzer", "CUE_NAMES", "INTENT_LABELS",
           "ModelId", "OUT_OF_SCOPE", "extract_cues"]
