"""Pipeline stage ``summarise``: the rating table with HPDI bands, convergence diagnostics and the rating
figure (drawn by :mod:`ratingflow.figures`) of each station.

The table gives, on a regular stage grid, the median discharge and HPDI bounds (as
``numpyro.diagnostics.hpdi`` gives them) for

* the *curve* (parameter uncertainty only), and
* a *new gauging* (parameter uncertainty plus residual spread plus the station's typical gauging
  uncertainty),

with a flag for stages outside the gauged range (extrapolation).
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr

from . import mixture, status
from .chain_stats import bfmi
from .figures import plot_periods, plot_rating
from .idata import FitData
from .keys import station_keys
from .history import keep_issued
from .intervals import median_and_hpdi_of_log, prob_label
from .io import load_groups, load_idata, root_attrs, save_json, save_variables
from .candidates import Priors
from .plausibility import influential_gaugings, own_offsets_flag, sigma_flag
from .posterior import (LOO_ATTR, breakpoint_medians, gate, model_of, parameter_summary, period_views,
                        stored_convergence, stored_loo)
from .predict import flat_draws, predict_log, stage_grid
from .runtime import progress


#: raised when the summary's outputs change for the same inputs
VERSION = "5"  # 5: the figure is SVG
#: the groups of a fit that the summary reads: not the prior check's draws it carries, nor the log-likelihood and the
#: observations (4 ms a group), as the fit keeps its PSIS-LOO in its attributes (a file written before reads the
#: log-likelihood too, :func:`ratingflow.posterior.stored_loo`)
SUMMARISED_GROUPS = ("posterior", "sample_stats", "constant_data")


def rating_table(idata: FitData, seed: int, step: float, below: float, above: float,
                 probs=(0.9, 0.95), priors: Priors = Priors(), components=None) -> pd.DataFrame:
    """The station's rating table (SI units); see the module docstring. ``components``
    (:func:`ratingflow.mixture.components`): the median and bands are those of the candidates' stacking mixture;
    None: of the fit's own draws."""
    const = idata.constant_data
    station = idata.attrs.get("station") or idata.posterior.attrs["station"]
    stage = const["stage"].values
    offset = float(const["stage_offset"])
    grid = stage_grid(stage.min(), stage.max(), step, below, above)
    candidate, structure, context = model_of(idata)
    typical_sd_log = float(np.median(const["discharge_sd_log"].values))
    log_curve, log_gauging = mixture.predicted(
        components or [mixture.Component(candidate.name, 1.0, structure, context, flat_draws(idata.posterior))],
        station_keys(seed, station)["predict"],
        lambda c, samples, key: predict_log(key, samples, grid - offset, c.context, typical_sd_log, c.structure, priors))
    table = pd.DataFrame({"stage_m": grid})
    for kind, logs in (("curve", log_curve), ("gauging", log_gauging)):
        median, bands = median_and_hpdi_of_log(logs, probs)
        if kind == "curve":
            table["discharge_median_m3s"] = median
        for prob, (lo, hi) in bands.items():
            label = prob_label(prob)
            table[f"{kind}_hpdi{label}_lower_m3s"] = lo
            table[f"{kind}_hpdi{label}_upper_m3s"] = hi
    table["extrapolated"] = (grid < stage.min() - 1e-9) | (grid > stage.max() + 1e-9)
    if candidate.gplm:
        from .model import gp_basis

        basis = np.asarray(gp_basis(grid - offset, float(context["span"]), structure.gplm_terms, priors), np.float64)
        b = idata.posterior["b"].values.reshape(-1)
        w = idata.posterior["exponent_w"].values.reshape(len(b), -1)
        table["exponent_median"] = np.median(b[:, None] + w @ basis.T, axis=0)
    if "breakpoint" in idata.posterior:
        table["segment"] = 1 + np.searchsorted(breakpoint_medians(idata.posterior), grid, side="right")
    table.attrs.update({"station": station, "typical_gauging_sd_log": typical_sd_log, "model": candidate.name,
                        "model_description": candidate.describe(),
                        "equation": "; ".join(equations(idata)["text"])})
    if components and len(components) > 1:
        table.attrs["mixture_weights"] = mixture.describe([{"model": c.name, "weight": c.weight} for c in components])
        table.attrs["mixture"] = ("median and bands of the candidates mixed by their PSIS-LOO stacking weights: "
                                  + table.attrs["mixture_weights"] + f"; the equation is the chosen model's ({candidate.name})")
    return table


