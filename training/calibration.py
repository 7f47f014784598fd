"""Calibration: temperature scaling (intent), Platt scaling (frustration), and their metrics.

Both calibrators follow scikit-learn's contract (``fit`` returns self, learned state ends in
``_``) and are fitted on the validation split, never on training data.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.linear_model import LogisticRegression

from nlu.analyzer import sigmoid, softmax


class TemperatureScaler:
    """One temperature ``T`` for softmax(logits / T) that minimises validation log-loss."""

    def __init__(self, bounds: tuple[float, float] = (0.05, 10.0)) -> None:
        self.bounds = bounds

    def fit(self, logits: np.ndarray, y: np.ndarray) -> TemperatureScaler:
        """Fit ``temperature_`` on logits ``[n, k]`` and integer labels ``[n]``."""
        def nll(t: float) -> float:
            p = softmax(logits, t)[np.arange(len(y)), y]
            return float(-np.log(np.clip(p, 1e-12, 1.0)).mean())

        self.temperature_ = float(minimize_scalar(nll, bounds=self.bounds, method="bounded").x)
        return self

    def predict_proba(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities."""
        return softmax(logits, self.temperature_)


class PlattScaler:
    """``sigmoid(scale * logit + shift)`` fitted by logistic regression on one feature."""

    def fit(self, logit: np.ndarray, y: np.ndarray) -> PlattScaler:
        """Fit ``scale_`` and ``shift_`` on raw logits ``[n]`` and 0/1 labels ``[n]``."""
        lr = LogisticRegression(C=1e6).fit(logit.reshape(-1, 1), y)
        self.scale_ = float(lr.coef_[0, 0])
        self.shift_ = float(lr.intercept_[0])
        return self

    def predict_proba(self, logit: np.ndarray) -> np.ndarray:
        """Calibrated probability of the positive class."""
        return sigmoid(self.scale_ * logit + self.shift_)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15
                               ) -> float:
    """ECE: the bin-size-weighted gap between confidence and accuracy over equal-width bins."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            ece += sel.mean() * abs(confidence[sel].mean() - correct[sel].mean())
    return float(ece)


def reliability_curve(confidence: np.ndarray, correct: np.ndarray, bins: int = 10
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin (mean confidence, accuracy, count) for a reliability diagram."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    conf, acc, count = [], [], []
    for b in range(bins):
        sel = which == b
        count.append(int(sel.sum()))
        conf.append(float(confidence[sel].mean()) if sel.any() else np.nan)
        acc.append(float(np.asarray(correct)[sel].mean()) if sel.any() else np.nan)
    return np.array(conf), np.array(acc), np.array(count)
