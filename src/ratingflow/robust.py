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
#: candidate zero-flow stages, geometric from 0.001 to 3 stage ranges below the lowest gauging
GAPS = 48
#: relative distance within which the vectorised search leaves the choice to the scalar fit
TIE = 1e-6


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


def _huber_lines(x: np.ndarray, y: np.ndarray, iterations: int = 20, k: float = 1.345):
    """:func:`_huber_fit` of a straight line for every row of ``x`` (one row per candidate zero-flow stage) at
    once: (slopes, scales). Weighted least squares in closed form, so the values agree with the scalar fit to
    rounding, not to the bit; :func:`_choose_gap` settles near ties with the scalar fit."""
    w = np.ones_like(x)
    for _ in range(iterations):
        sw = w.sum(axis=1)
        xm, ym = (w * x).sum(axis=1) / sw, (w @ y) / sw
        dx = x - xm[:, None]
        slope = (w * dx) @ y / (w * dx * dx).sum(axis=1)
        r = y - ym[:, None] - slope[:, None] * dx
        scale = np.maximum(1.4826 * np.median(np.abs(r - np.median(r, axis=1, keepdims=True)), axis=1), MIN_SCALE)
        u = np.abs(r) / (k * scale[:, None])
        w = np.where(u <= 1, 1.0, 1.0 / np.maximum(u, 1e-12))
    return slope, np.maximum(1.4826 * np.median(np.abs(r), axis=1), MIN_SCALE)


def _choose_gap(depth: np.ndarray, y: np.ndarray, gaps: np.ndarray):
    """The gap (zero-flow stage below the lowest gauging) whose robust line has the smallest scale among those
    with an exponent in [0.3, 6], the first of equals; None if no exponent is plausible.

    All gaps are fitted at once (:func:`_huber_lines`); the few within :data:`TIE` of the best, or of an exponent
    bound, are refitted with :func:`_huber_fit`, so that the choice is the one that fit makes gap by gap (the
    clean gaugings' ``robust_z``, and with them the fit keys, stay as they were)."""
    x = np.log(depth[None, :] + gaps[:, None])
    with np.errstate(all="ignore"):
        slope, scale = _huber_lines(x, y)
    finite = bool(np.isfinite(slope).all() and np.isfinite(scale).all())
    # degenerate (e.g. a single stage): every gap by the scalar fit
    open_ = (slope >= 0.3 - TIE) & (slope <= 6.0 + TIE) if finite else np.ones(len(gaps), bool)
    while open_.any():
        near = open_ & (scale <= scale[open_].min() * (1 + TIE)) if finite else open_
        exact = {}
        for i in np.flatnonzero(near):
            coef, _, s = _huber_fit(x[i], y)
            if 0.3 <= coef[1] <= 6.0:
                exact[i] = s
        if exact:
            return gaps[min(exact, key=lambda i: (exact[i], i))]
        open_ &= ~near
    return None


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
    gap = _choose_gap(stage[pick] - stage.min(), y[pick], np.geomspace(1e-3 * span, 3.0 * span, GAPS))
    if gap is None:
        return np.zeros(n), np.zeros(n, bool)
    x = np.log(stage - stage.min() + gap)
    if n >= CURVED_MIN_POINTS:
        # let the curve bend (a change of control) so that misfit of the single power law is not
        # taken for a bad gauging
        xs = (x - x.mean()) / max(x.std(), 1e-9)
        _, r, scale = _huber_fit(xs, y, degree=3)
    else:
        _, r, scale = _huber_fit(x, y)
    z = r / scale
    return z, np.abs(z) > threshold
