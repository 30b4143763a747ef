"""Statistical assertions with a stated false-failure probability (at most 1e-3 per test).

A posterior that is right puts the truth at a standardized distance z = (median - truth) / SD that is
about Normal(0, 1) (a rank statistic, for skewed posteriors, is in :func:`binomial_tail`). Monte Carlo
error of a posterior summary comes from ArviZ's MCSE, which accounts for autocorrelation.
"""
from __future__ import annotations

import math

import numpy as np


def normal_two_sided(z: float) -> float:
    """P(|Z| > z) for a standard normal Z."""
    return math.erfc(z / math.sqrt(2))


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p): the chance of k or fewer successes."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def z_of_truth(draws, truth: float) -> float:
    """(posterior median - truth) / posterior SD."""
    draws = np.asarray(draws, float).reshape(-1)
    return float((np.median(draws) - truth) / draws.std())


def median_mcse(draws) -> float:
    """Monte Carlo SE of the posterior median of draws (chain, draw)."""
    import arviz as az

    return float(az.mcse(np.asarray(draws, float), method="median"))


def medians_agree(a, b, z: float = 4.5) -> tuple[bool, float]:
    """Two independent sets of draws (chain, draw) of one posterior: their medians differ by at most
    ``z`` combined MCSE (false failure P(|Z| > 4.5) = 6.8e-6 per comparison). Returns (ok, |diff| / SE)."""
    se = math.hypot(median_mcse(a), median_mcse(b))
    ratio = abs(float(np.median(a)) - float(np.median(b))) / se
    return ratio <= z, ratio
