"""The posterior layout: raw draws of a fit in, its InferenceData out (:class:`ratingflow.idata.FitData`, ArviZ's
layout without ArviZ) and back, and the summaries every later stage reads from it (convergence, parameter medians,
breakpoints).

Stages import this module; it imports no stage.
"""
from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING

import numpy as np

from .candidates import Candidate, ModelSettings, Structure
from .idata import FitData, fit_data
from .intervals import hpdi_of_sorted, prob_label

if TYPE_CHECKING:
    from .sampler import FitResult

#: parameters reported and checked for convergence (those a fit has)
REPORTED = ("a", "b", "h0", "offset", "breakpoint", "sigma", "sigma_slope")

#: parameters written to the posterior group (those the candidate has), with their units and dims
POSTERIOR_VARS = {
    "a": ("m3/s at 1 m above the segment's offset: Q = a (H - offset)^b in each segment", ["segment"]),
    "b": ("1 (each segment's own exponent)", ["segment"]),
    "h0": ("m (stage of zero flow, station datum)", []),
    "offset": ("m (each segment's stage of zero flow, station datum; the first is h0; segmented models)", ["segment"]),
    "breakpoint": ("m (stage where the next segment takes over, station datum)", ["breakpoint_number"]),
    "sigma": ("1 (SD of ln Q beyond gauging uncertainty, at the reference stage)", []),
    "sigma_slope": ("1 (change of ln sigma across the gauged range)", []),
    "gap": ("m (lowest gauged stage minus h0)", []),
    "log_q_ref": ("ln(m3/s) at the reference stage", []),
    "log_a": ("ln(m3/s)", ["segment"]),
    "break_u": ("1 (breakpoint position within its prior range, logit scale)", ["breakpoint_number"]),
    "offset_shift": ("1 (ln of the upper control's depth over the lower one's, at the breakpoint)",
                     ["breakpoint_number"]),
    "offset_log_depth": ("ln(m) (the upper control's depth at its breakpoint)", ["breakpoint_number"]),
    "b_shared": ("1 (segment offsets: the sampled exponent, each upper segment's as if it kept the offset of the "
                 "control below; see ratingflow.model.control_exponents)", ["segment"]),
    "exponent_w": ("1 (weights of the exponent's variation with stage)", ["term"]),
}


@functools.cache
def package_versions() -> dict[str, str]:
    """The versions of the packages a fit depends on (looked up once per process: 8 ms a fit)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("ratingflow", "numpyro", "jax", "jaxlib", "arviz", "xarray", "pandas"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def candidate_posterior(result: FitResult) -> dict[str, np.ndarray]:
    """The candidate's own parameters (chain, draw, ...): inactive segments and sites dropped."""
    st, c = result.station, result.candidate
    post, k = result.posterior, c.n_segments
    if "h0_rel" in post:  # a rating-period program (ratingflow.model.periods_model)
        return _period_posterior(result)
    out = {name: post[name] for name in ("gap", "log_q_ref", "sigma")}
    out["b"] = post.get("b_control", post["b"])[..., :k]  # segment offsets: each control's own (b_control)
    out["log_a"] = post["log_a"][..., :k]
    out["a"] = np.exp(out["log_a"].astype(np.float64))
    out["h0"] = st.stage_offset - post["gap"].astype(np.float64)
    if k > 1:
        out["breakpoint"] = st.stage_offset + post["breakpoint_rel"][..., : k - 1].astype(np.float64)
        out["break_u"] = post["break_u"][..., : k - 1]
        if "offset_rel" in post:  # models.segment_offsets
            out["offset"] = st.stage_offset + post["offset_rel"][..., :k].astype(np.float64)
            out["offset_shift"] = post["offset_shift"][..., : k - 1]
            out["offset_log_depth"] = post["offset_log_depth"][..., : k - 1]
            out["b_shared"] = post["b"][..., :k]
    if c.gplm:
        out["exponent_w"] = post["exponent_w"]
    if "sigma_slope" in post:
        out["sigma_slope"] = post["sigma_slope"]
    return out


#: variables that get a leading ``period`` dimension in a fit with rating periods
PERIOD_VARS = ("a", "b", "h0", "breakpoint", "gap", "log_q_ref", "log_a", "break_u")


