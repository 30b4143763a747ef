"""Starting points for the chains: a profile least-squares fit over h0 and the breakpoints.

Given h0 and the breakpoints, ln Q of the segmented power law is *linear* in ``log_q_ref`` and the
exponents, so a weighted least-squares solve scores every point of a grid of (gap, breakpoints) at
once. The chains start around the best grid point. A segmented fit started at random has many
local optima in its breakpoints (a breakpoint can sit between any two gaugings): started at random,
chains settle in different ones and never mix. Starting at the profile optimum, with a jitter,
puts them in the main mode.
"""
from __future__ import annotations

from dataclasses import replace
from itertools import combinations

import numpy as np

from .data import StationData
from .candidates import Candidate, Structure, types_serve

#: grid sizes: gaps (geometric) and breakpoint positions per breakpoint
N_GAPS = 24
N_BREAKS = 24
#: gaps of the refinement between the best coarse gap's neighbours (a step of about 4 %)
N_REFINE = 16
#: breakpoint combinations the refinement tries: the best ones at the best coarse gap
REFINE_COMBOS = 12
#: floor of the residual SD used to weight gaugings
_MIN_SIGMA = 0.03


def _gap_grid(station: StationData) -> np.ndarray:
    span = max(float(np.ptp(station.stage)), 0.01)
    if station.h0_range is not None:
        mean, sd = station.gap_prior()
        return np.exp(np.linspace(mean - 2 * sd, mean + 2 * sd, N_GAPS))
    return np.geomspace(max(0.003 * span, 1e-3), 3.0 * span, N_GAPS)


def _break_grid(lo: float, hi: float, stage_rel: np.ndarray) -> np.ndarray:
    """Candidate breakpoints: midpoints between neighbouring gauged stages inside ``[lo, hi]``."""
    x = np.unique(stage_rel)
    mids = (x[1:] + x[:-1]) / 2
    mids = mids[(mids >= lo) & (mids <= hi)]
    if len(mids) == 0:
        return np.array([(lo + hi) / 2])
    if len(mids) > N_BREAKS:
        mids = np.quantile(mids, np.linspace(0, 1, N_BREAKS))
    return mids


def design(x: np.ndarray, gap: float, breaks) -> np.ndarray:
    """Columns of the segmented power law, linear in (ln Q at x = -gap + 1, b_1, b_2 - b_1, ...)."""
    log_depth = np.log(x + gap)
    return np.stack([np.ones_like(x), log_depth] + [np.maximum(log_depth - np.log(bk + gap), 0.0) for bk in breaks],
                    axis=1)


def grid_fits(x, y, weights, gap, combos: np.ndarray, leverage: bool = False):
    """Weighted least squares at one gap (or one gap per combination: shape (c,)) and every breakpoint combination
    (rows of ``combos``) at once: ``(coef, residuals, exponents, sensible)``, plus the leverages with ``leverage``
    (shapes (c, p), (c, n), (c, k + 1), (c,)[, (c, n)]). A combination giving an exponent outside 0.2-8 is not
    ``sensible``. None where the normal equations are singular."""
    p = combos.shape[1] + 2
    gaps = np.broadcast_to(np.asarray(gap, float), (len(combos),))
    log_depth = np.log(x[None, :] + gaps[:, None])
    hinges = np.maximum(log_depth[:, :, None] - np.log(combos + gaps[:, None])[:, None, :], 0.0)
    cols = np.concatenate([np.ones_like(log_depth)[..., None], log_depth[..., None], hinges], axis=2)
    wd = cols * weights[None, :, None]
    gram = np.matmul(cols.transpose(0, 2, 1), wd) + 1e-9 * np.eye(p)
    try:
        coef = np.linalg.solve(gram, np.matmul(wd.transpose(0, 2, 1), y[:, None]))[..., 0]
        gram_inv = np.linalg.inv(gram) if leverage else None
    except np.linalg.LinAlgError:
        return None
    resid = y[None, :] - np.matmul(cols, coef[..., None])[..., 0]
    b = np.cumsum(coef[:, 1:], axis=1)
    sensible = np.all((b >= 0.2) & (b <= 8), axis=1) & np.all(np.isfinite(resid), axis=1)
    out = (coef, resid, b, sensible)
    if leverage:  # h_nn = w_n x_n' G^-1 x_n (matmul: a three-operand einsum is several times slower here)
        out += (np.clip(np.sum((cols @ gram_inv) * cols, axis=2) * weights, 0.0, 1.0 - 1e-6),)
    return out


