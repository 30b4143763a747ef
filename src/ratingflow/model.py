"""The rating-curve model: one pure NumPyro function for the prior check, the fit and prediction.

Stage enters as ``x = H - H_min`` (above the station's lowest gauging), so float32 keeps full
precision at stages of hundreds of metres above datum. The zero-flow stage is ``h0 = H_min - gap``
with ``gap > 0``, and ``l = ln(x + gap) = ln(H - h0)`` is the log depth. Then

    ln Q = log_q_ref + f(x) - f(x_ref) + eps,    eps ~ Normal(0, sqrt(sigma(x)^2 + sigma_g^2))

with the exponent part

    f(x) = b_1 l + g * beta(x) l                                  power law / generalized power law (bdrc)
         + sum_{k=2..K} [b_k ln(d_k + z_k) - b_k ln d_k - b_{k-1} ln(d'_k + z_k) + b_{k-1} ln d'_k]

for a segmented power law with K controls (the sum telescopes). Segment k has its own offset e_k
(its stage of zero flow) and takes over at breakpoint ``B_{k-1}``: ``z_k = max(H - B_{k-1}, 0)``,
``d'_k = B_{k-1} - e_{k-1}`` is the depth of the control below at the breakpoint and
``d_k = B_{k-1} - e_k = d'_k exp(offset_shift_k)`` the new control's (sampled as ``offset_log_depth`` =
ln d_k, centred on h0's depth at the breakpoint; ``offset_shift`` is derived). Inside segment k this is
exactly ``Q = a_k (H - e_k)^b_k`` (e_1 = h0) with the segment's own (absolute) exponent ``b_k``, and
discharge is continuous at every breakpoint by construction:
``ln a_k = ln a_{k-1} + b_{k-1} ln d'_k - b_k ln d_k``. This is the BaRatin form of a change of control
(Le Coz et al. 2014): a channel control taking over from a riffle has its own zero-flow stage. With
``Structure.segment_offsets`` False, ``offset_shift`` is 0 and every segment shares h0.
``beta(x)`` is a smooth function of stage with a
Gaussian-process prior (Hilbert-space approximation, fixed amplitude and length scale): the
exponent ``b_1 + beta(H)`` varies with stage as in Hrafnkelsson et al. (2022, Environmetrics).
``sigma(x)`` is constant, or log-linear in stage (``Structure.varying_sigma``). With
``Structure.transition > 0`` the change of control is rounded: ``ln(1 + z_k / d'_k)`` is a softplus of
that width in ln depth of the control below (about that fraction of depth either side of the
breakpoint), which makes the likelihood smooth in the breakpoint.

``log_q_ref`` (ln Q at the median gauged stage) is sampled instead of ``ln a``: it removes most of the
a-b correlation. Breakpoints are ordered by construction: each lies in its prior range and above
the previous one (see :func:`ordered_breakpoints`).

What varies between candidate models of one compiled program is *data* (``context``): the number of
active segments, the generalized-power-law switch and the exponent priors (the sheet's control types).
The sites of the largest candidate are always sampled; those a candidate does not use have no effect on its likelihood and are sampled from
their prior (and dropped from its outputs). So one compiled program serves every candidate.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .candidates import Priors, Structure, exponent_prior_of

#: smallest positive depth [m] used where a stage lies at or below h0
_TINY_DEPTH = 1e-9
#: half-width of the generalized power law's basis domain, in units of the gauged range mapped to [-1, 1]
_GP_BOUNDARY = 2.0


def ordered_breakpoints(u, lo, hi):
    """Breakpoints from unconstrained ``u``: ``B_k = s_k + (hi_k - s_k) * sigmoid(u_k)`` with
    ``s_k = max(lo_k, B_{k-1})``. Each lies in ``[lo_k, hi_k]`` and above the one before."""
    out = []
    previous = -jnp.inf
    for k in range(u.shape[-1]):
        start = jnp.maximum(lo[k], previous)
        previous = start + (hi[k] - start) * jax.nn.sigmoid(u[k])
        out.append(previous)
    return jnp.stack(out)


def hinge(z, width: float):
    """max(z, 0), rounded over about ``width`` either side of 0 when ``width`` > 0 (softplus)."""
    if width <= 0:
        return jnp.maximum(z, 0.0)
    return width * jax.nn.softplus(z / width)


def gp_basis(x, span, terms: int, priors: Priors):
    """Scaled Hilbert-space GP basis (squared-exponential kernel) at stages ``x``: shape (..., terms)."""
    z = 2.0 * x / span - 1.0
    j = jnp.arange(1, terms + 1)
    freq = jnp.pi * j / (2.0 * _GP_BOUNDARY)
    length = 2.0 * priors.exponent_length
    spectral = priors.exponent_sd**2 * jnp.sqrt(2.0 * jnp.pi) * length * jnp.exp(-0.5 * (length * freq) ** 2)
    phi = jnp.sin(freq * (jnp.clip(z, -_GP_BOUNDARY, _GP_BOUNDARY)[..., None] + _GP_BOUNDARY)) / jnp.sqrt(_GP_BOUNDARY)
    return phi * jnp.sqrt(spectral)


def exponent_prior(context, structure: Structure, priors: Priors):
    """(mean, SD) of ln b of each segment: the station's own (``context["b_log_mean"]``/``["b_log_sd"]``, from
    its sheet's control types, see :func:`exponent_prior_of`), else the config's."""
    if "b_log_mean" in context:
        return context["b_log_mean"], context["b_log_sd"]
    return exponent_prior_of((), 1, structure, priors)


#: the sampled site behind ``sigma``: sigma = |sigma_z|, sigma_z ~ Normal(0, sigma_scale)
SIGMA_SITE = "sigma_z"


def _numpyro():
    """NumPyro and its distributions, imported when a model is traced, not when this module is: a job that loads its
    traced programs (:mod:`ratingflow.exported`) runs them without NumPyro, whose import took about 0.5 s of every
    JAX job's start (issue 16)."""
    import numpyro
    import numpyro.distributions as dist

    return numpyro, dist


