"""PSIS-LOO of a whole log-likelihood array at once: ArviZ 0.23's ``az.loo`` (Pareto-smoothed importance sampling,
Vehtari et al. 2024), the same arithmetic on every gauging together.

``az.loo`` sorts each gauging's 4 000 draws in full and fits its Pareto tail in a Python loop, through xarray: about
50 ms a fit, and a fit job computes it for every candidate fitted (about 18 ms here; docs/time_budget.md, "Vectorised
PSIS-LOO and convergence"). Here the tail is found by a partial sort (``np.argpartition``: only the ``M`` largest weights are sorted), and the generalised
Pareto fit of Zhang and Stephens, its prior, the smoothing, the truncation and the normalisation run as array
operations over gaugings. A gauging whose tail is not the ``M`` largest draws (ties at the cut-off, or weights below
the smallest float) or whose Pareto fit gives no smoothing goes through ArviZ's own per-gauging function, so every
result is ArviZ's up to the order of floating-point sums (``tests/package/test_psis.py``).
"""
from __future__ import annotations

import numpy as np

#: the dimension ArviZ gives the pointwise results of the log-likelihood variable ``log_discharge``
POINT_DIM = "log_discharge_dim_0"


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
    from arviz.stats.stats import _psislw

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
        x[i], k[i] = _psislw(np.array(log_weights[i]), -tail_len - 1, cutoff_min, True)
    return x, k


def loo(log_likelihood: np.ndarray, reff: float | None = None):
    """``az.loo(..., pointwise=True, reff=reff)`` of a log-likelihood (chain, draw, point): its ``ELPDData``, with
    ``loo_i`` and ``pareto_k`` as ArviZ gives them (DataArrays over :data:`POINT_DIM`). ``reff`` None: 1, what
    ArviZ takes for :func:`ratingflow.posterior.loo_idata` (its constant posterior's mean ESS is the draw count)."""
    import warnings

    import xarray as xr
    from arviz.stats.stats_utils import ELPDData

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
    return ELPDData(
        data=[elpd, se, p_loo, n_samples, n_points, bool(np.any(k > good_k)),
              xr.DataArray(loo_i, dims=[POINT_DIM], name="loo_i"), xr.DataArray(k, dims=[POINT_DIM], name="pareto_shape"),
              "log", good_k],
        index=["elpd_loo", "se", "p_loo", "n_samples", "n_data_points", "warning", "loo_i", "pareto_k", "scale", "good_k"],
    )
