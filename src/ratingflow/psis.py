"""PSIS-LOO of a whole log-likelihood array at once: ArviZ 0.23's ``az.loo`` (Pareto-smoothed importance sampling,
Vehtari et al. 2024), the same arithmetic on every gauging together, without importing ArviZ.

``az.loo`` sorts each gauging's 4 000 draws in full and fits its Pareto tail in a Python loop, through xarray: about
50 ms a fit, and a fit job computes it for every candidate fitted (about 18 ms here; docs/time_budget.md, "Vectorised
PSIS-LOO and convergence"). Here the tail is found by a partial sort (``np.argpartition``: only the ``M`` largest weights are sorted), and the generalised
Pareto fit of Zhang and Stephens, its prior, the smoothing, the truncation and the normalisation run as array
operations over gaugings. A gauging whose tail is not the ``M`` largest draws (ties at the cut-off, or weights below
the smallest float) or whose Pareto fit gives no smoothing goes through ArviZ's own per-gauging function, so every
result is ArviZ's up to the order of floating-point sums (``tests/package/test_psis.py``).

That per-gauging function (:func:`_psislw_row`, with its Pareto fit and inverse) is ArviZ 0.23.4's ``_psislw``,
``_gpdfit`` and ``_gpinv`` (``arviz/stats/stats.py``, Apache License 2.0), copied line for line: the importance
sampler smooths its weights with it too (:func:`psislw_row`, ``az.psislw`` of one row). A fit job that imported
ArviZ for them spent about 1.1 s of its start-up on the import (its plots import ``scipy.stats`` and matplotlib).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _logsumexp_rows(a: np.ndarray, b_inv: float | None = None) -> np.ndarray:
    """ArviZ's ``_logsumexp`` over the last axis, row by row, in the array's own precision."""
    top = a.max(axis=1, keepdims=True)
    out = np.log(np.exp(a - top).sum(axis=1))
    if b_inv is not None:
        top -= np.log(b_inv)
    return out + top[:, 0]


def _gpd_fit(tail: np.ndarray, chunk: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """ArviZ's ``_gpdfit`` (k with its weak prior, sigma) for every row of sorted tail values (rows, n). The
    (rows, 30 + sqrt(n), n) logarithms are taken ``chunk`` rows at a time, so that no large array is made; each
    grid point's weight, ArviZ's ``1 / sum_j exp(L_j - L_i)``, is taken as ``exp(L_i - logsumexp(L))``, the same
    number without the overflowing exponentials."""
    prior_bs, prior_k = 3, 10
    n = tail.shape[1]
    m_est = 30 + int(n ** 0.5)
    b = 1 - np.sqrt(m_est / (np.arange(1, m_est + 1, dtype=float) - 0.5))
    b = b[None, :] / (prior_bs * tail[:, int(n / 4 + 0.5) - 1])[:, None]
    b = b + (1 / tail[:, -1])[:, None]
    k = np.empty_like(b)
    for start in range(0, len(b), chunk):
        rows = slice(start, start + chunk)
        k[rows] = np.log1p(-b[rows, :, None] * tail[rows, None, :]).mean(axis=2)
    length = n * (np.log(-(b / k)) - k - 1)
    top = length.max(axis=1, keepdims=True)
    weights = np.exp(length - top) / np.exp(length - top).sum(axis=1, keepdims=True)
    weights = np.where(weights >= 10 * np.finfo(float).eps, weights, 0.0)  # ArviZ drops the negligible ones
    weights = weights / weights.sum(axis=1, keepdims=True)
    b_post = (b * weights).sum(axis=1)
    k_post = np.log1p(-b_post[:, None] * tail).mean(axis=1)
    sigma = -k_post / b_post
    return (n * k_post + prior_k * 0.5) / (n + prior_k), sigma


def psislw(log_weights: np.ndarray, reff: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """ArviZ's ``psislw`` (normalised smoothed log weights, Pareto k) of log weights (points, draws), in their own
    precision as ArviZ keeps it (a fit's log-likelihood is float32; the Pareto fit runs in float64)."""
    x = np.array(log_weights)
    rows, draws = x.shape
    tail_len = int(np.ceil(min(draws / 5.0, 3 * (draws / reff) ** 0.5)))
    cutoff_min = np.log(np.finfo(float).tiny)
    x -= x.max(axis=1, keepdims=True)
    order = np.argpartition(x, draws - tail_len - 1, axis=1)
    cutoff = np.maximum(np.take_along_axis(x, order[:, draws - tail_len - 1: draws - tail_len], axis=1)[:, 0],
                        cutoff_min)
    regular = (x > cutoff[:, None]).sum(axis=1) == tail_len
    k = np.full(rows, np.inf)
    smoothed = np.zeros(rows, bool)
    if tail_len > 4 and regular.any():
        rows_ok = np.flatnonzero(regular)
        tail_at = order[rows_ok, draws - tail_len:]
        values = np.take_along_axis(x[rows_ok], tail_at, axis=1)
        sort = np.argsort(values, axis=1)
        tail_at = np.take_along_axis(tail_at, sort, axis=1)
        exp_cutoff = np.exp(cutoff[rows_ok])
        tail = np.exp(np.take_along_axis(values, sort, axis=1)) - exp_cutoff[:, None]
        k_ok, sigma = _gpd_fit(tail)
        k[rows_ok] = k_ok
        smooth = np.isfinite(k_ok) & (sigma > 0) & (np.abs(k_ok) >= np.finfo(float).eps)
        probs = np.arange(0.5, tail_len) / tail_len
        k_s, sigma_s, at = k_ok[smooth, None], sigma[smooth, None], rows_ok[smooth]
        x[at[:, None], tail_at[smooth]] = np.log(np.expm1(-k_s * np.log1p(-probs)) / k_s * sigma_s
                                                 + exp_cutoff[smooth, None])
        smoothed[at] = True
        # a finite k that ArviZ's inverse would not give as above (sigma <= 0, k = 0): its own function
        regular[rows_ok[np.isfinite(k_ok) & ~smooth]] = False
    x[smoothed] = np.minimum(x[smoothed], 0.0)
    x -= _logsumexp_rows(x)[:, None]
    for i in np.flatnonzero(~regular):
        x[i], k[i] = _psislw_row(np.array(log_weights[i]), -tail_len - 1, cutoff_min)
    return x, k


@dataclass(frozen=True)
class Loo:
    """A fit's PSIS-LOO: the entries of the ``ELPDData`` that ``az.loo(..., pointwise=True)`` gives, read the same way
    (``loo.elpd_loo`` or ``loo["elpd_loo"]``); ``loo_i`` and ``pareto_k`` are arrays, one value per point."""

    elpd_loo: float
    se: float
    p_loo: float
    n_samples: int
    n_data_points: int
    warning: bool
    loo_i: np.ndarray
    pareto_k: np.ndarray
    scale: str
    good_k: float

    def __getitem__(self, key: str):
        return getattr(self, key)


def loo(log_likelihood: np.ndarray, reff: float | None = None) -> Loo:
    """``az.loo(..., pointwise=True, reff=reff)`` of a log-likelihood (chain, draw, point), with ``loo_i`` and
    ``pareto_k`` as ArviZ computes them. ``reff`` None: 1, what ArviZ takes for
    :func:`ratingflow.posterior.loo_idata` (its constant posterior's mean ESS is the draw count)."""
    import warnings

    chains, draws = log_likelihood.shape[:2]
    ll = np.ascontiguousarray(np.reshape(log_likelihood, (chains * draws, -1)).T)
    n_samples, n_points = ll.shape[1], ll.shape[0]
    log_weights, k = psislw(-ll, 1.0 if reff is None else reff)
    log_weights += ll
    good_k = min(1 - 1 / np.log10(n_samples), 0.7)
    loo_i = _logsumexp_rows(log_weights)
    elpd = loo_i.sum()
    se = (n_points * np.var(loo_i)) ** 0.5
    p_loo = _logsumexp_rows(ll, b_inv=n_samples).sum() - elpd
    if np.any(k > good_k):
        warnings.warn(f"Estimated shape parameter of Pareto distribution is greater than {good_k:.2f} for one or more "
                      "samples (ratingflow.psis.loo, as az.loo warns)")
    return Loo(elpd, se, p_loo, n_samples, n_points, bool(np.any(k > good_k)), loo_i, k, "log", good_k)


def psislw_row(log_weights: np.ndarray, reff: float = 1.0) -> tuple[np.ndarray, float]:
    """``az.psislw`` of one row of log weights: the smoothed, normalised log weights (a new array) and the Pareto k."""
    n = log_weights.shape[-1]
    cutoff_ind = -int(np.ceil(min(n / 5.0, 3 * (n / reff) ** 0.5))) - 1
    smoothed = np.empty_like(log_weights)
    smoothed[()], k = _psislw_row(np.array(log_weights), cutoff_ind, np.log(np.finfo(float).tiny))
    return smoothed, float(k)


# ArviZ 0.23.4's per-row PSIS (arviz/stats/stats.py: _psislw, _gpdfit, _gpinv), Apache License 2.0, copied line for
# line so that the results are ArviZ's to the last bit.

def _psislw_row(x: np.ndarray, cutoff_ind: int, cutoffmin: float) -> tuple[np.ndarray, float]:
    """ArviZ's ``_psislw`` (normalised): smoothed log weights of a 1-D array (changed in place) and the Pareto k."""
    max_x = np.max(x)
    x -= max_x
    x_sort_ind = np.argsort(x)
    xcutoff = max(x[x_sort_ind[cutoff_ind]], cutoffmin)
    expxcutoff = np.exp(xcutoff)
    (tailinds,) = np.where(x > xcutoff)
    x_tail = x[tailinds]
    tail_len = len(x_tail)
    if tail_len <= 4:
        k = np.inf
    else:
        x_tail_si = np.argsort(x_tail)
        x_tail = np.exp(x_tail) - expxcutoff
        k, sigma = _gpdfit_row(x_tail[x_tail_si])
        if np.isfinite(k):
            sti = np.arange(0.5, tail_len) / tail_len
            smoothed_tail = _gpinv(sti, k, sigma)
            smoothed_tail = np.log(smoothed_tail + expxcutoff)
            x[tailinds[x_tail_si]] = smoothed_tail
            x[x > 0] = 0
    x -= _logsumexp_rows(x[None])[0]  # ArviZ's logsumexp over the whole row, the same arithmetic
    return x, k


def _gpdfit_row(ary: np.ndarray) -> tuple[float, float]:
    """ArviZ's ``_gpdfit``: the generalised Pareto fit (k with its weak prior, sigma) of sorted tail values."""
    prior_bs = 3
    prior_k = 10
    n = len(ary)
    m_est = 30 + int(n**0.5)
    b_ary = 1 - np.sqrt(m_est / (np.arange(1, m_est + 1, dtype=float) - 0.5))
    b_ary /= prior_bs * ary[int(n / 4 + 0.5) - 1]
    b_ary += 1 / ary[-1]
    k_ary = np.log1p(-b_ary[:, None] * ary).mean(axis=1)
    len_scale = n * (np.log(-(b_ary / k_ary)) - k_ary - 1)
    weights = 1 / np.exp(len_scale - len_scale[:, None]).sum(axis=1)
    real_idxs = weights >= 10 * np.finfo(float).eps
    if not np.all(real_idxs):
        weights = weights[real_idxs]
        b_ary = b_ary[real_idxs]
    weights /= weights.sum()
    b_post = np.sum(b_ary * weights)
    k_post = np.log1p(-b_post * ary).mean()
    sigma = -k_post / b_post
    k_post = (n * k_post + prior_k * 0.5) / (n + prior_k)
    return k_post, sigma


def _gpinv(probs: np.ndarray, kappa: float, sigma: float) -> np.ndarray:
    """ArviZ's ``_gpinv``: the inverse generalised Pareto distribution function."""
    x = np.full_like(probs, np.nan)
    if sigma <= 0:
        return x
    ok = (probs > 0) & (probs < 1)
    if np.all(ok):
        if np.abs(kappa) < np.finfo(float).eps:
            x = -np.log1p(-probs)
        else:
            x = np.expm1(-kappa * np.log1p(-probs)) / kappa
        x *= sigma
    else:
        if np.abs(kappa) < np.finfo(float).eps:
            x[ok] = -np.log1p(-probs[ok])
        else:
            x[ok] = np.expm1(-kappa * np.log1p(-probs[ok])) / kappa
        x *= sigma
        x[probs == 0] = 0
        x[probs == 1] = np.inf if kappa >= 0 else -sigma / kappa
    return x
