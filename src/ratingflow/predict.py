"""Curves and new-gauging predictions from parameter draws, with ``Predictive`` under one jit.

``Predictive`` called eagerly re-traces the model every time (about 0.5 s a station); jitted with
the stage grid padded to a multiple of :data:`GRID_CHUNK`, one compiled program serves every
station and grid length.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import Predictive

from .model import Priors, power_law

#: grids are padded to a multiple of this many stages
GRID_CHUNK = 256
#: the parameters a curve needs
CURVE_SITES = ("gap", "b", "log_q_ref", "sigma")


@partial(jax.jit, static_argnames=("priors",))
def _predict(key, samples, stage, stage_ref, sd_log, priors):
    predictive = Predictive(
        partial(power_law, priors=priors), posterior_samples=samples, return_sites=["log_curve", "log_discharge"]
    )
    out = predictive(key, stage, stage_ref, sd_log)
    return out["log_curve"], out["log_discharge"]


def predict(key, samples: dict, stage_rel: np.ndarray, stage_ref: float, sd_log, priors: Priors = Priors()):
    """Discharge of the curve and of a new gauging at each stage, for every draw.

    Args:
        key: PRNG key for the new-gauging noise.
        samples: parameter draws, each of shape (draws,).
        stage_rel: stages relative to the station offset [m], shape (G,).
        stage_ref: the station's reference stage (relative) [m].
        sd_log: SD of ln Q of a new gauging (scalar or (G,)).

    Returns:
        (curve, gauging): discharge [m3/s], each (draws, G), float64. The curve is 0 at or below h0.
    """
    g = len(stage_rel)
    size = -(-max(g, 1) // GRID_CHUNK) * GRID_CHUNK
    stage = np.zeros(size, np.float32)
    stage[:g] = stage_rel
    sd = np.zeros(size, np.float32)
    sd[:g] = np.broadcast_to(np.asarray(sd_log, np.float32), (g,))
    draws = {k: jnp.asarray(np.ravel(samples[k]), jnp.float32) for k in CURVE_SITES}
    log_curve, log_q = jax.device_get(_predict(key, draws, jnp.asarray(stage), jnp.float32(stage_ref), jnp.asarray(sd), priors))
    gap = np.ravel(samples["gap"])[:, None]
    below = stage_rel[None, :] + gap <= 0
    curve = np.where(below, 0.0, np.exp(np.asarray(log_curve[:, :g], np.float64)))
    gauging = np.where(below, 0.0, np.exp(np.asarray(log_q[:, :g], np.float64)))
    return curve, gauging
