"""Rank-normalised split R-hat, bulk ESS and tail ESS (Vehtari et al. 2021) of many parameters at once: ArviZ
0.23's ``az.rhat`` and ``az.ess(method="bulk" | "tail")``, the same arithmetic on every parameter together, and its
``az.bfmi`` (:func:`bfmi`, without importing ArviZ).

ArviZ computes them one scalar parameter at a time, through xarray, each with its own ranking, FFT and Python loop
over lags: about 25 ms a fit, and a fit job asks it of every candidate fitted (about 10 ms here;
docs/time_budget.md, "Vectorised PSIS-LOO and convergence"). Here the ranks, normal scores, autocovariances and Geyer's
initial positive and monotone sequences are array operations over parameters; the results are ArviZ's to the order
of floating-point sums (``tests/package/test_chain_stats.py``). A parameter with a NaN draw gets NaN, as in ArviZ.
"""
from __future__ import annotations

import numpy as np
from scipy.fftpack import next_fast_len
from scipy.special import ndtri


def _split(x: np.ndarray) -> np.ndarray:
    """(chain, draw, P) -> (2 chain, draw // 2, P): each chain's first and last halves as chains."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half:]], axis=0)


def _ranks(flat: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, ties sharing their mean rank) of each column of (N, P), as ``scipy.stats.rankdata``
    gives them, from one sort of each column."""
    values = np.ascontiguousarray(flat.T)
    order = np.argsort(values, axis=1)
    ordered = np.take_along_axis(values, order, axis=1)
    n = values.shape[1]
    at = np.broadcast_to(np.arange(n), values.shape)
    new_value = np.ones(values.shape, bool)
    new_value[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    last_value = np.ones(values.shape, bool)
    last_value[:, :-1] = new_value[:, 1:]
    first = np.maximum.accumulate(np.where(new_value, at, 0), axis=1)
    last = np.minimum.accumulate(np.where(last_value, at, n)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty(values.shape)
    np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=1)
    return ranks.T


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Normal scores of each parameter's ranks over all its draws (average ranks for ties, Blom's offset 3/8)."""
    flat = x.reshape(-1, x.shape[2])
    rank = _ranks(flat)
    return ndtri((rank - 3 / 8) / (flat.shape[0] - 2 * 3 / 8 + 1)).reshape(x.shape)


def _rhat(z: np.ndarray) -> np.ndarray:
    """Gelman-Rubin R-hat of each parameter of (chain, draw, P)."""
    z = np.asarray(z, dtype=float)
    n = z.shape[1]
    between = n * z.mean(axis=1).var(axis=0, ddof=1)
    within = z.var(axis=1, ddof=1).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + n - 1) / n)


def _autocov(y: np.ndarray) -> np.ndarray:
    """Autocovariance of every chain and parameter at every lag (FFT), as ArviZ's ``autocov`` along the draws."""
    n = y.shape[1]
    m = next_fast_len(2 * n)
    y = y - y.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(y, n=m, axis=1)
    spectrum *= np.conjugate(spectrum)
    return np.fft.irfft(spectrum, n=m, axis=1)[:, :n] / n


