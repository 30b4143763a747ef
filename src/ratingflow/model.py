"""The rating-curve model: one pure NumPyro function for prior check, fit and prediction.

Power law in log space::

    ln Q = ln a + b * ln(H - h0) + eps,   eps ~ Normal(0, sqrt(sigma^2 + sigma_g^2))

The model works on stage *relative to the station's lowest gauged stage* (``x = H - H_min``),
so float32 keeps full precision even at stages of hundreds of metres above datum, and h0 lies
below the lowest gauging by construction: ``h0 = H_min - gap`` with ``gap > 0``.

Sampled parameters (all in physical units):

* ``gap`` [m]        distance from the lowest gauging down to the stage of zero flow.
* ``b`` [-]          exponent.
* ``log_q_ref``      ln of the discharge [m3/s] at the reference stage (median gauged stage).
                     Sampling this instead of ``ln a`` removes most of the a-b correlation.
* ``sigma`` [-]      residual spread in ln Q beyond the gaugings' own stated uncertainty.

Deterministic: ``log_a`` and ``a`` (discharge in m3/s at 1 m above h0), and ``log_curve``
(ln Q of the curve itself at every stage given, without residual error).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

#: ln of the smallest positive effective depth used where a stage lies at or below h0.
_TINY_DEPTH = 1e-9


@dataclass(frozen=True)
class Priors:
    """Weakly informative priors in physical units.

    Reasons:

    * ``gap`` LogNormal(ln 0.3 m, 2.0): zero flow usually lies centimetres to a couple of metres
      below the lowest gauging; the 95 % prior range is about 6 mm to 15 m.
    * ``b`` LogNormal(ln 1.8, 0.35): channel controls give 1.3-2.5, section controls (weirs) up
      to about 3; the 95 % prior range is about 0.9 to 3.6.
    * ``log_q_ref`` Normal(ln 10 m3/s, 4): anything from a trickle (~0.004 m3/s) to a large river
      (~25 000 m3/s) at the median gauged stage is plausible a priori.
    * ``sigma`` HalfNormal(0.2): residual scatter of a stable rating is a few per cent to about
      20 % in discharge; beyond 40 % is implausible for a single control.
    """

    gap_median_m: float = 0.3
    gap_log_sd: float = 2.0
    b_median: float = 1.8
    b_log_sd: float = 0.35
    log_q_ref_mean: float = 2.302585  # ln(10 m3/s)
    log_q_ref_sd: float = 4.0
    sigma_scale: float = 0.2

    @classmethod
    def from_config(cls, cfg: dict | None) -> "Priors":
        return cls(**(cfg or {}))

    def as_dict(self) -> dict:
        return asdict(self)


def power_law(stage, stage_ref, discharge_sd_log, mask=None, discharge=None, gap_prior=None,
              priors: Priors = Priors()):
    """Single-control power law.

    Args:
        stage: stage above the station's lowest gauged stage [m], shape (n,).
        stage_ref: reference stage on the same scale [m] (scalar); ``log_q_ref`` lives there.
        discharge_sd_log: each point's own gauging uncertainty as an SD of ln Q, shape (n,).
            For prediction of a new gauging pass the station's typical value.
        mask: boolean (n,), False for padding; None means all valid.
        discharge: observed discharge [m3/s], shape (n,); None to predict.
        gap_prior: (mean, sd) of ln gap for this station (from a surveyed h0 range in the sheet);
            None for the default in ``priors``.
        priors: :class:`Priors`.
    """
    if gap_prior is None:
        gap_prior = (jnp.log(priors.gap_median_m), priors.gap_log_sd)
    gap = numpyro.sample("gap", dist.LogNormal(*gap_prior))
    b = numpyro.sample("b", dist.LogNormal(jnp.log(priors.b_median), priors.b_log_sd))
    log_q_ref = numpyro.sample("log_q_ref", dist.Normal(priors.log_q_ref_mean, priors.log_q_ref_sd))
    sigma = numpyro.sample("sigma", dist.HalfNormal(priors.sigma_scale))

    log_a = numpyro.deterministic("log_a", log_q_ref - b * jnp.log(stage_ref + gap))
    numpyro.deterministic("a", jnp.exp(log_a))

    depth = jnp.maximum(stage + gap, _TINY_DEPTH)
    log_curve = numpyro.deterministic("log_curve", log_a + b * jnp.log(depth))
    sd = jnp.sqrt(sigma**2 + discharge_sd_log**2)
    log_q = None if discharge is None else jnp.log(discharge)
    likelihood = dist.Normal(log_curve, sd)
    if mask is not None:
        likelihood = likelihood.mask(mask)
    with numpyro.plate("gauging", stage.shape[-1]):
        numpyro.sample("log_discharge", likelihood, obs=log_q)


#: names of the scalar parameters reported for every station
PARAMETERS = ("a", "b", "h0", "sigma")