def _sigma(priors: Priors):
    """``sigma`` ~ HalfNormal(sigma_scale), sampled as ``sigma_z`` ~ Normal(0, sigma_scale) with sigma = |sigma_z|:
    the same prior and posterior, since the likelihood depends on sigma^2 only. Where the gaugings' own
    uncertainty explains most of the scatter, sigma's posterior reaches down to 0. On the log scale of a positive
    site that tail is long: in a 100-station benchmark, 3 of the 6 stations that failed the diagnostics gate
    failed it on sigma alone (tail ESS 234-387, R-hat up to 1.012). On the signed scale the density is smooth
    through 0."""
    numpyro, dist = _numpyro()
    return numpyro.deterministic("sigma", jnp.abs(numpyro.sample(SIGMA_SITE, dist.Normal(0.0, priors.sigma_scale))))


def model_sites(draws: dict) -> dict:
    """Draws keyed by the names the outputs use (``sigma``, ``b`` and ``b_shared``), with the sampled sites
    the model needs to be conditioned on them: ``sigma_z`` (sigma itself, as only |sigma_z| enters the
    model), and with segment offsets ``b`` = ``b_shared`` (the outputs' ``b`` is each control's own exponent,
    ``b_control`` in the model; see :func:`control_exponents`)."""
    if "sigma" in draws and SIGMA_SITE not in draws:
        draws = {**draws, SIGMA_SITE: draws["sigma"]}
    if "b_shared" in draws:
        draws = {**draws, "b": draws["b_shared"]}
    return draws


def residual_sd(sigma, slope, stage, context, exp=jnp.exp):
    """SD of ln Q beyond the gaugings' own uncertainty at ``stage`` (relative, m): ``sigma``, or with a
    ``slope`` (varying sigma) log-linear in stage, ``sigma`` at the reference stage. ``exp``: ``np.exp``
    for float64 NumPy draws."""
    if slope is None:
        return sigma
    return sigma * exp(slope * (stage - context["stage_ref"]) / context["span"])


