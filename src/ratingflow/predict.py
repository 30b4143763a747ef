"""Curves and new-gauging predictions from parameter draws, with ``Predictive`` under one jit.

``Predictive`` called eagerly re-traces the model every time (about 0.5 s a station); jitted with
the stage grid padded to a multiple of :data:`GRID_CHUNK`, one compiled program per model
structure serves every station and grid length. A new gauging's noise is one standard normal per draw, shared by the
stages (see :func:`_predict`): bands are read stage by stage.
"""
from __future__ import annotations

import math
from functools import cache, partial

import jax
import jax.numpy as jnp
import numpy as np

from .candidates import Priors, Structure
from .exported import cached_jit, on_device
from .model import model_sites, rating_model

#: grids are padded to a multiple of this many stages
GRID_CHUNK = 256
#: the parameters a curve is drawn from (those of its structure), by the names of the outputs
#: (``sigma``; :func:`ratingflow.model.model_sites` gives the sampled site behind it)
SAMPLED_SITES = ("gap", "log_q_ref", "sigma", "b", "b_shared", "break_u", "offset_log_depth", "exponent_w",
                 "sigma_slope")


#: the new gauging's standard normal (``log_discharge`` decentred by ``LocScaleReparam``); see :func:`_predict`
NOISE_SITE = "log_discharge_decentered"


def _predict(key, samples, stage, sd_log, context, rank, below, structure, priors):
    """The model's ``log_curve`` and ``log_discharge`` for every draw, with one standard normal per draw shared by
    every stage: ``log_discharge`` = curve + its SD x that normal (the model's own ``Normal``, decentred). A band is
    read stage by stage, and at each stage this is a draw of the new gauging's distribution as before. Threefry's
    draws x stages normals (8 000 x 768) took 0.1 s, nine tenths of the program (issue 16); the bands' edges now
    vary smoothly along the stage instead of jittering from stage to stage."""
    from numpyro.handlers import reparam  # NumPyro only where the program is traced (model._numpyro)
    from numpyro.infer import Predictive
    from numpyro.infer.reparam import LocScaleReparam

    n = jax.tree_util.tree_leaves(samples)[0].shape[0]
    noise = jnp.broadcast_to(jax.random.normal(key, (n, 1)), (n, stage.shape[-1]))
    model = reparam(partial(rating_model, structure=structure, priors=priors),
                    config={"log_discharge": LocScaleReparam(centered=0)})
    # parallel: every draw at once (vmap), not one after the other (Predictive's default, a loop over the draws)
    predictive = Predictive(model, posterior_samples={**samples, NOISE_SITE: noise},
                            return_sites=["log_curve", "log_discharge"], parallel=True)
    out = predictive(key, stage, sd_log, context)
    # -inf at or below h0 (see predict_log)
    dry = rank[None, :] <= below[:, None]
    return tuple(jnp.where(dry, -jnp.inf, out[name]) for name in ("log_curve", "log_discharge"))


@cache
def _program(structure: Structure, priors: Priors):
    """:func:`_predict` of one structure, traced once across jobs (:mod:`ratingflow.exported`): each summarise job
    traced and lowered it again for every structure it met, 0.1-0.25 s each (issue 16)."""
    return cached_jit(partial(_predict, structure=structure, priors=priors), f"predict|{structure!r}|{priors!r}")


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
    draws = model_sites(on_device({k: v for k, v in samples.items() if k in SAMPLED_SITES}, np.float32))
    ctx = on_device(context)
    # stage j lies at or below draw d's h0 (stage_rel + gap <= 0, in float64) exactly where rank[j] (the stages at or
    # below stage j) <= below[d] (the stages at or below -gap[d]); the padding never does. A mask of draws x stages
    # made here took a quarter of the time of the program itself.
    ordered = np.sort(np.asarray(stage_rel, np.float64))
    rank = np.full(size, np.iinfo(np.int32).max, np.int32)
    rank[:g] = np.searchsorted(ordered, stage_rel, side="right")
    below = np.searchsorted(ordered, -np.asarray(samples["gap"], np.float64), side="right").astype(np.int32)
    stage, sd, rank, below = on_device((stage, sd, rank, below))
    log_curve, log_q = jax.device_get(_program(structure, priors)(key, draws, stage, sd, ctx, rank, below))
    return log_curve[:, :g], log_q[:, :g]


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
