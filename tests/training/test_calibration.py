"""Calibrators recover known miscalibration; ECE measures it."""

import numpy as np

from tierline.training.calibration import (
    PlattScaler,
    TemperatureScaler,
    expected_calibration_error,
)


def sample_logits(rng, n=4000, k=5, sharpen=1.0):
    """Labels drawn from softmax(z); the logits handed out are z * sharpen (over-confident)."""
    z = rng.normal(0, 2.0, size=(n, k))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(k, p=row) for row in p])
    return z * sharpen, y


def test_temperature_scaling_recovers_the_temperature():
    rng = np.random.default_rng(0)
    logits, y = sample_logits(rng, sharpen=2.5)  # over-confident by a factor 2.5
    scaler = TemperatureScaler().fit(logits, y)
    assert abs(scaler.temperature_ - 2.5) < 0.15
    before = softmax_conf(logits)
    after = scaler.predict_proba(logits)
    assert expected_calibration_error(after.max(1), after.argmax(1) == y) < \
        expected_calibration_error(before.max(1), before.argmax(1) == y)


def softmax_conf(logits):
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_platt_scaling_recovers_scale_and_shift():
    rng = np.random.default_rng(1)
    logit = rng.normal(0, 3, 20000)
    y = (rng.random(20000) < 1 / (1 + np.exp(-(0.5 * logit - 1.0)))).astype(int)
    platt = PlattScaler().fit(logit, y)
    assert abs(platt.scale_ - 0.5) < 0.05 and abs(platt.shift_ + 1.0) < 0.1


def test_ece_is_zero_for_perfect_and_large_for_overconfident():
    rng = np.random.default_rng(2)
    conf = rng.uniform(0.5, 1.0, 50000)
    correct = rng.random(50000) < conf
    assert expected_calibration_error(conf, correct) < 0.01
    assert expected_calibration_error(np.full(1000, 0.99), np.arange(1000) % 2 == 0) > 0.45
