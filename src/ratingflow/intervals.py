"""Intervals: the median and HPDI bands of draws (rating tables, discharge series), and binomial intervals for
the studies' coverage figures."""
from __future__ import annotations

import numpy as np


def prob_label(prob: float) -> str:
    """'90' for 0.9: the label of an HPDI probability in column and key names."""
    return f"{round(prob * 100):d}"


#: draws copied at a time into :func:`sorted_draws`'s stage-by-stage layout (a block of 4000 x 256 float32 draws
#: is 4 MB)
SORT_BLOCK = 256


def sorted_draws(draws: np.ndarray) -> np.ndarray:
    """``np.sort(draws, axis=0)`` of draws x stages: the same values, each stage's draws sorted, in an array laid out
    stage by stage (the transpose of a C-ordered one), so that each stage's draws are sorted where they lie. NumPy
    sorts along the first axis of a C-ordered array by copying each stage's draws out to a buffer and back, one
    stage at a time; copied in blocks of :data:`SORT_BLOCK` draws first, a rating table's 4000 draws x 300-600
    stages sorted in about four fifths of the time (issue 16). Arrays of other than two dimensions: ``np.sort``."""
    if draws.ndim != 2:
        return np.sort(draws, axis=0)
    n, g = draws.shape
    rows = np.empty((g, n), draws.dtype)
    for start in range(0, n, SORT_BLOCK):
        rows[:, start:start + SORT_BLOCK] = draws[start:start + SORT_BLOCK].T
    rows.sort(axis=1)
    return rows.T


def hpdi_of_sorted(ordered: np.ndarray, prob: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """HPDI bounds of draws already sorted along ``axis``: the narrowest interval holding ``int(prob * n)`` + 1
    sorted draws, exactly as ``numpyro.diagnostics.hpdi`` (which sorts again on every call). Each bound has the
    shape of ``ordered`` without ``axis``."""
    ordered = np.moveaxis(ordered, axis, 0)
    n = ordered.shape[0]
    length = int(prob * n)
    start = (ordered[length:] - ordered[: n - length]).argmin(axis=0)[None]
    return (np.take_along_axis(ordered, start, axis=0)[0],
            np.take_along_axis(ordered, start + length, axis=0)[0])


def median_and_hpdi(draws: np.ndarray, probs) -> tuple[np.ndarray, dict]:
    """The median and, for each probability, the HPDI bounds of ``draws`` along axis 0, from one sort: the
    values of ``np.median`` and ``numpyro.diagnostics.hpdi``, which sort for every call (in a rating table of
    4000 draws x 500 stages, median and four bands sorted five times).

    Returns:
        (median, {prob: (lower, upper)}), each of shape ``draws.shape[1:]``.
    """
    ordered = sorted_draws(draws)
    n = ordered.shape[0]
    median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    return median, {prob: hpdi_of_sorted(ordered, prob) for prob in probs}


def median_and_hpdi_of_log(log_draws: np.ndarray, probs) -> tuple[np.ndarray, dict]:
    """:func:`median_and_hpdi` of ``np.exp(log_draws.astype(np.float64))``, from one sort of the logs: float32 logs
    sort in half the time of float64 values, and ``exp`` (increasing: the order is the same) is taken only of the
    order statistics the median and the bands use (of 4000 draws and a 90 % band, the 400 lowest and highest)."""
    ordered = sorted_draws(log_draws)
    n = ordered.shape[0]
    k = max(n - int(prob * n) for prob in probs)  # the most starts any band's search tries
    low, high = (np.exp(part.astype(np.float64)) for part in (ordered[:k], ordered[n - k:]))
    middle = np.exp(ordered[[(n - 1) // 2, n // 2]].astype(np.float64))
    median = middle[1] if n % 2 else (middle[0] + middle[1]) / 2
    bands = {}
    for prob in probs:
        m = n - int(prob * n)  # starts of this band: ordered[:m] below, ordered[n - m:] above
        start = (high[k - m:] - low[:m]).argmin(axis=0)[None]
        bands[prob] = (np.take_along_axis(low, start, axis=0)[0], np.take_along_axis(high, start + k - m, axis=0)[0])
    return median, bands


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion k / n."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))  # exact at k = 0 or n, but for rounding