def _period_posterior(result: FitResult) -> dict[str, np.ndarray]:
    """The candidate's parameters from a rating-period program, each period's (leading ``period`` axis
    after chain and draw)."""
    st, c, post, k = result.station, result.candidate, result.posterior, result.candidate.n_segments
    n = st.n_periods
    rows = np.zeros(n, int) if c.mode != "periods" else np.arange(n)
    out = {"sigma": post["sigma"], "gap": post["gap"][..., :n], "log_q_ref": post["log_q_ref"][..., :n],
           "b": post["b"][..., rows, :k], "log_a": post["log_a"][..., :n, :k]}
    out["a"] = np.exp(out["log_a"].astype(np.float64))
    out["h0"] = st.stage_offset + post["h0_rel"][..., :n].astype(np.float64)
    if k > 1:
        out["breakpoint"] = st.stage_offset + post["breakpoint_rel"][..., :n, : k - 1].astype(np.float64)
        out["break_u"] = post["break_u"][..., rows, : k - 1]
    if "sigma_slope" in post:
        out["sigma_slope"] = post["sigma_slope"]
    return out


def candidate_context(result: FitResult) -> dict[str, np.ndarray]:
    """The context a curve of this candidate needs (breakpoint ranges and exponent priors cut to its
    breakpoints and segments)."""
    ctx = {key: v for key, v in result.context.items()
           if key not in ("period_floor", "period_ref", "shared")}
    k = result.candidate.n_segments - 1
    ctx["break_lo"], ctx["break_hi"] = ctx["break_lo"][:k], ctx["break_hi"][:k]
    for key in ("b_log_mean", "b_log_sd", "b_typed"):
        if key in ctx:
            ctx[key] = ctx[key][: k + 1]
    return ctx


#: the prior check's groups a fit file carries (:func:`inference_data`)
PRIOR_GROUPS = ("prior", "prior_predictive")


#: the gaugings' own data in a fit's constant_data
GAUGING_DATA = ("stage", "discharge", "discharge_sd", "discharge_sd_log")


def inference_data(result: FitResult, prior, attrs: dict, models: ModelSettings = ModelSettings(),
                   validity=None, times=None, shifts=None) -> FitData:
    """The InferenceData of one fit (ArviZ's groups, :mod:`ratingflow.idata`): posterior, sample_stats,
    log_likelihood, observed and constant data (with the model's context), plus the prior groups from the prior
    check.
    With rating periods: ``validity``, the periods table (``valid_from``, ``valid_to``: ISO, '' open);
    ``times``, the gaugings' dates (UTC); ``shifts``, the applied shifts (list of dicts)."""
    st, candidate = result.station, result.candidate
    posterior = candidate_posterior(result)
    n = st.n
    coords = {"gauging": np.arange(n), "segment": np.arange(1, candidate.n_segments + 1),
              "breakpoint_number": np.arange(1, candidate.n_segments)}
    if "exponent_w" in posterior:
        coords["term"] = np.arange(1, posterior["exponent_w"].shape[-1] + 1)
    dims = {name: dims for name, (_, dims) in POSTERIOR_VARS.items() if dims}
    periodic = bool(candidate.mode)
    if periodic:
        coords["period"] = np.arange(1, st.n_periods + 1)
        dims.update({name: ["period", *POSTERIOR_VARS[name][1]] for name in PERIOD_VARS})
    dims.update({name: ["gauging"] for name in GAUGING_DATA})
    constant = dict(zip(GAUGING_DATA, (st.stage, st.discharge, st.discharge_sd, st.sd_log)))
    idata = fit_data(posterior, result.sample_stats, result.log_likelihood, np.log(st.discharge), constant, dims,
                     coords)
    if st.period is not None:
        idata.constant_data["gauging_period"] = (("gauging",), st.period + 1,
                                         {"meaning": "rating period of each gauging (1 = the first)"})
    if times is not None:
        idata.constant_data["gauging_time"] = (("gauging",), np.asarray(times, dtype="datetime64[ns]"))
    if shifts is not None:
        attrs = {**attrs, "shifts": json.dumps(shifts)}
    if periodic and validity is not None:
        for column in ("valid_from", "valid_to"):
            idata.constant_data[f"period_{column}"] = (("period",), np.asarray(validity[column], dtype=str),
                                                       {"meaning": "UTC; empty: open-ended"})
    # scalars (from_dict would give them a dimension of length 1)
    idata.constant_data["stage_offset"] = ((), np.float64(st.stage_offset), {"units": "m", "meaning": "lowest gauged stage: the model's stage origin"})
    idata.constant_data["stage_ref"] = ((), np.float64(st.stage_offset + st.stage_ref), {"units": "m", "meaning": "stage where log_q_ref applies"})
    for key, value in candidate_context(result).items():
        value = np.asarray(value)
        dim = ("segment",) if key.startswith("b_") else ("breakpoint_number",)
        idata.constant_data[f"context_{key}"] = (dim if value.ndim else (), value,
                                                 {"meaning": "model context, relative stage (see ratingflow.model)"})
    for name in PRIOR_GROUPS:
        if name in prior.groups():
            idata.add_groups({name: prior[name]})
    for name in posterior:
        idata.posterior[name].attrs["units"] = POSTERIOR_VARS[name][0]
    idata.constant_data["stage"].attrs["units"] = "m"
    idata.constant_data["discharge"].attrs["units"] = "m3/s"
    idata.constant_data["discharge_sd"].attrs["units"] = "m3/s (1 SD)"
    idata.observed_data["log_discharge"].attrs["units"] = "ln(m3/s)"
    full = {"station": st.station_id, "stage_units": "m", "discharge_units": "m3/s", "model": candidate.name,
            "model_description": candidate.describe("offset_rel" in result.posterior),
            **{f"structure_{k}": v for k, v in fit_structure(result, models).as_attrs().items()},
            "periods": int(st.n_periods if periodic else 1), **attrs}
    full.update({f"version_{k}": v for k, v in package_versions().items()})
    idata.attrs.update(full)
    idata.posterior.attrs.update(full)
    # the draws' convergence, as the choice computed it (fit_convergence: once per fit); the summary reads it
    # instead of computing it again from the same draws (:func:`stored_convergence`)
    idata.attrs[CONVERGENCE_ATTR] = json.dumps(fit_convergence(result))
    loo = fit_loo(result)  # the choice's, where it chose this fit; the summary's gauging checks read it
    idata.attrs[LOO_ATTR] = json.dumps({"pareto_k": np.asarray(loo.pareto_k, float).tolist(),
                                        "loo_i": np.asarray(loo.loo_i, float).tolist()})
    return idata