def equations(idata: FitData) -> dict:
    """The chosen curve as readable equations: per segment a, b, its offset (stage of zero flow) and
    its stage range (posterior medians), in SI units. Hydrographers copy these into their reports."""
    post = idata.posterior
    med = {name: np.atleast_1d(np.median(post[name].values.reshape(-1, *post[name].shape[2:]), axis=0))
           for name in ("a", "b", "h0")}
    offsets = (np.median(post["offset"].values.reshape(-1, post["offset"].shape[-1]), axis=0)
               if "offset" in post else np.repeat(med["h0"], len(med["b"])))
    breaks = breakpoint_medians(post)
    stage = idata.constant_data["stage"].values
    edges = [float(med["h0"][0]), *breaks.tolist(), None]
    gplm = idata.attrs.get("model") == "gplm"
    segments, text = [], []
    for k, (a, b, e) in enumerate(zip(med["a"], med["b"], offsets)):
        seg = {"segment": k + 1, "a": float(a), "b": float(b), "offset_m": float(e),
               "stage_from_m": float(edges[k]), "stage_to_m": None if edges[k + 1] is None else float(edges[k + 1])}
        segments.append(seg)
        upper = f"{seg['stage_to_m']:.3f}" if seg["stage_to_m"] is not None else "above"
        rng = f"{seg['stage_from_m']:.3f} < H <= {upper}" if upper != "above" else f"H > {seg['stage_from_m']:.3f}"
        exponent = f"{b:.4g}" if not gplm else f"({b:.4g} + beta(H))"
        offset = f"H - {e:.4f}" if e >= 0 else f"H + {-e:.4f}"
        text.append(f"Q = {a:.6g} * ({offset})^{exponent} for {rng} m")
    note = ("coefficients are posterior medians in m and m3/s; offset is each segment's stage of zero flow "
            f"(the first is h0); the gauged range is {stage.min():.3f}-{stage.max():.3f} m")
    transition = float(idata.attrs.get("structure_transition", 0.0))
    if len(breaks) and transition > 0:
        # at a breakpoint the rounding adds about transition * ln 2 * (b_k d'/d - b_(k-1)) to ln Q
        below, above = breaks - offsets[:-1], breaks - offsets[1:]
        step = np.abs(med["b"][1:] * below / above - med["b"][:-1])
        note += (f"; the table rounds each change of control over about +-{100 * transition:.0f} % of depth, so at a "
                 f"breakpoint it differs from the segment equations by up to {100 * transition * np.log(2) * step.max():.1f} %")
    if gplm:
        note += "; beta(H), the exponent's variation with stage, is tabulated in the rating table"
    return {"segments": segments, "text": text, "note": note}


def period_tables(views: list, *args, **kwargs) -> pd.DataFrame:
    """The rating table of every period, one after the other, with its period and validity dates
    (UTC; empty: open-ended) in front."""
    parts = []
    for p, view in enumerate(views):
        table = rating_table(view, *args, **kwargs)
        table.insert(0, "period", p + 1)
        table.insert(1, "valid_from", view.attrs.get("valid_from", ""))
        table.insert(2, "valid_to", view.attrs.get("valid_to", ""))
        parts.append(table)
    out = pd.concat(parts, ignore_index=True)
    out.attrs.update(parts[-1].attrs)
    out.attrs["equation"] = " | ".join(f"period {p + 1}: {t.attrs['equation']}" for p, t in enumerate(parts)) \
        if len(parts) > 1 else parts[0].attrs["equation"]
    return out


