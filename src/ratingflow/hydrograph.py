"""Discharge series from a stage record and a fit's posterior draws, in chunks of time.

For each posterior draw ``d`` (a whole curve, so errors are correlated in time as the curve's are) and time
step ``t``, the model itself (:func:`ratingflow.model.rating_model`, traced with the draw substituted) gives

    ln Q[d, t] = ln curve_d(h[t] + e_ns[d, t] + e_sys[d, block(t)]) + eps[d, t]

* ``e_ns ~ N(0, nonsys_sd[t])``: stage error independent at each step;
* ``e_sys ~ N(0, sys_sd[t])`` per draw and block, shared by the steps of a block (a sensor calibration);
* ``eps``: the model's residual (structural) error, drawn from the likelihood's own distribution with no gauging
  error, independent between steps (as in BaRatinAGE).

Each chunk of :data:`CHUNK` steps is one call of a compiled program (one per model structure and number of draws,
shared through the persistent cache); its (draws x steps) block is summarised at once (median and HPDI, as
``numpyro.diagnostics.hpdi``) and folded into per-draw daily volumes, so no dense (draws x record) array is kept.
Random keys are folded per chunk from one key, so the draws depend on the seed and the record, not on batching.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers

from .exported import on_device
from .intervals import hpdi_of_sorted
from .candidates import Priors, Structure
from .mixture import padded as full_set
from .model import model_sites, rating_model

#: time steps per compiled chunk (fixed: the random draws of a step do not depend on the record's length)
CHUNK = 4096
#: seconds per day
DAY = 86400.0


def _one_draw(sample, key, stage, context, structure, priors):
    """ln curve and ln discharge (with the structural error) of one draw at its stages."""
    model = partial(rating_model, structure=structure, priors=priors)
    model = handlers.seed(handlers.substitute(model, data=model_sites(sample)), key)
    trace = handlers.trace(model).get_trace(stage, jnp.zeros_like(stage), context)
    return trace["log_discharge"]["value"]


@partial(jax.jit, static_argnames=("structure", "priors"))
def _chunk(key, samples, stage, nonsys_sd, sys_z, block, sys_sd, context, structure, priors):
    """Discharge (draws, CHUNK) at stages ``stage`` (relative to the fit's stage origin); ``sys_z`` (draws, blocks)
    are the standard-normal systematic errors, ``block`` each step's block."""
    draws = samples["gap"].shape[0]
    k_stage, k_model = jax.random.split(key)
    noisy = (stage[None, :] + nonsys_sd[None, :] * jax.random.normal(k_stage, (draws, stage.shape[0]))
             + sys_z[:, block] * sys_sd[None, :])
    log_q = jax.vmap(_one_draw, in_axes=(0, 0, 0, None, None, None))(
        samples, jax.random.split(k_model, draws), noisy, context, structure, priors)
    return jnp.where(noisy + samples["gap"][:, None] <= 0, 0.0, jnp.exp(log_q))


@dataclass
class Windows:
    """How time steps integrate into days: ``volume[day] = sum over slots of weight[slot, t] * Q[t]`` for the
    days ``day[slot, t]`` (slot 0: the day of the step before, 1: its own day, 2: the day of the step after),
    from linear interpolation between consecutive valid steps no further apart than the longest gap."""

    days: np.ndarray  # (W,) datetime64[D], every day from the first step's to the last's
    day: np.ndarray  # (3, T) int: window index per slot
    weight: np.ndarray  # (3, T) float64, seconds
    covered: np.ndarray  # (W,) seconds of each day covered by interpolated intervals


def windows(time: np.ndarray, valid: np.ndarray, max_gap_s: float) -> Windows:
    """Integration weights (see :class:`Windows`) of sorted times ``time`` (datetime64) with valid values
    ``valid``; an interval is integrated when both ends are valid and at most ``max_gap_s`` (<= 1 day) apart."""
    if max_gap_s > DAY:
        raise ValueError("the longest interpolated gap is at most one day")
    t = time.astype("datetime64[ns]")
    n = len(t)
    first = t[0].astype("datetime64[D]") if n else np.datetime64("1970-01-01", "D")
    day_of = (t.astype("datetime64[D]") - first).astype(np.int64)
    n_days = int(day_of[-1]) + 1 if n else 0
    sec = (t - first.astype("datetime64[ns]")).astype(np.int64) / 1e9
    day = np.stack([np.r_[day_of[:1], day_of[:-1]], day_of, np.r_[day_of[1:], day_of[-1:]]]) if n else np.zeros((3, 0), int)
    weight = np.zeros((3, n))
    covered = np.zeros(n_days)
    if n > 1:
        dt = np.diff(sec)
        use = valid[:-1] & valid[1:] & (dt <= max_gap_s) & (dt > 0)
        i = np.flatnonzero(use)
        left, right, span = sec[i], sec[i + 1], dt[i]
        boundary = (day_of[i] + 1) * DAY  # the end of the left step's day
        cut = np.minimum(right, boundary)

        def piece(a, b):
            """(coefficient of the left value, of the right value) of the integral over [a, b]."""
            ua, ub = (a - left) / span, (b - left) / span
            return span * ((ub - ua) - (ub**2 - ua**2) / 2), span * (ub**2 - ua**2) / 2

        l_a, r_a = piece(left, cut)  # in the left step's day
        l_b, r_b = piece(cut, right)  # in the right step's day (zero when the interval does not cross midnight)
        np.add.at(weight[1], i, l_a)  # left step, its own day
        np.add.at(weight[2], i, l_b)  # left step, the next step's day
        np.add.at(weight[0], i + 1, r_a)  # right step, the previous step's day
        np.add.at(weight[1], i + 1, r_b)  # right step, its own day
        np.add.at(covered, day_of[i], cut - left)
        np.add.at(covered, day_of[i + 1], right - cut)
    days = first + np.arange(n_days)
    return Windows(days, day, weight, covered)


@dataclass
class Series:
    """The summaries of one station's discharge series."""

    median: np.ndarray  # (T,) m3/s, NaN where not computed
    bounds: dict  # prob -> (lower (T,), upper (T,))
    daily_volume: np.ndarray  # (draws, W) m3 over the covered part of each day
    windows: Windows


def discharge_series(key, samples: dict, stage_rel: np.ndarray, nonsys_sd: np.ndarray, sys_index: np.ndarray,
                     sys_sd: np.ndarray, compute: np.ndarray, win: Windows, context: dict, structure: Structure,
                     priors: Priors = Priors(), probs=(0.9, 0.95), parts: np.ndarray | None = None,
                     mixture: list | None = None) -> Series:
    """Discharge at every step where ``compute`` is true, summarised per step and integrated per day.

    Args:
        key: the station's discharge key.
        samples: draws of the sampled sites, each (draws, ...) float32 (see :func:`ratingflow.predict.flat_draws`);
            with ``parts``, a list of such dicts and contexts, one per rating period.
        stage_rel: stage of each step relative to the fit's stage origin [m] (T,).
        nonsys_sd, sys_sd: stage errors (1 SD, m) per step; sys_index: block of each step (-1: none).
        compute: steps to compute (valid stage within the limit).
        win: integration weights (:func:`windows`) of the same steps.
        parts: rating period (0-based) of each step, when ``samples`` and ``context`` are lists.
        mixture: a timeless station's stacking mixture (:func:`ratingflow.mixture.components`), in place of
            ``samples``, ``context`` and ``structure``: each component's draws run the program of a full set
            (:func:`ratingflow.mixture.padded`) with keys folded from the chunk's by its place, and its rows are
            laid after the previous component's.
    """
    if mixture:
        counts = [len(c.samples["gap"]) for c in mixture]
        full = sum(counts)
        samples_list = [[(full_set(c.samples, full), c.context, c.structure) for c in mixture]]
    else:
        counts = None
        samples_list = [[(d, c, structure)] for d, c in zip(samples if isinstance(samples, list) else [samples],
                                                              context if isinstance(context, list) else [context])]
    part = np.zeros(len(stage_rel), int) if parts is None else parts
    draws = sum(counts) if counts else len(samples_list[0][0][0]["gap"])
    n = len(stage_rel)
    median = np.full(n, np.nan, np.float32)
    bounds = {p: (np.full(n, np.nan, np.float32), np.full(n, np.nan, np.float32)) for p in probs}
    volumes = np.zeros((draws, len(win.days)))
    blocks = np.unique(sys_index[sys_index >= 0])
    k_sys, k_steps = jax.random.split(key)
    # systematic errors per draw and block, padded to a power of two (few compiled shapes)
    width = 1 << max(len(blocks) - 1, 0).bit_length()
    sys_z = [jax.random.normal(k_sys if c == 0 else jax.random.fold_in(k_sys, c), (draws, width))
             for c in range(len(samples_list[0]))]
    block_pos = np.where(sys_index >= 0, np.searchsorted(blocks, sys_index), 0).astype(np.int32)
    sys_sd = np.where(sys_index >= 0, sys_sd, 0.0)

    def padded(values, idx, dtype=np.float32):
        out = np.zeros(CHUNK, dtype)
        out[:len(idx)] = values[idx]
        return on_device(out)

    jobs = []
    for p in range(len(samples_list)):
        steps = np.flatnonzero(compute & (part == p))
        jobs += [(p, steps[lo:lo + CHUNK]) for lo in range(0, len(steps), CHUNK)]
    device = [[(on_device(d, np.float32), on_device(c), st)
               for d, c, st in components] for components in samples_list]

    def dispatch(number):
        p, idx = jobs[number]
        chunk_key = jax.random.fold_in(k_steps, number)
        return [_chunk(chunk_key if c == 0 else jax.random.fold_in(chunk_key, c), d, padded(stage_rel, idx),
                       padded(nonsys_sd, idx), sys_z[c], padded(block_pos, idx, np.int32), padded(sys_sd, idx), ctx, st,
                       priors) for c, (d, ctx, st) in enumerate(device[p])]

    pending = dispatch(0) if jobs else None
    for number, (_, idx) in enumerate(jobs):
        result = pending
        # the next chunk runs (XLA's threads) while this one is summarised (NumPy, this thread)
        pending = dispatch(number + 1) if number + 1 < len(jobs) else None
        q = (np.concatenate([np.asarray(r)[:k, :len(idx)] for r, k in zip(result, counts)]) if counts
             else np.asarray(result[0])[:, :len(idx)])
        rows = np.ascontiguousarray(q.T)
        rows.sort(axis=1)
        median[idx] = 0.5 * (rows[:, (draws - 1) // 2] + rows[:, draws // 2])
        for prob in probs:
            lo_b, hi_b = hpdi_of_sorted(rows, prob, axis=1)
            bounds[prob][0][idx], bounds[prob][1][idx] = lo_b, hi_b
        fold_days(q, idx, win, volumes)
    return Series(median, bounds, volumes, win)


def fold_days(q: np.ndarray, idx: np.ndarray, win: Windows, volumes: np.ndarray) -> None:
    """Add the daily volumes of discharge ``q`` (draws, steps) at steps ``idx`` (sorted) into ``volumes`` (draws, W):
    one matrix product with the chunk's (steps x days) weights."""
    days = win.day[:, idx]
    first, last = int(days.min()), int(days.max())
    weights = np.zeros((len(idx), last - first + 1), np.float32)
    for slot in range(3):
        np.add.at(weights, (np.arange(len(idx)), days[slot] - first), win.weight[slot, idx])
    volumes[:, first:last + 1] += q @ weights
