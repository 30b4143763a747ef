"""Screening of candidate models before NUTS: which candidates could PSIS-LOO choose at all?

NUTS of a segmented candidate on a station with one control is the costliest fit of the pipeline (its
breakpoint is unidentified: deep trees, divergences) and is then rejected by PSIS-LOO. The screen rules
such fits out with a cheap computation first.

For a segmented power law with its zero-flow stage and breakpoints fixed, ln Q is linear in the
coefficients; :func:`ratingflow.initial.profile_fit` finds the best grid point. At that point the weighted
least-squares fit has an exact leave-one-out residual ``e_i / (1 - h_ii)`` with variance
``v_i / (1 - h_ii)`` (``h``: the weighted hat matrix, ``v_i``: the gauging's own variance plus the residual
variance), so each gauging gets a leave-one-out log predictive density, and a candidate a screen elpd.

The screen elpd of a candidate with breakpoints is *optimistic*: the grid chose its breakpoints and zero-flow
stage with every gauging, the held-out one included. Ruling a candidate out when even this optimistic gain
over the simpler candidates is small is therefore conservative. Rule, in the configured order:

* the first candidate is always fitted;
* a later segmented candidate is fitted when its screen elpd exceeds the best screen elpd of the candidates
  before it by more than ``z`` standard errors of the pointwise difference (``models.screen``);
* candidates the profile fit cannot express (``gplm``, rating-period modes) are always fitted.

docs/screen.md shows on the simulation that choices stay as good as with every candidate fitted.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .data import StationData
from .initial import design, profile_fit
from .model import Candidate, Structure


def screenable(candidate: Candidate) -> bool:
    return not candidate.gplm and not candidate.mode


def loo_pointwise(station: StationData, candidate: Candidate, structure: Structure) -> np.ndarray:
    """Leave-one-out log predictive density of each gauging under the candidate's profile fit."""
    fit = profile_fit(station, candidate, structure)
    x, y = station.stage_rel, np.log(station.discharge)
    variance = station.sd_log**2 + fit["sigma"] ** 2
    weights = 1.0 / variance
    X = design(x, fit["gap"], fit["breaks"])
    gram = X.T @ (X * weights[:, None]) + 1e-9 * np.eye(X.shape[1])
    coef = np.linalg.solve(gram, X.T @ (weights * y))
    leverage = np.clip(np.einsum("ni,ij,nj->n", X, np.linalg.inv(gram), X) * weights, 0.0, 1.0 - 1e-6)
    resid = (y - X @ coef) / (1.0 - leverage)
    var = variance / (1.0 - leverage)
    return -0.5 * (np.log(2 * np.pi * var) + resid**2 / var)


def screen(station: StationData, candidates: list[Candidate], structure: Structure, z: float) -> pd.DataFrame:
    """One row per candidate: ``fitted`` (whether NUTS runs), and for screenable ones ``screen_elpd``,
    and against the best screened candidate before it ``screen_gain`` and ``screen_se``."""
    rows, pointwise = [], {}
    for i, candidate in enumerate(candidates):
        row = {"model": candidate.name, "fitted": True, "screen_elpd": np.nan, "screen_gain": np.nan,
               "screen_se": np.nan, "screen": "always fitted" if i == 0 else "not screenable"}
        if screenable(candidate):
            lpd = loo_pointwise(station, candidate, structure)
            row["screen_elpd"] = float(lpd.sum())
            if i == 0:
                row["screen"] = "first candidate: always fitted"
            elif pointwise:
                best = max(pointwise, key=lambda name: pointwise[name].sum())
                diff = lpd - pointwise[best]
                gain, se = float(diff.sum()), float(np.sqrt(len(diff)) * np.std(diff))
                row.update(screen_gain=gain, screen_se=se, fitted=bool(gain > z * se))
                verdict = "fitted" if row["fitted"] else "screened out"
                row["screen"] = (f"{verdict}: profile leave-one-out gain over {best} {gain:.1f} "
                                 f"{'>' if row['fitted'] else '<='} {z:g} x SE {se:.1f}")
            pointwise[candidate.name] = lpd
        rows.append(row)
    return pd.DataFrame(rows)


def candidates_to_fit(stations: list[StationData], candidates: list[Candidate], structure: Structure,
                      z: float | None) -> tuple[list[list[Candidate]], list[pd.DataFrame | None]]:
    """Per station the candidates NUTS runs, and its screen table (``z`` None: no screen, all fitted)."""
    if z is None or len(candidates) < 2:
        return [list(candidates) for _ in stations], [None] * len(stations)
    tables = [screen(st, candidates, structure, z) for st in stations]
    return [[c for c, keep in zip(candidates, t["fitted"]) if keep] for t in tables], tables
