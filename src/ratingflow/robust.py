"""A robust preliminary power-law fit, used to flag suspect gaugings before the Bayesian fit.

For a grid of candidate zero-flow stages, ln Q = alpha + b ln(H - h0) is fitted by iteratively
reweighted least squares with Huber weights; the candidate with the smallest robust scale wins.
A gauging whose residual exceeds ``threshold`` robust standard deviations is *suspect*: it is
flagged and listed, never dropped (that is the hydrographer's decision).
"""
from __future__ import annotations

import numpy as np

#: residual scale never taken below this (ln units), so near-perfect data do not flag everything
MIN_SCALE = 0.02
#: fewer gaugings than this: nothing is judged suspect
MIN_POINTS = 6
#: h0 is chosen on at most this many gaugings
SEARCH_POINTS = 1000
#: from this many gaugings on, the final robust fit is a cubic in ln(H - h0)
CURVED_MIN_POINTS = 12


def _huber_fit(x: np.ndarray, y: np.ndarray, degree: int = 1, iterations: int = 20, k: float = 1.345):
    w = np.ones_like(y)
    design = np.column_stack([x**p for p in range(degree + 1)])
    coef = np.zeros(degree + 1)
    for _ in range(iterations):
        sw = np.sqrt(w)
        coef, *_ = np.linalg.lstsq(design * sw[:, None], y * sw, rcond=None)
        r = y - design @ coef
        scale = max(1.4826 * np.median(np.abs(r - np.median(r))), MIN_SCALE)
        u = np.abs(r) / (k * scale)
        w = np.where(u <= 1, 1.0, 1.0 / np.maximum(u, 1e-12))
    r = y - design @ coef
    return coef, r, max(1.4826 * np.median(np.abs(r)), MIN_SCALE)


def suspect_gaugings(stage: np.ndarray, discharge: np.ndarray, threshold: float = 4.0):
    """Robust standardized residuals and the suspect flags (|z| > threshold)."""
    stage, discharge = np.asarray(stage, float), np.asarray(discharge, float)
    n = len(stage)
    if n < MIN_POINTS or threshold <= 0:
        return np.zeros(n), np.zeros(n, bool)
    y = np.log(discharge)
    span = max(float(np.ptp(stage)), 1e-3)
    # choose h0 on at most SEARCH_POINTS gaugings spread over the stage range (large files)
    pick = np.argsort(stage)[np.linspace(0, n - 1, min(n, SEARCH_POINTS)).astype(int)]
    best = None
    for gap in np.geomspace(1e-3 * span, 3.0 * span, 48):
        coef, _, scale = _huber_fit(np.log(stage[pick] - stage.min() + gap), y[pick])
        if not 0.3 <= coef[1] <= 6.0:
            continue
        if best is None or scale < best[1]:
            best = (gap, scale)
    if best is None:
        return np.zeros(n), np.zeros(n, bool)
    x = np.log(stage - stage.min() + best[0])
    _, r, scale = _huber_fit(x, y)
    if n >= CURVED_MIN_POINTS:
        # let the curve bend (a change of control) so that misfit of the single power law is not
        # taken for a bad gauging
        xs = (x - x.mean()) / max(x.std(), 1e-9)
        _, r, scale = _huber_fit(xs, y, degree=3)
    z = r / scale
    return z, np.abs(z) > threshold
