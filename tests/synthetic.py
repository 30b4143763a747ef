"""Synthetic stations with known parameters, for tests."""
from __future__ import annotations

import numpy as np

from ratingflow.data import StationData


def synthetic_station(rng: np.random.Generator, station_id: str, n: int = 40, a: float | None = None,
                      b: float | None = None, h0: float | None = None, sigma: float | None = None,
                      rel_sd: float = 0.04, datum: float = 0.0) -> tuple[StationData, dict]:
    """A one-control station: stages spread over 2-3 orders of magnitude of discharge."""
    a = float(rng.uniform(5, 60)) if a is None else a
    b = float(rng.uniform(1.4, 2.6)) if b is None else b
    h0 = datum + float(rng.uniform(-0.5, 0.5)) if h0 is None else h0
    sigma = float(rng.uniform(0.03, 0.1)) if sigma is None else sigma
    depth = np.exp(rng.uniform(np.log(0.15), np.log(4.0), n))
    stage = h0 + depth
    sd_gauging = np.sqrt(np.log1p(rel_sd**2))
    log_q = np.log(a) + b * np.log(depth) + rng.normal(0, np.sqrt(sigma**2 + sd_gauging**2), n)
    q = np.exp(log_q)
    truth = {"a": a, "b": b, "h0": h0, "sigma": sigma}
    return StationData(station_id, stage, q, rel_sd * q), truth