def _grid_search(x, y, weights, gaps, combos, refine: bool = False) -> tuple[dict | None, dict | None]:
    """(coarse, refined): the weighted least-squares optimum over every (gap, breakpoints) of the grid, all solved
    at once (:func:`_best_at`). Combinations giving an exponent outside 0.2-8 are out.

    ``refine`` (the screen's): the coarse gap grid is then refined between the best gap's neighbours (``N_REFINE``
    gaps, with the ``REFINE_COMBOS`` combinations that came closest at the best coarse gap). Every gauging's
    residual depends on the gap, and a gap one coarse step (35 %) off the optimum leaves a curvature in the
    residuals that a breakpoint can take up: on one-control stations the screen then saw a gain for a second
    segment that NUTS, whose gap is continuous, does not (docs/screen.md). The chains' start does not need it.
    Without ``refine`` both are the coarse optimum."""
    found, sse = _best_at(x, y, weights, gaps, combos)
    best_at = _first_best(found)
    coarse = best = None if best_at is None else found[best_at]
    if best is None or not refine or len(gaps) < 2 or N_REFINE < 1:
        return coarse, best
    combos = combos[np.argsort(sse[best_at])[:REFINE_COMBOS]]
    fine = np.geomspace(gaps[max(best_at - 1, 0)], gaps[min(best_at + 1, len(gaps) - 1)], N_REFINE)
    refined, _ = _best_at(x, y, weights, fine, combos)
    at = _first_best([best] + refined)
    return coarse, ([best] + refined)[at]


def _first_best(found: list) -> int | None:
    """Index of the lowest sum of squares among grid optima (None: none), the first of equal ones."""
    scores = [f["sse"] if f is not None else np.inf for f in found]
    if not scores or not np.isfinite(min(scores)):
        return None
    return int(np.argmin(scores))


#: elements of the design arrays one batched solve of :func:`_best_at_direct` may build (gaps x combinations x gaugings
#: x columns): about 16 MB of float64
_CHUNK = 2_000_000


def _best_at(x, y, weights, gaps, combos) -> tuple[list, np.ndarray]:
    """At each gap, the best sensible breakpoint combination (None: none), and every combination's weighted sum
    of squares (gaps, combinations; inf where not sensible). A grid with breakpoints is scored from its sums
    (:func:`_sse_table`), and each gap's best combination solved again as :func:`grid_fits` solves it, so that its
    figures are those of the direct solve (the 500 benchmark stations' grids of every candidate: the same optima and
    starts, bit for bit, in 7.2 s against 48.0); without breakpoints, or where the sums' system is singular, every
    combination is solved directly (:func:`_best_at_direct`)."""
    gaps = np.asarray(gaps, float)
    table = _sse_table(x, y, weights, gaps, combos) if combos.shape[1] else None
    if table is None:
        return _best_at_direct(x, y, weights, gaps, combos)
    best = np.argmin(table, axis=1)
    rows = np.flatnonzero(np.isfinite(table[np.arange(len(gaps)), best]))
    fits = grid_fits(x, y, weights, gaps[rows], combos[best[rows]]) if len(rows) else None
    sse = _sse_of(fits, weights, len(rows))
    if not np.all(np.isfinite(sse)):  # a combination the sums found sensible that the direct solve does not
        return _best_at_direct(x, y, weights, gaps, combos)
    found: list = [None] * len(gaps)
    for j, g in enumerate(rows):
        found[g] = {"sse": float(sse[j]), "gap": gaps[g], "breaks": combos[best[g]].copy(), "coef": fits[0][j],
                    "b": fits[2][j]}
    return found, table