def control_exponents(b, breaks, depth_below, log_depth, context):
    """Each control's own exponent (segment offsets), from the sampled ``b``.

    For an upper control k, ``b_k`` is sampled as the exponent the segment would have with the offset of the
    control below: the one that gives the same rise of ln Q from its breakpoint ``B`` to the highest gauging
    (``D`` above ``B``). Its own offset then bends it: ``b_control_k = b_k ln(1 + D / d'_k) / ln(1 + D / d_k)``
    (``d'_k``, ``d_k``: depths of the control below and of the new one at ``B``), so the rise stays
    ``b_k ln(1 + D / d'_k)`` whatever the offset. The gaugings above a breakpoint fix that rise well and the
    curvature (the offset) poorly; sampling the own exponent directly puts the two on a curved ridge
    (``docs/offsets.md``). At ``d_k = d'_k`` (one h0) both are the same, so ``b_k`` keeps the one-h0 model's
    prior. Where the sheet gives the control's type (``context["b_typed"]``, whose prior is the control's own
    exponent) it is sampled as it is; a fit saved without ``b_typed`` (before this form) was sampled so too."""
    typed = context.get("b_typed")
    out = [b[0]]
    for k in range(len(depth_below)):
        rise = jnp.maximum(context["span"] - breaks[k], 1e-3)
        bend = jnp.log(jnp.log1p(rise / depth_below[k])) - jnp.log(jnp.log1p(rise * jnp.exp(-log_depth[k])))
        out.append(b[k + 1] * (1.0 if typed is None else jnp.exp((1.0 - typed[k + 1]) * bend)))
    return jnp.concatenate([jnp.stack(out), b[len(out):]])