#: the table's columns that hold one value per period (netCDF: along ``period`` only)
PER_PERIOD = ("valid_from", "valid_to", "issued")
#: what the bands are, in the netCDF table's attributes
BANDS = ("curve_*: HPDI of the rating curve (parameter uncertainty); gauging_*: HPDI of a new gauging "
         "(plus residual spread and the station's typical gauging uncertainty)")


def table_variables(table: pd.DataFrame) -> tuple[dict, dict]:
    """The rating table's netCDF layout: ``{name: (dims, values, attrs)}`` and the file's attributes. Dimensions
    (period, stage_m), the stages of every period on one grid; a stage outside a period's grid is NaN (an integer
    column then float), as ``xr.Dataset.from_dataframe`` lays the table out, and ``extrapolated`` 1 there."""
    if "period" not in table:
        table = table.assign(period=1, valid_from="", valid_to="")
    periods, p = np.unique(table["period"].to_numpy(), return_inverse=True)
    stages, s = np.unique(table["stage_m"].to_numpy(), return_inverse=True)
    shape = (len(periods), len(stages))
    missing = shape[0] * shape[1] > len(table)
    variables = {"period": (("period",), periods, {}),
                 "stage_m": (("stage_m",), stages, {"units": "m", "long_name": "stage (station datum)"})}
    for name in table.columns:
        if name in ("period", "stage_m", *PER_PERIOD):
            continue
        values = table[name].to_numpy()
        if name == "extrapolated":
            grid = np.ones(shape, np.int8)
            attrs = {"meaning": "1 where the stage lies outside the period's gauged range (or its grid)"}
        else:
            dtype = np.result_type(values.dtype, np.float64) if missing and values.dtype.kind in "iub" else values.dtype
            grid = np.full(shape, np.nan, dtype) if missing else np.zeros(shape, dtype)
            attrs = {"units": "m3/s"} if name.endswith("_m3s") else {}
        grid[p, s] = values
        variables[name] = (("period", "stage_m"), grid, attrs)
    first = np.unique(p, return_index=True)[1]  # each period's first row
    meanings = {"valid_from": "UTC; empty: open-ended", "valid_to": "UTC; empty: open-ended",
                "issued": "the history snapshot this period's table was kept from ('' : issued now)"}
    for name in PER_PERIOD:
        if name in table:
            variables[name] = (("period",), table[name].to_numpy(str)[first], {"meaning": meanings[name]})
    return variables, {**table.attrs, "bands": BANDS}


def table_dataset(table: pd.DataFrame) -> xr.Dataset:
    """The rating table as an xarray Dataset (:func:`table_variables`), as the netCDF table reads back."""
    variables, attrs = table_variables(table)
    return xr.Dataset(variables, attrs=attrs)


def diagnostics(idata: FitData, thresholds: dict) -> dict:
    """Convergence diagnostics and pass/fail against ``thresholds``."""
    conv = stored_convergence(idata)
    out = {
        "station": idata.attrs.get("station"),
        "rhat_max": conv["rhat_max"],
        "ess_bulk_min": conv["ess_bulk_min"],
        "ess_tail_min": conv["ess_tail_min"],
        "divergences": conv["divergences"],
        "per_parameter": conv["per_parameter"],
        "thresholds": dict(thresholds),
    }
    if "energy" in idata.sample_stats:  # NUTS; importance draws (ratingflow.importance) have their weights' Pareto k
        out["bfmi_min"] = float(np.min(bfmi(idata.sample_stats["energy"].values)))
    for name in ("pareto_k", "sampler"):
        if name in conv:
            out[name] = conv[name]
    checks, failures = gate(out, thresholds)
    out["checks"], out["passed"], out["failures"] = checks, all(checks.values()), failures
    return out