def _sse_table(x, y, weights, gaps, combos) -> np.ndarray | None:
    """The weighted sums of squares of :func:`grid_fits` at every (gap, combination), inf where not sensible, from
    the sums over the gaugings of each gap's columns: the hinge of each breakpoint value enters the normal equations
    of every combination it belongs to through the same sums, so a gap costs one product of its hinges
    (gaugings x breakpoint values) instead of one per combination: two breakpoints make 276 combinations at each of
    24 gaps, and the screen took 48 ms a station solving them one by one, 9 ms now (issue 16). The sum of squares is
    Sum w y^2 - coef . rhs (less the ridge's share), which rounds differently from the residuals' sum: the best
    combination at each gap is solved again directly (:func:`_best_at`). None where a system is singular."""
    k, p = combos.shape[1], combos.shape[1] + 2
    values, index = np.unique(combos, return_inverse=True)
    index = index.reshape(combos.shape)
    log_depth = np.log(x[None, :] + gaps[:, None])  # (g, n)
    hinge = np.maximum(log_depth[:, :, None] - np.log(values[None, None, :] + gaps[:, None, None]), 0.0)  # (g, n, m)
    weighted = hinge * weights[None, :, None]
    wl = weights[None, :] * log_depth
    by_value = {"one": weighted.sum(axis=1), "log": np.matmul(log_depth[:, None, :], weighted)[:, 0],
                "y": np.matmul(y[None, None, :], weighted)[:, 0]}  # (g, m) each
    cross = np.matmul(hinge.transpose(0, 2, 1), weighted)  # (g, m, m)
    gram = np.zeros((len(gaps), len(combos), p, p))
    rhs = np.zeros((len(gaps), len(combos), p))
    gram[..., 0, 0] = weights.sum()
    gram[..., 0, 1] = gram[..., 1, 0] = wl.sum(axis=1)[:, None]
    gram[..., 1, 1] = (wl * log_depth).sum(axis=1)[:, None]
    rhs[..., 0] = (weights * y).sum()
    rhs[..., 1] = (wl * y[None, :]).sum(axis=1)[:, None]
    for i in range(k):
        gram[..., 0, 2 + i] = gram[..., 2 + i, 0] = by_value["one"][:, index[:, i]]
        gram[..., 1, 2 + i] = gram[..., 2 + i, 1] = by_value["log"][:, index[:, i]]
        rhs[..., 2 + i] = by_value["y"][:, index[:, i]]
        for j in range(k):
            gram[..., 2 + i, 2 + j] = cross[:, index[:, i], index[:, j]]
    gram += 1e-9 * np.eye(p)
    try:
        coef = np.linalg.solve(gram, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return None
    sse = (weights * y * y).sum() - np.sum(coef * rhs, axis=-1) - 1e-9 * np.sum(coef * coef, axis=-1)
    b = np.cumsum(coef[..., 1:], axis=-1)
    sensible = np.all((b >= 0.2) & (b <= 8), axis=-1) & np.isfinite(sse)
    return np.where(sensible, sse, np.inf)


def _best_at_direct(x, y, weights, gaps, combos) -> tuple[list, np.ndarray]:
    """:func:`_best_at` with every combination solved by :func:`grid_fits`. The gaps are solved together, as many at
    once as :data:`_CHUNK` allows: one call per gap cost the screen more in Python than in arithmetic (seg1 and seg2
    have one or a few dozen combinations). Each (gap, combination) is solved as on its own, so the figures do not
    depend on the chunking."""
    n_combos = len(combos)
    per_chunk = max(1, _CHUNK // max(n_combos * len(x) * (combos.shape[1] + 2), 1))
    found, sse = [], np.full((len(gaps), n_combos), np.inf)
    for start in range(0, len(gaps), per_chunk):
        part = gaps[start:start + per_chunk]
        fits = grid_fits(x, y, weights, np.repeat(part, n_combos), np.tile(combos, (len(part), 1)))
        if fits is None:  # a singular system somewhere in the chunk: gap by gap, as each alone would be
            for g, gap in enumerate(part):
                one = grid_fits(x, y, weights, gap, combos)
                sse[start + g] = _sse_of(one, weights, n_combos)
                i = int(np.argmin(sse[start + g]))
                found.append(None if not np.isfinite(sse[start + g, i]) else
                             {"sse": float(sse[start + g, i]), "gap": gap, "breaks": combos[i].copy(),
                              "coef": one[0][i], "b": one[2][i]})
            continue
        coef, resid, b, sensible = fits
        block = _sse_of(fits, weights, n_combos).reshape(len(part), n_combos)
        sse[start:start + len(part)] = block
        for g, gap in enumerate(part):
            i = int(np.argmin(block[g]))
            row = g * n_combos + i
            found.append(None if not np.isfinite(block[g, i]) else
                         {"sse": float(block[g, i]), "gap": gap, "breaks": combos[i].copy(), "coef": coef[row],
                          "b": b[row]})
    return found, sse


def _sse_of(fits, weights, n_combos: int) -> np.ndarray:
    """Weighted sum of squares of :func:`grid_fits`' rows, inf where not sensible (all inf: singular)."""
    if fits is None:
        return np.full(n_combos, np.inf)
    _, resid, _, sensible = fits
    sse = np.einsum("n,cn->c", weights, resid**2)
    return np.where(sensible & np.isfinite(sse), sse, np.inf)


#: profile fits already computed in this process (the screen's refined ones, the chains' start's coarse ones)
_PROFILES: dict = {}


def profile_fit(station: StationData, candidate: Candidate, structure: Structure, refine: bool = False) -> dict:
    """Best (gap, breakpoints, log_q_ref, exponents, sigma) of the segmented power law on a grid; ``refine``: with
    the gap refined (the screen's, see :func:`_grid_search`)."""
    key = (station.station_id, candidate.n_segments, structure.n_breaks, station.stage.tobytes(),
           station.discharge.tobytes(), station.discharge_sd.tobytes(), station.h0_range, station.break_ranges)
    if (key, refine) not in _PROFILES:
        if len(_PROFILES) > 4096:
            _PROFILES.clear()
        # the refined search passes through the coarse optimum: keep both (the chains' start uses the coarse one)
        coarse, refined = _grid_search(*_weighted(station), *profile_grid(station, candidate, structure), refine)
        _PROFILES[key, False] = _profile_fit(station, candidate, coarse)
        if refine:
            _PROFILES[key, True] = _profile_fit(station, candidate, refined)
    return _PROFILES[key, refine]


def profile_grid(station: StationData, candidate: Candidate, structure: Structure) -> tuple[np.ndarray, np.ndarray]:
    """The grid of the profile fit: gaps (g,) and breakpoint combinations (c, segments - 1), ordered."""
    x = station.stage_rel
    n_breaks = candidate.n_segments - 1
    lo, hi = station.break_ranges_rel(max(structure.n_breaks, 1), candidate.n_segments, structure.segment_offsets)
    grids = [_break_grid(lo[k], hi[k], x) for k in range(n_breaks)]
    if n_breaks == 0:
        combos = [()]
    elif len({tuple(g) for g in grids}) == 1:
        combos = list(combinations(grids[0], n_breaks)) or [tuple(grids[0][:1]) * n_breaks]
    else:
        combos = [c for c in np.array(np.meshgrid(*grids)).reshape(n_breaks, -1).T if np.all(np.diff(c) > 0)]
        combos = combos or [tuple(g[0] for g in grids)]
    return _gap_grid(station), np.asarray(combos, float).reshape(len(combos), n_breaks)


def _weighted(station: StationData):
    """(x, ln Q, weights) of the profile's least squares."""
    return station.stage_rel, np.log(station.discharge), 1.0 / (station.sd_log**2 + _MIN_SIGMA**2)


def _profile_fit(station: StationData, candidate: Candidate, best: dict | None) -> dict:
    """The profile fit's figures from a grid optimum (None: a plain default start)."""
    x, y, _ = _weighted(station)
    n_breaks = candidate.n_segments - 1
    if best is None:  # no grid point with sensible exponents: a plain default start
        span = max(float(np.ptp(station.stage)), 0.05)
        best = {"gap": 0.2 * span, "breaks": np.quantile(x, np.linspace(0, 1, n_breaks + 2)[1:-1]),
                "b": np.full(candidate.n_segments, 1.8), "coef": None, "sse": np.nan}
        log_depth = np.log(x + best["gap"])
        best["coef"] = np.r_[np.median(y) - 1.8 * np.median(log_depth), 1.8, np.zeros(n_breaks)]
    gap, breaks = best["gap"], best["breaks"]
    resid = y - design(x, gap, breaks) @ best["coef"]
    return {
        "gap": float(gap),
        "breaks": breaks,
        "coef": best["coef"],
        "stage_offset": station.stage_offset,
        "b": best["b"],
        "log_q_ref": float(np.dot(design(np.array([station.stage_ref]), gap, breaks)[0], best["coef"])),
        # residual spread beyond the gaugings' own uncertainty
        "sigma": float(max(np.sqrt(max(np.mean(resid**2) - np.mean(station.sd_log**2), 0.0)), _MIN_SIGMA)),
    }


def residuals(stage: np.ndarray, discharge: np.ndarray, fit: dict) -> np.ndarray:
    """ln Q of gaugings (stage [m] on the station datum, discharge [m3/s]) minus the curve of a
    :func:`profile_fit`. A gauging at or below that curve's h0 gets ``inf``."""
    x = np.asarray(stage, float) - fit["stage_offset"]
    depth = x + fit["gap"]
    safe = np.where(depth > 0, x, 1e-9 - fit["gap"])
    out = np.log(discharge) - design(safe, fit["gap"], fit["breaks"]) @ fit["coef"]
    return np.where(depth > 0, out, np.inf)


#: shifts ln(d_2 / d'_2) of the upper control's depth at the breakpoint, tried by :func:`offsets_profile`
OFFSET_SHIFTS = np.linspace(-1.5, 1.0, 11)


def offset_columns(x: np.ndarray, gap: float, breaks: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Columns of the two-control BaRatin form (the upper control with its own offset, a sharp change), linear in
    (ln a_1, b_1, b_2) given the gap, breakpoints (m,) and shifts ln(d_2 / d'_2) (m,): shape (m, n, 3). The curve
    of :func:`ratingflow.model.rating_model` with ``transition`` 0."""
    log_depth = np.log(x + gap)
    rise = np.maximum(log_depth[None, :] - np.log(breaks + gap)[:, None], 0.0)  # ln depth over the breakpoint's
    upper = np.log1p(np.expm1(rise) * np.exp(-shifts)[:, None])
    return np.stack([np.ones_like(rise), log_depth[None, :] - rise, upper], axis=2)


def _wls(cols: np.ndarray, y: np.ndarray, weights: np.ndarray):
    """Weighted least squares of every design in ``cols`` (m, n, p): coefficients (m, p) and residuals (m, n);
    None where the normal equations are singular."""
    wd = cols * weights[None, :, None]
    gram = np.matmul(cols.transpose(0, 2, 1), wd) + 1e-9 * np.eye(cols.shape[2])
    try:
        coef = np.linalg.solve(gram, np.matmul(wd.transpose(0, 2, 1), y[:, None]))[..., 0]
    except np.linalg.LinAlgError:
        return None
    return coef, y[None, :] - np.matmul(cols, coef[..., None])[..., 0]


def offsets_profile(station: StationData, structure: Structure) -> dict | None:
    """Profile least squares of the two-control BaRatin form (the upper control with its own zero-flow stage): the
    grid of (gap, breakpoint), with breakpoints as a BaRatin fit allows them, times :data:`OFFSET_SHIFTS`. The best
    point's gap, breakpoint (m, relative), shift ln(d_2 / d'_2), coefficients (ln a_1, b_1, b_2) and residual SD beyond
    the gaugings' own; None where no grid point has sensible exponents (0.2-8)."""
    x, y = station.stage_rel, np.log(station.discharge)
    gaps, combos = profile_grid(station, Candidate("seg2"), replace(structure, segment_offsets=True))
    breaks, shifts = np.repeat(combos[:, 0], len(OFFSET_SHIFTS)), np.tile(OFFSET_SHIFTS, len(combos))
    weights = 1.0 / (station.sd_log**2 + _MIN_SIGMA**2)
    best, best_sse = None, np.inf
    for gap in gaps:
        fits = _wls(offset_columns(x, gap, breaks, shifts), y, weights)
        if fits is None:
            continue
        coef, resid = fits
        sse = np.sum(weights * resid**2, axis=1)
        sse = np.where(np.all((coef[:, 1:] >= 0.2) & (coef[:, 1:] <= 8), axis=1) & np.isfinite(sse), sse, np.inf)
        i = int(np.argmin(sse))
        if sse[i] < best_sse:
            best, best_sse = {"gap": float(gap), "break": float(breaks[i]), "shift": float(shifts[i]),
                              "coef": coef[i]}, sse[i]
    if best is None:
        return None
    mean_sq = best_sse / np.sum(weights)
    best["sigma"] = float(max(np.sqrt(max(mean_sq - np.mean(station.sd_log**2), 0.0)), _MIN_SIGMA))
    return best


def _logit(p):
    p = np.clip(p, 0.02, 0.98)
    return np.log(p / (1 - p))


def init_centre(station: StationData, candidate: Candidate, structure: Structure) -> dict[str, np.ndarray]:
    """The chains' starting centre for one candidate, in unconstrained space, for every site of
    ``structure`` (sites the candidate does not use start at their prior's centre)."""
    if structure.max_periods > 1:
        return _period_centre(station, candidate, structure)
    fit = profile_fit(station, candidate, structure)
    b = np.full(structure.max_segments, fit["b"][-1])
    b[: len(fit["b"])] = fit["b"]
    centre = {
        "gap": np.float32(np.log(fit["gap"])),
        "log_q_ref": np.float32(fit["log_q_ref"]),
        "sigma_z": np.float32(fit["sigma"]),  # sigma = |sigma_z|
        "b": np.log(b).astype(np.float32),
    }
    if structure.n_breaks:
        lo, hi = station.break_ranges_rel(structure.n_breaks, candidate.n_segments, structure.segment_offsets)
        u = np.zeros(structure.n_breaks)
        previous = -np.inf
        for k, bk in enumerate(fit["breaks"]):
            start = max(lo[k], previous)
            u[k] = _logit((bk - start) / max(hi[k] - start, 1e-9))
            previous = bk
        centre["break_u"] = u.astype(np.float32)
        if structure.segment_offsets:  # the grid shares h0: the upper controls start at h0's depth
            from .model import ordered_breakpoints  # JAX: only the sampler's start needs it

            breaks = np.asarray(ordered_breakpoints(u.astype(np.float32), lo, hi), np.float64)
            centre["offset_log_depth"] = np.log(np.maximum(breaks + fit["gap"], 1e-6)).astype(np.float32)
            if candidate.n_segments == 2:
                centre.update(_offsets_centre(station, structure, lo, hi, centre))
    if structure.gplm_terms:
        centre["exponent_w"] = np.zeros(structure.gplm_terms, np.float32)
    if structure.varying_sigma:
        centre["sigma_slope"] = np.float32(0.0)
    return centre


def _offsets_centre(station: StationData, structure: Structure, lo, hi, centre: dict) -> dict:
    """The start of a two-segment fit in the BaRatin form at its own profile optimum (:func:`offsets_profile`: the
    upper control's zero-flow stage found, not h0's), where one is found; else nothing changes."""
    best = offsets_profile(station, structure)
    if best is None:
        return {}
    gap, brk, shift = best["gap"], best["break"], best["shift"]
    b = np.array(centre["b"], np.float64)
    b[:2] = np.log(best["coef"][1:])
    if not types_serve(station.control_types, 2):
        # the upper exponent is sampled as if it kept the lower control's offset (ratingflow.model.control_exponents)
        rise = max(max(float(np.ptp(station.stage)), 1e-3) - brk, 1e-3)
        b[1] += np.log(np.log1p(rise * np.exp(-shift) / (brk + gap)) / np.log1p(rise / (brk + gap)))
    u = np.array(centre["break_u"], np.float64)
    u[0] = _logit((brk - lo[0]) / max(hi[0] - lo[0], 1e-9))
    depth = np.array(centre["offset_log_depth"], np.float64)
    depth[0] = np.log(brk + gap) + shift
    ref = offset_columns(np.array([station.stage_ref]), gap, np.array([brk]), np.array([shift]))[0, 0]
    return {"gap": np.float32(np.log(gap)), "b": b.astype(np.float32), "break_u": u.astype(np.float32),
            "offset_log_depth": depth.astype(np.float32), "log_q_ref": np.float32(ref @ best["coef"]),
            "sigma_z": np.float32(best["sigma"])}


def _period_centre(station: StationData, candidate: Candidate, structure: Structure) -> dict[str, np.ndarray]:
    """Starting centre of a rating-period program (:func:`ratingflow.model.periods_model`): the shape of
    the station's timeless profile fit in every row; each period's offset and coefficient from a
    1-segment profile fit of its own gaugings (from the timeless fit where it has fewer than 6)."""
    timeless = Structure(max_segments=structure.max_segments, transition=structure.transition,
                         varying_sigma=structure.varying_sigma)
    base = init_centre(station, Candidate(candidate.base), timeless)
    fit = profile_fit(station, Candidate(candidate.base), timeless)
    n_p = structure.max_periods
    floor, ref = station.period_frame(n_p)
    gap = np.full(n_p, np.log(fit["gap"]))
    log_q_ref = np.full(n_p, fit["log_q_ref"])
    if station.period is not None:
        for p in range(station.n_periods):
            part = station.period_station(p) if np.sum(station.period == p) >= 6 else None
            if part is None:
                gap[p] = np.log(max(floor[p] + fit["gap"], 1e-3))
                continue
            own = profile_fit(part, Candidate("seg1"), Structure())
            gap[p], log_q_ref[p] = np.log(own["gap"]), own["log_q_ref"]
    centre = {
        "gap": gap.astype(np.float32),
        "log_q_ref": log_q_ref.astype(np.float32),
        "sigma_z": base["sigma_z"],
        "b": np.tile(base["b"], (n_p, 1)).astype(np.float32),
    }
    if structure.n_breaks:
        centre["break_u"] = np.tile(base["break_u"], (n_p, 1)).astype(np.float32)
    if structure.varying_sigma:
        centre["sigma_slope"] = np.float32(0.0)
    return centre


#: spread of the chains' starting points around the centre (unconstrained units)
INIT_JITTER = {"gap": 0.3, "log_q_ref": 0.1, "sigma_z": 0.01, "b": 0.05, "break_u": 0.3, "exponent_w": 0.3,
               "sigma_slope": 0.2, "offset_log_depth": 0.1}
