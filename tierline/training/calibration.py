"""Calibration: temperature scaling (intent), Platt scaling (frustration), and their metrics.

Both calibrators follow scikit-learn's contract (``fit`` returns self, learned state ends in
``_``) and are fitted on the validation split, never on training data.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.linear_model import LogisticRegression

from tierline.nlu.analyzer import sigmoid, softmax


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


def plot_reliability(confidence: np.ndarray, accuracy: np.ndarray, count: np.ndarray, *,
                     title: str, xlabel: str, ylabel: str, label: str, path=None,
                     size_by_count: bool = False, figsize: float = 5.0):
    """Draw one reliability diagram (per-bin confidence vs accuracy, empty bins skipped).

    Saved to ``path`` and closed when given (headless, for reports); returned open otherwise
    (a notebook shows it). ``size_by_count`` draws bins as dots sized by how many rows they hold.
    """
    import matplotlib
    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf, acc, count = (np.asarray(a, dtype=float) for a in (confidence, accuracy, count))
    ok = count > 0
    fig, ax = plt.subplots(figsize=(figsize, figsize))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect")
    if size_by_count:
        ax.scatter(conf[ok], acc[ok], s=10 + 3 * count[ok], label=label)
    else:
        ax.plot(conf[ok], acc[ok], "o-", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="upper left" if size_by_count else "best")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig
