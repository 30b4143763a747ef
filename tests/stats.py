"""Statistical assertions with a stated false-failure probability (at most 1e-3 per test).

A posterior that is right puts the truth at a standardized distance z = (median - truth) / SD that is
about Normal(0, 1) (a rank statistic, for skewed posteriors, is in :func:`binomial_tail`). Monte Carlo
error of a posterior summary comes from ArviZ's MCSE, which accounts for autocorrelation.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import binom, norm

#: false-failure probability of each statistical assertion
ALPHA = 1e-3
Z_ALPHA = float(norm.isf(ALPHA / 2))  # 3.29


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


def station_coverage_limits(p: float, stations: int) -> tuple[float, float]:
    """Interval the station-mean coverage lies in with probability at least 1 - ALPHA when the bands are right.

    The points of one station share its posterior, so they are not independent; the station is the unit.
    Each station's mean coverage has mean ``p`` and variance at most p(1-p) (its points all covered or all
    missed together); stations are independent, so the mean over them has variance at most
    p(1-p) / stations (a conservative design effect). The interval is the wider of
    - the normal approximation with that variance, p ± z sqrt(p(1-p) / stations), z = 3.29 (two-sided 1e-3);
    - the exact two-sided 1e-3 binomial interval of the extreme case (station coverages 0 or 1, so the
      number of fully covered stations is Binomial(stations, p)), where the normal approximation is poor.
    """
    half = Z_ALPHA * np.sqrt(p * (1 - p) / stations)
    exact_lo = binom.ppf(ALPHA / 2, stations, p) / stations
    exact_hi = binom.isf(ALPHA / 2, stations, p) / stations
    return min(p - half, exact_lo), max(p + half, exact_hi)


def station_mean_coverage(rows, column: str) -> tuple[float, int]:
    per_station = rows.groupby("station")[column].mean()
    return float(per_station.mean()), len(per_station)


def within_clustered_tolerance(rows, column: str, p: float) -> bool:
    coverage, stations = station_mean_coverage(rows, column)
    lo, hi = station_coverage_limits(p, stations)
    return lo <= coverage <= hi