def write_summary(table: pd.DataFrame, diag: dict, csv_path, nc_path, json_path) -> None:
    table.to_csv(csv_path, index=False, float_format="%.6g")
    save_variables(nc_path, *table_variables(table))
    save_json(diag, json_path)


def plausibility(idata: FitData, lines) -> tuple[list[dict], list[str]]:
    """Gaugings with high leverage in the chosen model (PSIS-LOO Pareto k above 0.7, by raw line), flags for
    those that drive the fit (the other gaugings contradict them too), and for a residual SD far above the
    gaugings' stated uncertainty."""
    influential = influential_gaugings(*stored_loo(idata), lines)
    flags = [f"gauging at raw line {g['line']} drives the fit: PSIS-LOO Pareto k {g['pareto_k']:.2f} > 0.7 (the "
             f"curve changes a lot without it) and the other gaugings contradict it (its leave-one-out log density "
             f"is {g['loo_drop']:.1f} below a typical gauging's); kept, check it" for g in influential if g["drives_fit"]]
    sigma = float(np.median(idata.posterior["sigma"].values))
    typical = float(np.median(idata.constant_data["discharge_sd_log"].values))
    flags += [flag for flag in (sigma_flag(sigma, typical), own_offsets_flag(own_offsets(idata))) if flag]
    return influential, flags


def own_offsets(idata: FitData) -> dict | None:
    """The BaRatin form's profile check (:func:`ratingflow.screen.own_offsets_check`: two segments only) of a
    timeless fit with one h0 for every segment; None for any other fit. On the station's gaugings alone (the grids
    ignore the sheet's ranges, as the check compares two forms, not a fit with its priors)."""
    from .data import StationData
    from .screen import own_offsets_check

    candidate, structure, _ = model_of(idata)
    if candidate.mode or structure.segment_offsets or "offset_rel" in idata.posterior:
        return None
    const = idata.constant_data
    station = StationData(str(idata.attrs.get("station", "")), const["stage"].values, const["discharge"].values,
                          const["discharge_sd"].values)
    return own_offsets_check(station, candidate, structure)


