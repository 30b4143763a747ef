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

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

#: smallest positive depth [m] used where a stage lies at or below h0
_TINY_DEPTH = 1e-9
#: half-width of the generalized power law's basis domain, in units of the gauged range mapped to [-1, 1]
_GP_BOUNDARY = 2.0


@dataclass(frozen=True)
class Priors:
    """Weakly informative priors in physical units.

    Reasons:

    * ``gap`` LogNormal(ln 0.3 m, 2.0): zero flow usually lies centimetres to a couple of metres
      below the lowest gauging; the 95 % prior range is about 6 mm to 15 m.
    * ``b`` LogNormal(ln 1.8, 0.35) for the lowest segment: channel controls give 1.3-2.5, section
      controls (weirs) up to about 3; 95 % range 0.9 to 3.6. Upper segments LogNormal(ln 1.8, 0.5)
      (0.7 to 4.8): with one h0 for all segments, a floodplain's exponent can be large.
    * ``log_q_ref`` Normal(ln 10 m3/s, 4): a trickle (~0.004 m3/s) to a large river (~25 000 m3/s)
      at the median gauged stage.
    * ``sigma`` HalfNormal(0.2): residual scatter of a stable rating is a few per cent to about
      20 % in discharge (sampled as ``sigma_z``, see :func:`_sigma`).
    * breakpoints: ``break_u_sd`` 1.5 on the logit scale of each breakpoint's position within its
      range, close to uniform but with less mass at the range's ends.
    * ``offset_log_depth`` Normal(ln(B_k - h0), 0.5): ln of an upper control's depth at its breakpoint
      ``B_k``, around the lowest control's depth there; 95 % range x0.38 to x2.7 (the new control's zero-flow
      stage lies above or below h0). With two segments ``offset_shift`` = ln(d_2 / d'_2) is then Normal(0, 0.5).
    * ``sigma_slope`` Normal(0, 1): change of ln sigma across the gauged range (option).
    * generalized power law: the exponent's deviation has a GP prior with SD ``exponent_sd`` 0.3 and
      length scale ``exponent_length`` 0.3 of the gauged range.
    """

    gap_median_m: float = 0.3
    gap_log_sd: float = 2.0
    b_median: float = 1.8
    b_log_sd: float = 0.35
    b_upper_log_sd: float = 0.5
    log_q_ref_mean: float = 2.302585  # ln(10 m3/s)
    log_q_ref_sd: float = 4.0
    sigma_scale: float = 0.2
    break_u_sd: float = 1.5
    offset_log_sd: float = 0.5
    sigma_slope_sd: float = 1.0
    exponent_sd: float = 0.3
    exponent_length: float = 0.3

    @classmethod
    def from_config(cls, cfg: dict | None) -> "Priors":
        return cls(**(cfg or {}))


@dataclass(frozen=True)
class Structure:
    """What one compiled program can express (static): the largest candidate of a run."""

    max_segments: int = 1
    gplm_terms: int = 0  # basis functions of the exponent's variation; 0 = no generalized power law
    varying_sigma: bool = False
    #: rounding of each change of control, in ln depth (0: a sharp kink)
    transition: float = 0.0
    #: each upper segment has its own offset (False: one h0 for all segments)
    segment_offsets: bool = False
    #: rating periods one program can hold (1: a timeless rating; see :func:`periods_model`)
    max_periods: int = 1

    @property
    def n_breaks(self) -> int:
        return self.max_segments - 1

    def as_attrs(self) -> dict:
        return {"max_segments": self.max_segments, "gplm_terms": self.gplm_terms,
                "varying_sigma": int(self.varying_sigma), "transition": self.transition,
                "segment_offsets": int(self.segment_offsets), "max_periods": self.max_periods}

    @classmethod
    def from_attrs(cls, attrs: dict) -> "Structure":
        return cls(int(attrs["max_segments"]), int(attrs["gplm_terms"]), bool(int(attrs["varying_sigma"])),
                   float(attrs["transition"]), bool(int(attrs.get("segment_offsets", 0))),
                   int(attrs.get("max_periods", 1)))


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


#: exponent prior of each control type, (median, SD of ln b): the hydraulic values BaRatin uses (Le Coz et al.
#: 2014): 3/2 for a rectangular section (weir or sill), 5/2 for a triangular (V-notch) one, 2 for a parabolic
#: one, 5/3 for a wide channel (Manning); a natural riffle is a rougher, wider-spread section control
CONTROL_TYPES = {
    "rectangular_weir": (1.5, 0.035),
    "triangular_weir": (2.5, 0.035),
    "parabolic_weir": (2.0, 0.035),
    "riffle": (1.6, 0.2),
    "channel": (1.67, 0.1),
}


def describes_controls(types) -> bool:
    """Whether the sheet's control types describe a change of control (two or more): such a station's segmented
    candidates are fitted with each control its own offset (the BaRatin form)."""
    return len(types or ()) > 1


def types_serve(types, n_segments: int) -> bool:
    """Whether the sheet's control types (one per control) serve a candidate with ``n_segments``."""
    return bool(types) and len(types) == n_segments