def rating_model(stage, discharge_sd_log, context, mask=None, discharge=None, period=None, *,
                 structure: Structure = Structure(), priors: Priors = Priors()):
    """The rating model.

    Args:
        stage: stage above the station's lowest gauged stage [m], shape (n,).
        discharge_sd_log: each point's own gauging uncertainty as an SD of ln Q, shape (n,).
            To predict a new gauging pass the station's typical value.
        context: dict of the station's and candidate's constants (see :func:`ratingflow.data.context`):
            ``stage_ref`` and ``span`` [m], ``gap_mean``/``gap_sd`` (prior of ln gap),
            ``break_lo``/``break_hi`` (breakpoint ranges [m], shape (max_segments - 1,)),
            ``n_segments`` (active segments) and ``gplm`` (1.0 for the generalized power law).
        mask: boolean (n,), False for padding; None means all valid.
        discharge: observed discharge [m3/s], shape (n,); None to predict.
        period: rating period (0-based) of each point, shape (n,), with ``structure.max_periods`` > 1
            (see :func:`periods_model`).
    """
    if structure.max_periods > 1:
        return periods_model(stage, discharge_sd_log, context, mask, discharge, period, structure=structure,
                             priors=priors)
    numpyro, dist = _numpyro()
    gap = numpyro.sample("gap", dist.LogNormal(context["gap_mean"], context["gap_sd"]))
    log_q_ref = numpyro.sample("log_q_ref", dist.Normal(priors.log_q_ref_mean, priors.log_q_ref_sd))
    sigma = _sigma(priors)
    b = numpyro.sample("b", dist.LogNormal(*exponent_prior(context, structure, priors)).to_event(1))

    if structure.n_breaks:
        u = numpyro.sample("break_u", dist.Normal(0.0, priors.break_u_sd).expand([structure.n_breaks]).to_event(1))
        breaks = numpyro.deterministic("breakpoint_rel", ordered_breakpoints(u, context["break_lo"], context["break_hi"]))
        # breakpoints beyond the candidate's segments change nothing
        active = jnp.arange(1, structure.max_segments) < context["n_segments"]
        if structure.segment_offsets:
            # each upper control's depth d_k at its breakpoint, centred on the lowest control's depth there:
            # the gaugings above a breakpoint fix the upper control's own offset, whatever h0 is (a centred
            # parameterisation; one relative to the control below ties h0 and the shift into a curved ridge)
            log_depth = numpyro.sample("offset_log_depth", dist.Normal(
                jnp.log(jnp.maximum(breaks + gap, _TINY_DEPTH)), priors.offset_log_sd).to_event(1))
            # each control's offset e_k, the depth d'_k of the control below at its breakpoint, and ln(d_k / d'_k)
            offsets, depth_below, shifts = [-gap], [], []
            for k in range(structure.n_breaks):
                depth_below.append(breaks[k] - offsets[-1])
                offsets.append(breaks[k] - jnp.exp(log_depth[k]))
                shifts.append(log_depth[k] - jnp.log(depth_below[k]))
            shift = numpyro.deterministic("offset_shift", jnp.stack(shifts))
            numpyro.deterministic("offset_rel", jnp.stack(offsets))
            # each control's own exponent (b: as if it kept the offset of the control below)
            b = numpyro.deterministic("b_control", control_exponents(b, breaks, depth_below, log_depth, context))
        else:
            # one h0: the change of exponent at log depth l_k of each breakpoint
            log_break = jnp.log(jnp.maximum(breaks + gap, _TINY_DEPTH))
            step = jnp.where(active, b[1:] - b[:-1], 0.0)
    if structure.gplm_terms:
        w = numpyro.sample("exponent_w", dist.Normal(0.0, 1.0).expand([structure.gplm_terms]).to_event(1))
    if structure.varying_sigma:
        slope = numpyro.sample("sigma_slope", dist.Normal(0.0, priors.sigma_slope_sd))

    def exponent_part(x):
        """ln Q(x) - ln a_1."""
        log_depth = jnp.log(jnp.maximum(x + gap, _TINY_DEPTH))
        f = b[0] * log_depth
        if structure.gplm_terms:
            f = f + context["gplm"] * (gp_basis(x, context["span"], structure.gplm_terms, priors) @ w) * log_depth
        for k in range(structure.n_breaks):
            if structure.segment_offsets:
                # ln(depth of the control below / its depth at the breakpoint), 0 below the breakpoint
                rise = hinge(jnp.log(jnp.maximum(x - offsets[k], _TINY_DEPTH)) - jnp.log(depth_below[k]),
                             structure.transition)
                change = b[k + 1] * jnp.log1p(jnp.expm1(rise) * jnp.exp(-shift[k])) - b[k] * rise
                f = f + jnp.where(active[k], change, 0.0)
            else:
                f = f + step[k] * hinge(log_depth - log_break[k], structure.transition)
        return f

    # ln a of each segment: Q = a_k (H - e_k)^b_k inside segment k (continuity at each breakpoint)
    log_a = [log_q_ref - exponent_part(context["stage_ref"])]
    for k in range(structure.n_breaks):
        if structure.segment_offsets:
            log_below = jnp.log(depth_below[k])
            log_a.append(log_a[-1] + b[k] * log_below - b[k + 1] * (log_below + shift[k]))
        else:
            log_a.append(log_a[-1] - step[k] * log_break[k])
    numpyro.deterministic("log_a", jnp.stack(log_a))

    log_curve = numpyro.deterministic("log_curve", log_a[0] + exponent_part(stage))
    spread = residual_sd(sigma, slope if structure.varying_sigma else None, stage, context)
    _observe(log_curve, spread, discharge_sd_log, mask, discharge, stage.shape[-1])