def _ess(y: np.ndarray) -> np.ndarray:
    """ArviZ's ``_ess`` of each parameter of (chain, draw, P): autocorrelations from the autocovariances, Geyer's
    initial positive sequence (pairs of lags summed while positive) and initial monotone sequence (each pair's sum
    at most the one before), per parameter where its own sequence stops."""
    y = np.asarray(y, dtype=float)
    chains, n, p = y.shape
    out = np.full(p, float(chains * n))
    constant = (y.max(axis=(0, 1)) - y.min(axis=(0, 1))) < np.finfo(float).resolution
    if constant.all():
        return out
    y = y[:, :, ~constant]
    p_var = y.shape[2]
    acov = _autocov(y)
    mean_var = acov[:, 0].mean(axis=0) * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if chains > 1:
        var_plus = var_plus + y.mean(axis=1).var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var - acov.mean(axis=0)) / var_plus  # (lag, P)
    cols = np.arange(p_var)
    rho_t = np.zeros((n, p_var))
    rho_t[0] = 1.0
    rho_t[1] = rho[1]
    # initial positive sequence: t = 1, 3, ... while t < n - 3 and the last pair's sum is positive
    ts = np.arange(1, n - 3, 2)
    runs = (1.0 + rho[1]) > 0
    if len(ts):
        pair = rho[ts + 1] + rho[ts + 2]
        stops = ~(pair > 0)
        last = np.where(stops.any(axis=0), stops.argmax(axis=0), len(ts) - 1)  # index of the last pair taken
        taken = (np.arange(len(ts))[:, None] <= last) & (pair >= 0) & runs
        for offset in (1, 2):
            rho_t[ts + offset] = np.where(taken, rho[ts + offset], rho_t[ts + offset])
        max_t = np.where(runs, ts[last], -1)
        even = np.where(runs, rho[ts[last] + 1, cols], 1.0)
    else:
        max_t, even = np.full(p_var, -1), np.ones(p_var)
    keep = even > 0
    rho_t[max_t[keep] + 1, cols[keep]] = even[keep]
    # initial monotone sequence: each pair (2q, 2q + 1) with 2q + 1 <= max_t at most the smallest sum before it
    pairs = n // 2
    sums = rho_t[0: 2 * pairs: 2] + rho_t[1: 2 * pairs: 2]
    before = np.vstack([np.full((1, p_var), np.inf), np.minimum.accumulate(sums, axis=0)[:-1]])
    q = np.arange(pairs)[:, None]
    lower = (q >= 1) & (2 * q + 1 <= max_t) & (sums > before)
    half = before / 2.0
    for offset in (0, 1):
        rho_t[offset: 2 * pairs: 2] = np.where(lower, half, rho_t[offset: 2 * pairs: 2])
    lags = np.arange(n)[:, None]
    tau = (-1.0 + 2.0 * np.where(lags <= max_t, rho_t, 0.0).sum(axis=0)
           + np.where(lags == max_t + 1, rho_t, 0.0).sum(axis=0))
    tau = np.maximum(tau, 1 / np.log10(chains * n))
    ess = chains * n / tau
    out[~constant] = np.where(np.isnan(rho_t).any(axis=0), np.nan, ess)
    return out


def _quantile(flat: np.ndarray, prob: float) -> np.ndarray:
    """Each column's quantile as ArviZ takes it (``scipy.stats.mstats.mquantiles`` with alphap = betap = 1, its
    arithmetic to the last bit: a draw at the quantile counts below it as in ArviZ)."""
    n = flat.shape[0]
    aleph = n * prob + (1.0 + prob * (1.0 - 1.0 - 1.0))
    k = int(np.floor(np.clip(aleph, 1, n - 1)))
    gamma = np.float64(np.clip(aleph - k, 0, 1))  # a float64 number: float32 draws are interpolated in float64
    part = np.partition(flat, [k - 1, k], axis=0)
    return (1.0 - gamma) * part[k - 1] + gamma * part[k]


def rhat_ess(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(R-hat, bulk ESS, tail ESS) of each parameter of draws (chain, draw, P), as ArviZ's ``az.rhat`` (rank
    method: the larger of the bulk and folded split R-hat) and ``az.ess`` ("bulk"; "tail": the smaller of the ESS of
    the 5 % and 95 % quantile indicators) give them. The folding runs in the draws' own precision, as ArviZ's.
    NaN where ArviZ gives NaN: a parameter with a NaN draw, fewer than 4 draws a chain, and R-hat of one chain."""
    x = np.asarray(x)
    valid = ~np.isnan(x).any(axis=(0, 1))
    rhat, bulk, tail = (np.full(x.shape[2], np.nan) for _ in range(3))
    if not valid.any() or x.shape[1] < 4:
        return rhat, bulk, tail
    x = x[:, :, valid]
    split = _split(x)
    z = _z_scale(split)
    folded = np.abs(split - np.median(split.reshape(-1, split.shape[2]), axis=0))
    r_bulk, r_tail = _rhat(z), _rhat(_z_scale(folded))
    if x.shape[0] >= 2:
        rhat[valid] = np.where(r_tail > r_bulk, r_tail, r_bulk)  # Python's max(bulk, tail)
    bulk[valid] = _ess(z)
    flat = x.reshape(-1, x.shape[2])
    low, high = (_ess(_split((x <= _quantile(flat, prob)).astype(float))) for prob in (0.05, 0.95))
    tail[valid] = np.where(high < low, high, low)  # Python's min(low, high)
    return rhat, bulk, tail


def bfmi(energy: np.ndarray) -> np.ndarray:
    """The Bayesian fraction of missing information of each chain of NUTS's energies (chain, draw), as ArviZ 0.23's
    ``az.bfmi``: the mean squared change of energy from draw to draw over its variance."""
    energy = np.atleast_2d(energy)
    return np.square(np.diff(energy, axis=1)).mean(axis=1) / np.var(energy, axis=1, ddof=1)