def fit_structure(result: FitResult, models: ModelSettings) -> Structure:
    """The structure of the candidate's own curve: the config's, with own offsets where the fit had them
    (``segment_offsets``, or a station whose sheet names its control types), and the rounding of a change of control
    the fit ran with (``FitResult.transition``; where it has none, the config's for its form)."""
    from dataclasses import replace

    own = "offset_rel" in result.posterior
    structure = models.structure([Candidate(result.candidate.base)])
    transition = result.transition
    if transition is None:
        transition = models.form_transition if own else models.transition
    return replace(structure, segment_offsets=own, transition=transition)


def model_of(idata) -> tuple[Candidate, Structure, dict]:
    """The candidate, its structure and the context of a fit read back from netCDF."""
    attrs = idata.attrs
    structure = Structure.from_attrs({k[len("structure_"):]: v for k, v in attrs.items() if k.startswith("structure_")})
    const = idata.constant_data
    context = {name[len("context_"):]: const[name].values for name in const.data_vars if name.startswith("context_")}
    return Candidate(attrs["model"]), structure, context


def period_view(idata, p: int):
    """Period ``p`` (0-based) of a fit with rating periods, as the InferenceData of a timeless fit of
    that period's gaugings: every reader of a timeless fit (rating table, equations, figures) serves it.
    Its stage origin is the period's lowest gauging, as in :func:`ratingflow.model.periods_model`."""
    const = idata.constant_data
    members = const["gauging_period"].values == p + 1
    stage = const["stage"].values[members]
    station_offset = float(const["stage_offset"])
    floor = float(stage.min()) - station_offset
    posterior = idata.posterior.isel(period=p).drop_vars("period")
    constant = {name: const[name].values[members] for name in GAUGING_DATA}
    coords = {"gauging": np.arange(members.sum()), "segment": posterior["segment"].values,
              "breakpoint_number": posterior.coords.get("breakpoint_number", xr_empty()).values}
    dims = {**{name: ["gauging"] for name in constant},
            **{name: dims for name, (_, dims) in POSTERIOR_VARS.items() if dims}}
    view = fit_data({name: posterior[name].values for name in posterior.data_vars},
                    {name: idata.sample_stats[name].values for name in idata.sample_stats.data_vars},
                    idata.log_likelihood["log_discharge"].values[..., members] if "log_likelihood" in idata else None,
                    idata.observed_data["log_discharge"].values[members] if "observed_data" in idata else None,
                    constant, dims, coords)
    view.constant_data["stage_offset"] = ((), np.float64(stage.min()))
    view.constant_data["stage_ref"] = ((), np.float64(np.median(stage)))
    for name in const.data_vars:
        if name.startswith("context_"):
            value = const[name].values
            if name in ("context_break_lo", "context_break_hi"):
                value = value - np.float32(floor)
            elif name == "context_stage_ref":
                value = np.float32(np.median(stage) - stage.min())
            view.constant_data[name] = (const[name].dims, value)
    view.attrs.update(idata.attrs)
    view.attrs.update({"model": idata.attrs["model"].partition("-")[0], "period": p + 1,
                       "valid_from": str(const["period_valid_from"].values[p]) if "period_valid_from" in const else "",
                       "valid_to": str(const["period_valid_to"].values[p]) if "period_valid_to" in const else ""})
    return view


