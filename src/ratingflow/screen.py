"""Screening of candidate models before NUTS: which candidates could PSIS-LOO choose at all?

NUTS of a segmented candidate on a station with one control is the costliest fit of the pipeline (its
breakpoint is unidentified: deep trees, divergences) and is then rejected by PSIS-LOO. The screen rules
such fits out with a cheap computation first.

For a segmented power law with its zero-flow stage and breakpoints fixed, ln Q is linear in the
coefficients; :func:`ratingflow.initial.profile_fit` searches a grid of them. At a grid point the weighted
least-squares fit has an exact leave-one-out residual ``e_i / (1 - h_ii)`` with variance
``v_i / (1 - h_ii)`` (``h``: the weighted hat matrix, ``v_i``: the gauging's own variance plus the residual
variance), so each gauging gets a leave-one-out log predictive density, and a candidate a screen elpd.

The screen elpd of a candidate with breakpoints is *optimistic*: the grid chose its breakpoints and zero-flow
stage with every gauging, the held-out one included. Ruling a candidate out when even this optimistic gain
over the simpler candidates is small is therefore conservative. Leaving the grid search out too
(``reselect``: each gauging predicted from the grid point that fits the *other* gaugings best) removes that
optimism, but docs/screen.md shows it separates one- from two-control stations less well (the reselected
breakpoint of each fold adds noise), so the screen does not use it. Rule, in the configured order:

* the first candidate is always fitted;
* a later segmented candidate is fitted when its screen elpd exceeds the best screen elpd of the candidates
  before it by more than ``z`` standard errors of the pointwise difference (``models.screen``);
* candidates the profile fit cannot express (``gplm``, rating-period modes) are always fitted;
* the candidate with as many segments as the controls the sheet describes (``control_types``, two or more)
  is always fitted: the hydrographer's description deserves NUTS, and the profile (one h0) cannot express
  its own offsets.

docs/screen.md shows on the simulation that choices stay as good as with every candidate fitted.

The same profile serves one check after the fit (:func:`own_offsets_check`, run by the summary): does a segmented
fit with one h0 for every control suit the gaugings, or would each control's own zero-flow stage (the BaRatin form)
fit them clearly better? Where it would, the one-h0 fit's curve band is too narrow (docs/validation_findings.md).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from .data import StationData
from .initial import grid_fits, offset_columns, offsets_profile, profile_fit, profile_grid
from .candidates import Candidate, Structure, describes_controls


def screenable(candidate: Candidate) -> bool:
    return not candidate.gplm and not candidate.mode


def _density(resid, leverage, variance):
    """Leave-one-out log density from a weighted least-squares residual and leverage (exact)."""
    var = variance / (1.0 - leverage)
    return -0.5 * (np.log(2 * np.pi * var) + (resid / (1.0 - leverage)) ** 2 / var)


def loo_pointwise(station: StationData, candidate: Candidate, structure: Structure, reselect: bool = False) -> np.ndarray:
    """Leave-one-out log predictive density of each gauging under the candidate's profile fit.

    At the grid point chosen with every gauging (the screen's; optimistic for a segmented candidate: its
    breakpoint was placed with the held-out gauging's help). ``reselect`` (studied in docs/screen.md, not
    used by the screen): each gauging's density comes from the grid point (zero-flow stage and breakpoints)
    that fits best *without it*, so the grid search itself is left out too. For weighted least squares this
    is exact and cheap: at every grid point the sum of squares without gauging i is
    ``S - w_i e_i^2 / (1 - h_ii)``."""
    fit = profile_fit(station, candidate, structure, refine=True)
    x, y = station.stage_rel, np.log(station.discharge)
    variance = station.sd_log**2 + fit["sigma"] ** 2
    weights = 1.0 / variance
    at_optimum = grid_fits(x, y, weights, fit["gap"], np.asarray(fit["breaks"], float)[None, :], leverage=True)
    lpd = _density(at_optimum[1][0], at_optimum[4][0], variance)
    if not reselect:
        return lpd
    best = np.full(len(x), np.inf)  # each gauging's leave-one-out sum of squares at its best grid point
    gaps, combos = profile_grid(station, candidate, structure)
    for gap in gaps:
        fits = grid_fits(x, y, weights, gap, combos, leverage=True)
        if fits is None:
            continue
        _, resid, _, sensible, leverage = fits
        sse = np.einsum("n,cn->c", weights, resid**2)[:, None] - weights * resid**2 / (1.0 - leverage)
        sse = np.where(sensible[:, None] & np.isfinite(sse), sse, np.inf)
        k, i = np.argmin(sse, axis=0), np.arange(len(x))
        better = sse[k, i] < best
        best = np.where(better, sse[k, i], best)
        lpd = np.where(better, _density(resid[k, i], leverage[k, i], variance), lpd)
    return lpd  # a gauging without any sensible grid point keeps the density at the optimum


def screen(station: StationData, candidates: list[Candidate], structure: Structure, z: float,
           reselect: bool = False) -> pd.DataFrame:
    """One row per candidate: ``fitted`` (whether NUTS runs), and for screenable ones ``screen_elpd``,
    and against the best screened candidate before it ``screen_gain`` and ``screen_se``. ``reselect``: see
    :func:`loo_pointwise`."""
    rows, pointwise = [], {}
    described = len(station.control_types) if describes_controls(station.control_types) else 0
    for i, candidate in enumerate(candidates):
        row = {"model": candidate.name, "fitted": True, "screen_elpd": np.nan, "screen_gain": np.nan,
               "screen_se": np.nan, "screen": "always fitted" if i == 0 else "not screenable"}
        if screenable(candidate):
            lpd = loo_pointwise(station, candidate, structure, reselect)
            row["screen_elpd"] = float(lpd.sum())
            if i == 0:
                row["screen"] = "first candidate: always fitted"
            elif pointwise:
                best = max(pointwise, key=lambda name: pointwise[name].sum())
                diff = lpd - pointwise[best]
                gain, se = float(diff.sum()), float(np.sqrt(len(diff)) * np.std(diff))
                passed = bool(gain > z * se)
                row.update(screen_gain=gain, screen_se=se, fitted=passed or candidate.n_segments == described)
                verdict = "fitted" if row["fitted"] else "screened out"
                row["screen"] = (f"{verdict}: profile leave-one-out gain over {best} {gain:.1f} "
                                 f"{'>' if passed else '<='} {z:g} x SE {se:.1f}")
                if row["fitted"] and not passed:
                    row["screen"] += f"; the sheet describes {described} controls"
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


# ------------------------------------------------------------------- own offsets: does one h0 suit the controls?

def own_offsets_pointwise(station: StationData, structure: Structure):
    """Leave-one-out log density of each gauging under the profile fit of the two-control BaRatin form (the upper
    control with its own zero-flow stage; :func:`ratingflow.initial.offsets_profile`), at its best grid point, as
    :func:`loo_pointwise` does for one h0. Returns (lpd, {"gap", "break", "shift"}), or None where no grid point has
    sensible exponents."""
    best = offsets_profile(station, structure)
    if best is None:
        return None
    x, y = station.stage_rel, np.log(station.discharge)
    # the residual SD beyond the gaugings' own, as the one-h0 profile estimates it; then the exact leave-one-out
    cols = offset_columns(x, best["gap"], np.array([best["break"]]), np.array([best["shift"]]))[0]
    variance = station.sd_log**2 + best["sigma"] ** 2
    gram_inv = np.linalg.inv(cols.T @ (cols / variance[:, None]) + 1e-9 * np.eye(cols.shape[1]))
    resid = y - cols @ (gram_inv @ (cols.T @ (y / variance)))
    leverage = np.clip(np.sum((cols @ gram_inv) * cols, axis=1) / variance, 0.0, 1.0 - 1e-6)
    return _density(resid, leverage, variance), {k: best[k] for k in ("gap", "break", "shift")}


def own_offsets_check(station: StationData, candidate: Candidate, structure: Structure,
                      against: Candidate | None = None) -> dict | None:
    """Would the gaugings of a two-segment station be fitted better with the upper control's own zero-flow stage
    than with one h0 for both? The profile leave-one-out gain of the BaRatin form over the one-h0 form
    (:func:`own_offsets_pointwise` against :func:`loo_pointwise`) and its SE, with the profile's zero-flow stages and
    breakpoint (m, station datum). Both grids choose with every gauging; the BaRatin form's has one more dimension,
    so its gain is the more optimistic one. ``against``: the gain over that candidate's profile instead (seg1: would
    the BaRatin form fit a kept power law's gaugings better?). None: not a two-segment power law (with three, the
    grid would grow with the square of the breakpoints), or no sensible grid point."""
    if candidate.n_segments != 2 or not screenable(candidate):
        return None
    one_h0 = loo_pointwise(station, against or candidate, replace(structure, segment_offsets=False))
    found = own_offsets_pointwise(station, structure)
    if found is None:
        return None
    lpd, best = found
    diff = lpd - one_h0
    offset = best["break"] - (best["break"] + best["gap"]) * np.exp(best["shift"])
    return {"gain": float(diff.sum()), "se": float(np.sqrt(len(diff)) * np.std(diff)),
            "h0_m": float(station.stage_offset - best["gap"]), "offsets_m": [float(offset + station.stage_offset)],
            "breakpoints_m": [float(best["break"] + station.stage_offset)]}