def run(fit_nc, table_csv, table_nc, diagnostics_json, plot_path, seed: int, table_cfg: dict, thresholds: dict,
        priors: Priors = Priors(), title: str = "", clean_csv=None, history=None) -> None:
    """Pipeline step: rating table, diagnostics and figure of one station. With ``history`` (the folder
    of issued ratings), past rating periods that were issued with the same start and gaugings keep
    their issued table (:func:`ratingflow.history.keep_issued`)."""
    idata = load_idata(fit_nc, SUMMARISED_GROUPS)
    reason = status.skipped(idata)
    if not reason and LOO_ATTR not in idata.attrs:  # written before the fit kept its PSIS-LOO
        idata = load_idata(fit_nc, (*SUMMARISED_GROUPS, "log_likelihood"))
    if reason:
        status.placeholder_figure(plot_path, idata.attrs.get("station", ""), reason)
        pd.DataFrame(columns=["stage_m", "discharge_median_m3s", "extrapolated"]).to_csv(table_csv, index=False)
        xr.Dataset(attrs={"station": idata.attrs.get("station", ""), "skipped": reason}).to_netcdf(table_nc, engine="netcdf4")
        save_json({"station": idata.attrs.get("station"), "skipped": reason, "passed": False,
                   "failures": [reason]}, diagnostics_json)
        return
    views = period_views(idata)
    mixed = len(views) == 1 and len(mixture.listed(idata.attrs)) > 1
    components = mixture.components(idata, load_groups(fit_nc, mixture.PREFIX)) if mixed else None
    table = period_tables(
        views, seed, float(table_cfg["stage_step_m"]), float(table_cfg["extend_below"]),
        float(table_cfg["extend_above"]), tuple(table_cfg["hpdi_probs"]), priors, components=components,
    )
    diag = diagnostics(idata, thresholds)
    diag["issued"] = []
    if history is not None and clean_csv is not None and len(views) > 1:
        clean = pd.read_csv(clean_csv, dtype={"datetime": str}, keep_default_na=False)
        table, diag["issued"] = keep_issued(table, clean, history, str(idata.attrs.get("station")))
    stage, q = idata.constant_data["stage"].values, idata.constant_data["discharge"].values
    diag["gauged"] = {"stage_min_m": float(stage.min()), "stage_max_m": float(stage.max()),
                      "discharge_min_m3s": float(q.min()), "discharge_max_m3s": float(q.max())}
    diag["parameters"] = parameter_summary(views[-1])  # the current period's
    lines = (pd.read_csv(clean_csv)["line"].to_numpy() if clean_csv is not None
             else np.arange(len(stage)) + 2)  # without the clean table: the gauging's row number
    diag["influential"], diag["plausibility"] = plausibility(idata, lines)
    diag["model"] = {"name": idata.attrs.get("model"), "description": idata.attrs.get("model_description"),
                     "n_segments": int(idata.posterior.sizes["segment"]),
                     "choice": idata.attrs.get("model_choice", ""), "equations": equations(views[-1]),
                     "mixture": mixture.listed(idata.attrs) if mixed else [], "bands": table.attrs.get("mixture", "")}
    diag["periods"] = [{"period": p + 1, "valid_from": v.attrs.get("valid_from", ""), "valid_to": v.attrs.get("valid_to", ""),
                        "n_gaugings": int(v.constant_data["stage"].size), "parameters": parameter_summary(v),
                        "equations": equations(v)} for p, v in enumerate(views)]
    write_summary(table, diag, table_csv, table_nc, diagnostics_json)
    if len(views) > 1 or "gauging_time" in idata.constant_data:  # dated: residuals against time, shifts marked
        plot_periods(idata, views, table, plot_path, title)
    else:
        plot_rating(idata, table, plot_path, title)
    progress(f"station {idata.attrs.get('station')}: "
             + json.dumps({k: diag[k] for k in ("rhat_max", "ess_bulk_min", "divergences", "passed")}))


def run_batch(fit_paths, outputs: dict, seed: int, table_cfg: dict, thresholds: dict,
              priors: Priors = Priors(), titles=None, clean_paths=None, history=None, previous=None) -> None:
    """Pipeline step for a batch of stations (one process, see :mod:`ratingflow.batches`); ``outputs`` maps
    table, nc, diagnostics and plot to per-station paths. ``previous`` maps the same keys to the published
    folders: a station whose fit, gaugings, issued ratings and settings are unchanged gets its published
    summary linked (:mod:`ratingflow.reuse`)."""
    from dataclasses import asdict
    from pathlib import Path

    from . import reuse

    kinds = ("table", "nc", "diagnostics", "plot")
    for i, fit_nc in enumerate(fit_paths):
        station = Path(fit_nc).stem
        # issued ratings matter only to a fit with rating periods (see run): for a timeless station they would
        # make its first run after the archive summarise it again for nothing
        # (the fit file's attributes are read only where the station has issued ratings: 0.01 s a station)
        dated = history and (Path(history) / station).is_dir() and int(root_attrs(fit_nc).get("periods", 1)) > 1
        issued = sorted((Path(history) / station).glob("*/table.csv")) if dated else []
        key = reuse.digest([fit_nc, clean_paths[i] if clean_paths else None, *issued],
                           {"table": table_cfg, "thresholds": thresholds, "priors": asdict(priors),
                            "title": titles[i] if titles else ""}, seed, VERSION)
        targets = [outputs[k][i] for k in kinds]
        if reuse.reuse(previous and [previous[k] for k in kinds], targets, key):
            progress(f"station {station}: fit as published, summary reused")
            continue
        run(fit_nc, *targets, seed, table_cfg, thresholds, priors, titles[i] if titles else "",
            clean_paths[i] if clean_paths else None, history)
        reuse.record(targets[0], key)