def period_views(idata) -> list:
    """Each rating period of a fit as a timeless fit of its gaugings (:func:`ratingflow.posterior.period_view`);
    a timeless fit is its own one period."""
    n = int(idata.attrs.get("periods", 1))
    return [period_view(idata, p) for p in range(n)] if n > 1 else [idata]


def xr_empty():
    import xarray as xr

    return xr.DataArray(np.arange(1, 1), dims="breakpoint_number")


def breakpoint_medians(posterior) -> np.ndarray:
    """Median stage [m] of each breakpoint (empty for one segment)."""
    if "breakpoint" not in posterior:
        return np.array([])
    draws = posterior["breakpoint"].values
    return np.median(draws.reshape(-1, draws.shape[-1]), axis=0)


def parameter_summary(idata, prob: float = 0.9) -> dict:
    """Median and HPDI of each reported parameter (the report reads these, not the draws);
    per-segment and per-breakpoint values are numbered from 1 (``b_1``, ``breakpoint_1``)."""
    out = {}
    label = prob_label(prob)
    for name in REPORTED:
        if name not in idata.posterior:
            continue
        values = idata.posterior[name].values.astype(np.float64)
        values = values.reshape(values.shape[0] * values.shape[1], -1)
        for j in range(values.shape[1]):
            key = name if values.shape[1] == 1 and idata.posterior[name].ndim == 2 else f"{name}_{j + 1}"
            lo, hi = hpdi_of_sorted(np.sort(values[:, j]), prob)
            out[f"{key}_median"] = float(np.median(values[:, j]))
            out[f"{key}_hpdi{label}_lower"] = float(lo)
            out[f"{key}_hpdi{label}_upper"] = float(hi)
    return out


def convergence(posterior: dict, sample_stats: dict) -> dict:
    """R-hat, bulk and tail ESS (worst over the reported parameters) and divergences of raw draws
    (chain, draw, ...): ArviZ's ``az.rhat`` and ``az.ess`` ("bulk", "tail"), of every parameter at once
    (:func:`ratingflow.chain_stats.rhat_ess`, one call per precision of the draws)."""
    from .chain_stats import rhat_ess

    values = {k: np.asarray(v) for k, v in posterior.items() if k in REPORTED}
    columns = {k: v.reshape(v.shape[0], v.shape[1], -1) for k, v in values.items()}
    stats = {}  # name -> (R-hat, bulk ESS, tail ESS) of each of its elements
    for dtype in dict.fromkeys(v.dtype for v in columns.values()):
        names = [k for k, v in columns.items() if v.dtype == dtype]
        figures = rhat_ess(np.concatenate([columns[k] for k in names], axis=2))
        start = 0
        for name in names:
            width = columns[name].shape[2]
            stats[name] = [a[start:start + width] for a in figures]
            start += width
    per = {v: {"rhat": float(np.max(stats[v][0])), "ess_bulk": float(np.min(stats[v][1])),
               "ess_tail": float(np.min(stats[v][2]))} for v in values}
    return {
        # NaN (a parameter that never moved) propagates and fails the check
        "rhat_max": float(np.max([p["rhat"] for p in per.values()])),
        "ess_bulk_min": float(np.min([p["ess_bulk"] for p in per.values()])),
        "ess_tail_min": float(np.min([p["ess_tail"] for p in per.values()])),
        "divergences": int(np.sum(sample_stats["diverging"])),
        "per_parameter": per,
    }


#: the largest Pareto k of importance weights (ratingflow.importance) for their draws to stand (Vehtari et al. 2024:
#: above 0.7 the estimates are not reliable)
PARETO_K_MAX = 0.7