def _observe(log_curve, spread, discharge_sd_log, mask, discharge, n: int):
    """The likelihood of ln Q: the curve, with the residual spread and each gauging's own uncertainty."""
    numpyro, dist = _numpyro()
    sd = jnp.sqrt(spread**2 + discharge_sd_log**2)
    log_q = None if discharge is None else jnp.log(discharge)
    likelihood = dist.Normal(log_curve, sd)
    if mask is not None:
        likelihood = likelihood.mask(mask)
    with numpyro.plate("gauging", n):
        numpyro.sample("log_discharge", likelihood, obs=log_q)


def periods_model(stage, discharge_sd_log, context, mask, discharge, period, *, structure: Structure,
                  priors: Priors):
    """The rating model of a station with rating periods (BaRatin-SPD's form, Mansanarez et al. 2019).

    Each period p has its own zero-flow stage ``h0_p = floor_p - gap_p`` (``floor_p``: its lowest
    gauged stage) and its own ``log_q_ref_p`` (ln Q at its median gauged stage ``ref_p``), with the
    priors of a timeless rating. The shape (exponents and breakpoints, in station stage) is shared by
    every period when ``context["shared"]`` is 1, and each period's own when it is 0 (independent
    periods). The sites of periods without gaugings (the program holds more than the station has) and
    the unshared shape rows are sampled from their prior and unused.
    Segments share h0 within a period (``segment_offsets`` is not used here).
    """
    numpyro, dist = _numpyro()
    n_p, n_b = structure.max_periods, structure.n_breaks
    period = jnp.zeros(stage.shape, jnp.int32) if period is None else period
    gap = numpyro.sample("gap", dist.LogNormal(context["gap_mean"], context["gap_sd"]).expand([n_p]).to_event(1))
    log_q_ref = numpyro.sample("log_q_ref", dist.Normal(priors.log_q_ref_mean, priors.log_q_ref_sd)
                               .expand([n_p]).to_event(1))
    sigma = _sigma(priors)
    b_all = numpyro.sample("b", dist.LogNormal(*exponent_prior(context, structure, priors))
                           .expand([n_p, structure.max_segments]).to_event(2))
    # the shape row each period uses: row 0 (shared) or its own
    row = jnp.where(context["shared"] > 0, 0, jnp.arange(n_p))
    b = b_all[row]
    h0 = numpyro.deterministic("h0_rel", context["period_floor"] - gap)
    active = jnp.arange(1, structure.max_segments) < context["n_segments"]
    if n_b:
        u = numpyro.sample("break_u", dist.Normal(0.0, priors.break_u_sd).expand([n_p, n_b]).to_event(2))
        breaks = numpyro.deterministic(
            "breakpoint_rel", jax.vmap(lambda v: ordered_breakpoints(v, context["break_lo"], context["break_hi"]))(u[row]))
        log_break = jnp.log(jnp.maximum(breaks - h0[:, None], _TINY_DEPTH))
        step = jnp.where(active, b[:, 1:] - b[:, :-1], 0.0)
    if structure.varying_sigma:
        slope = numpyro.sample("sigma_slope", dist.Normal(0.0, priors.sigma_slope_sd))

    def exponent_part(x, p):
        """ln Q(x) - ln a_1 of period(s) p."""
        log_depth = jnp.log(jnp.maximum(x - h0[p], _TINY_DEPTH))
        f = b[p, 0] * log_depth
        for k in range(n_b):
            f = f + step[p, k] * hinge(log_depth - log_break[p, k], structure.transition)
        return f

    periods = jnp.arange(n_p)
    log_a1 = log_q_ref - exponent_part(context["period_ref"], periods)
    log_a = [log_a1]
    for k in range(n_b):
        log_a.append(log_a[-1] - step[:, k] * log_break[:, k])
    numpyro.deterministic("log_a", jnp.stack(log_a, axis=-1))
    log_curve = numpyro.deterministic("log_curve", log_a1[period] + exponent_part(stage, period))
    local = dict(context, stage_ref=context["period_ref"][period])
    spread = residual_sd(sigma, slope if structure.varying_sigma else None, stage, local)
    _observe(log_curve, spread, discharge_sd_log, mask, discharge, stage.shape[-1])
