"""tierline's run-time NLU: intent + frustration from text, with surface cues. No torch here."""

from nlu.analyzer import AnalysisResult, Analyzer
from nlu.cues import CUE_NAMES, extract_cues
from nlu.labels import INTENT_LABELS, OUT_OF_SCOPE

__all__ = ["AnalysisResult", "Analyzer", "CUE_NAMES", "INTENT_LABELS", "OUT_OF_SCOPE", "extract_cues"]