#: the diagnostics gate: check name -> (value key, pass test, failure message), over config ``diagnostics``
GATE = {
    "rhat": ("rhat_max", lambda v, t: v <= t["rhat_max"], "R-hat {v:.4f} > {t[rhat_max]}"),
    "ess_bulk": ("ess_bulk_min", lambda v, t: v >= t["ess_bulk_min"], "bulk ESS {v:.1f} < {t[ess_bulk_min]}"),
    "ess_tail": ("ess_tail_min", lambda v, t: v >= t["ess_tail_min"], "tail ESS {v:.1f} < {t[ess_tail_min]}"),
    "divergences": ("divergences", lambda v, t: v <= t["max_divergences"], "{v} divergences > {t[max_divergences]}"),
    "bfmi": ("bfmi_min", lambda v, t: v >= t["bfmi_min"], "BFMI {v:.2f} < {t[bfmi_min]}"),
    # importance draws (ratingflow.importance): their weights' largest Pareto k
    "pareto_k": ("pareto_k", lambda v, t: v <= PARETO_K_MAX, "importance weights' Pareto k {v:.2f} > " + str(PARETO_K_MAX)),
}


#: the root attribute of a fit's InferenceData that holds :func:`convergence` of its posterior, as JSON
CONVERGENCE_ATTR = "convergence"


def stored_convergence(idata) -> dict:
    """:func:`convergence` of an InferenceData's posterior: the fit's own (:data:`CONVERGENCE_ATTR`, written by
    :func:`inference_data` from the same draws), or computed where a fit file has none (written before it was kept)."""
    stored = idata.attrs.get(CONVERGENCE_ATTR)
    if stored:
        return json.loads(stored)
    return convergence({k: idata.posterior[k].values for k in idata.posterior.data_vars},
                       {"diverging": idata.sample_stats["diverging"].values})


def loo_idata(log_likelihood: np.ndarray):
    """The minimum ``az.loo`` needs: the pointwise log-likelihood (chain, draw, gauging), and a
    posterior group for the draw count."""
    import arviz as az

    shape = log_likelihood.shape[:2]
    return az.from_dict(posterior={"draw_index": np.zeros(shape)}, log_likelihood={"log_discharge": log_likelihood})


#: the root attribute of a fit's InferenceData that holds the chosen fit's pointwise PSIS-LOO (each gauging's Pareto
#: k and leave-one-out log density), as JSON
LOO_ATTR = "loo"


def fit_loo(fit: FitResult):
    """ArviZ's pointwise PSIS-LOO of a fit's log-likelihood (``az.loo``, computed on all gaugings at once by
    :func:`ratingflow.psis.loo`), computed once per fit (the choice, the rounds that choose again and the fit file
    all ask). Its relative efficiency (``reff``, which sets the length of the tail PSIS fits: ``3 sqrt(S / reff)``
    draws, at most a fifth) is the mean bulk ESS of the fit's parameters (:func:`fit_convergence`, capped at the
    weights' ESS for importance draws) over the draws, as ArviZ's own default takes the mean ESS of the posterior;
    where an ESS is not finite, 1 (what ArviZ takes for the bare log-likelihood)."""
    import warnings

    from .psis import loo

    if fit.loo is None:
        chains, draws = fit.log_likelihood.shape[:2]
        ess = [p["ess_bulk"] for p in fit_convergence(fit)["per_parameter"].values()]
        reff = float(np.mean(ess)) / (chains * draws) if ess and np.all(np.isfinite(ess)) else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # high Pareto k is counted and reported where it matters
            fit.loo = loo(fit.log_likelihood, reff)
    return fit.loo


def stored_loo(idata) -> tuple[np.ndarray, np.ndarray]:
    """(Pareto k, leave-one-out log density) per gauging of an InferenceData's log-likelihood: the fit's own
    (:data:`LOO_ATTR`, written by :func:`inference_data` from the same array), or computed where a fit file has
    none (written before it was kept)."""
    import warnings

    stored = idata.attrs.get(LOO_ATTR)
    if stored:
        loo = json.loads(stored)
        return np.asarray(loo["pareto_k"], float), np.asarray(loo["loo_i"], float)
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # high Pareto k is what the caller looks for
        loo = az.loo(loo_idata(idata.log_likelihood["log_discharge"].values), pointwise=True)
    return np.asarray(loo.pareto_k), np.asarray(loo.loo_i)


def fit_convergence(fit: FitResult) -> dict:
    """:func:`convergence` of a fit's own parameters (:func:`candidate_posterior`), computed once per fit."""
    if fit.convergence is None:
        fit.convergence = convergence(candidate_posterior(fit), fit.sample_stats)
    return fit.convergence


def gate(values: dict, thresholds: dict) -> tuple[dict, list[str]]:
    """(check -> passed, failure messages) of the diagnostics gate for the values present (e.g. a
    :func:`convergence` result, which has no BFMI). NaN fails."""
    checks, failures = {}, []
    for name, (key, passes, message) in GATE.items():
        if key in values:
            checks[name] = bool(passes(values[key], thresholds))
            if not checks[name]:
                failures.append(message.format(v=values[key], t=thresholds))
    return checks, failures
