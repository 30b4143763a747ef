"""Curves and new-gauging predictions from parameter draws, with ``Predictive`` under one jit.

``Predictive`` called eagerly re-traces the model every time (about 0.5 s a station); jitted with
the stage grid padded to a multiple of :data:`GRID_CHUNK`, one compiled program per model
structure serves every station and grid length.
"""
from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import Predictive

from .candidates import Priors, Structure
from .model import model_sites, rating_model

#: grids are padded to a multiple of this many stages
GRID_CHUNK = 256
#: the parameters a curve is drawn from (those of its structure), by the names of the outputs
#: (``sigma``; :func:`ratingflow.model.model_sites` gives the sampled site behind it)
SAMPLED_SITES = ("gap", "log_q_ref", "sigma", "b", "b_shared", "break_u", "offset_log_depth", "exponent_w",
                 "sigma_slope")


@partial(jax.jit, static_argnames=("structure", "priors"))
def _predict(key, samples, stage, sd_log, context, structure, priors):
    predictive = Predictive(
        partial(rating_model, structure=structure, priors=priors), posterior_samples=samples,
        return_sites=["log_curve", "log_discharge"],
    )
    out = predictive(key, stage, sd_log, context)
    return out["log_curve"], out["log_discharge"]


def predict(key, samples: dict, stage_rel: np.ndarray, context: dict, sd_log, structure: Structure,
            priors: Priors = Priors()):
    """Discharge of the curve and of a new gauging at each stage, for every draw.

    Args:
        key: PRNG key for the new-gauging noise.
        samples: draws of the structure's sampled sites, each of shape (draws, ...) (see
            :func:`flat_draws`).
        stage_rel: stages relative to the station offset [m], shape (G,).
        context: the model's context (see :func:`ratingflow.model.rating_model`).
        sd_log: SD of ln Q of a new gauging (scalar or (G,)).

    Returns:
        (curve, gauging): discharge [m3/s], each (draws, G), float64. The curve is 0 at or below h0.
    """
    log_curve, log_q = predict_log(key, samples, stage_rel, context, sd_log, structure, priors)
    return np.exp(log_curve.astype(np.float64)), np.exp(log_q.astype(np.float64))


def predict_log(key, samples: dict, stage_rel: np.ndarray, context: dict, sd_log, structure: Structure,
                priors: Priors = Priors()):
    """ln of :func:`predict`'s curve and new gauging, float32 as the model computes them, -inf at or below h0:
    ``np.exp`` of them in float64 is :func:`predict`. Rating tables sort these (see
    :func:`ratingflow.intervals.median_and_hpdi_of_log`)."""
    g = len(stage_rel)
    size = -(-max(g, 1) // GRID_CHUNK) * GRID_CHUNK
    stage = np.zeros(size, np.float32)
    stage[:g] = stage_rel
    sd = np.zeros(size, np.float32)
    sd[:g] = np.broadcast_to(np.asarray(sd_log, np.float32), (g,))
    draws = model_sites({k: jnp.asarray(v, jnp.float32) for k, v in samples.items() if k in SAMPLED_SITES})
    ctx = {k: jnp.asarray(v) for k, v in context.items()}
    log_curve, log_q = jax.device_get(_predict(key, draws, jnp.asarray(stage), jnp.asarray(sd), ctx, structure, priors))
    gap = np.asarray(samples["gap"])[:, None]
    below = stage_rel[None, :] + gap <= 0
    nothing = np.float32(-np.inf)
    return (np.where(below, nothing, np.asarray(log_curve[:, :g], np.float32)),
            np.where(below, nothing, np.asarray(log_q[:, :g], np.float32)))


def flat_draws(posterior, names=SAMPLED_SITES, limit: int | None = None) -> dict[str, np.ndarray]:
    """The sampled sites of an ArviZ group (chain, draw, ...) as (draws, ...) arrays."""
    out = {}
    for name in names:
        if name in posterior:
            values = posterior[name].values
            out[name] = values.reshape((-1,) + values.shape[2:])[:limit]
    return out


def stage_grid(stage_min: float, stage_max: float, step: float, below: float, above: float) -> np.ndarray:
    """Regular grid on multiples of ``step`` from ``below`` x range under the lowest gauging to
    ``above`` x range over the highest."""
    span = stage_max - stage_min
    lo = math.floor(round((stage_min - below * span) / step, 6))
    hi = math.ceil(round((stage_max + above * span) / step, 6))
    decimals = max(0, -math.floor(math.log10(step)) + 1)
    return np.round(np.arange(lo, hi + 1) * step, decimals)