def exponent_prior_of(types, n_segments: int, structure: Structure, priors: Priors):
    """(mean, SD) of ln b per segment of a program (``structure.max_segments``) for a candidate with
    ``n_segments``, given the sheet's control types (lowest first; empty: none).

    The types serve the candidate with exactly that many segments. A type fixes the exponent of the
    lowest segment, which is exactly its control's (Q = a (H - h0)^b). An upper segment's exponent is its
    control's only when that control has its own offset (``segment_offsets``); with one h0 for every
    segment it is not, and the config's wide prior stays."""
    mean = np.full(structure.max_segments, np.log(priors.b_median), np.float32)
    sd = np.array([priors.b_log_sd] + [priors.b_upper_log_sd] * structure.n_breaks, np.float32)
    if types_serve(types, n_segments):
        for k, name in enumerate(types):
            if k == 0 or structure.segment_offsets:
                median, log_sd = CONTROL_TYPES[name]
                mean[k], sd[k] = np.log(median), log_sd
    return mean, sd


#: the sampled site behind ``sigma``: sigma = |sigma_z|, sigma_z ~ Normal(0, sigma_scale)
SIGMA_SITE = "sigma_z"


def _sigma(priors: Priors):
    """``sigma`` ~ HalfNormal(sigma_scale), sampled as ``sigma_z`` ~ Normal(0, sigma_scale) with sigma = |sigma_z|:
    the same prior and posterior, since the likelihood depends on sigma^2 only. Where the gaugings' own
    uncertainty explains most of the scatter, sigma's posterior reaches down to 0. On the log scale of a positive
    site that tail is long: in a 100-station benchmark, 3 of the 6 stations that failed the diagnostics gate
    failed it on sigma alone (tail ESS 234-387, R-hat up to 1.012). On the signed scale the density is smooth
    through 0."""
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


@dataclass(frozen=True)
class Candidate:
    """One candidate model: ``seg1``, ``seg2``, ``seg3`` (segmented power law) or ``gplm``; at a
    station with rating periods also ``seg2-shared`` (periods with their own offset and coefficient,
    one shape) and ``seg2-periods`` (independent periods)."""

    name: str

    def __post_init__(self):
        base, _, mode = self.name.partition("-")
        if base not in CANDIDATES or mode not in PERIOD_MODES or (mode and CANDIDATES[base][1]):
            raise ValueError(f"unknown candidate model {self.name!r}; known: {', '.join(CANDIDATES)}, and with rating "
                             f"periods seg1..seg3 with -{', -'.join(m for m in PERIOD_MODES if m)}")

    @property
    def base(self) -> str:
        return self.name.partition("-")[0]

    @property
    def mode(self) -> str:
        """'' (one timeless rating), 'shared' (periods share the shape) or 'periods' (independent)."""
        return self.name.partition("-")[2]

    @property
    def n_segments(self) -> int:
        return CANDIDATES[self.base][0]

    @property
    def gplm(self) -> bool:
        return CANDIDATES[self.base][1]

    @property
    def code(self) -> int:
        """A fixed number per candidate: its random keys do not depend on the configured list."""
        return list(CANDIDATES).index(self.base) + 1 + 10 * list(PERIOD_MODES).index(self.mode)

    def with_mode(self, mode: str) -> "Candidate":
        return Candidate(self.base + (f"-{mode}" if mode else ""))

    def describe(self, own_offsets: bool = False) -> str:
        """In words; ``own_offsets``: fitted with each control's own zero-flow stage (``segment_offsets``)."""
        if self.gplm:
            return "generalized power law (exponent varies with stage)"
        text = "power law" if self.n_segments == 1 else f"segmented power law, {self.n_segments} segments"
        if own_offsets and self.n_segments > 1:
            text += "; each control with its own zero-flow stage (BaRatin form)"
        return text + PERIOD_MODES[self.mode]


#: candidate name -> (segments, generalized power law)
CANDIDATES = {"seg1": (1, False), "seg2": (2, False), "seg3": (3, False), "gplm": (1, True)}
#: rating-period modes of a candidate -> the words added to its description
PERIOD_MODES = {"": "", "shared": "; rating periods with their own offset and coefficient, one shape",
                "periods": "; independent rating periods"}
#: number of basis functions of the generalized power law's exponent
GPLM_TERMS = 8


def structure_for(candidates: list[Candidate], varying_sigma: bool = False, transition: float = 0.0,
                  segment_offsets: bool = False) -> Structure:
    """The smallest structure that serves every candidate."""
    return Structure(
        max_segments=max(c.n_segments for c in candidates),
        gplm_terms=GPLM_TERMS if any(c.gplm for c in candidates) else 0,
        varying_sigma=varying_sigma,
        transition=transition,
        segment_offsets=segment_offsets,
    )


@dataclass(frozen=True)
class ModelSettings:
    """The ``models`` section of the config."""

    candidates: tuple[str, ...] = ("seg1", "seg2", "seg3")
    se_factor: float = 2.0
    varying_sigma: bool = False
    transition: float = 0.05
    segment_offsets: bool = False
    #: a candidate after the first gets NUTS only when its profile leave-one-out gain exceeds this many
    #: standard errors (ratingflow.screen); None: every candidate is fitted
    screen: float | None = None

    @classmethod
    def from_config(cls, cfg: dict | None) -> "ModelSettings":
        cfg = dict(cfg or {})
        if "candidates" in cfg:
            cfg["candidates"] = tuple(cfg["candidates"])
        return cls(**cfg)

    def candidate_list(self) -> list[Candidate]:
        return [Candidate(n) for n in self.candidates]

    def structure(self, candidates: list[Candidate]) -> Structure:
        return structure_for(candidates, self.varying_sigma, self.transition, self.segment_offsets)
