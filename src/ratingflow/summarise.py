"""Summarise a fit: the rating table with HPDI bands, and convergence diagnostics.

The table gives, on a regular stage grid, the median discharge and ``numpyro.diagnostics.hpdi``
bounds for

* the *curve* (parameter uncertainty only), and
* a *new gauging* (parameter uncertainty plus residual spread plus the station's typical gauging
  uncertainty),

with a flag for stages outside the gauged range (extrapolation).
"""
from __future__ import annotations

import json
import math

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from numpyro.diagnostics import hpdi

from .keys import station_keys
from .io import load_idata, save_json
from .model import PARAMETERS, Priors
from .predict import CURVE_SITES, predict


def stage_grid(stage_min: float, stage_max: float, step: float, below: float, above: float) -> np.ndarray:
    """Regular grid on multiples of ``step`` from ``below`` x range under the lowest gauging to
    ``above`` x range over the highest."""
    span = stage_max - stage_min
    lo = math.floor(round((stage_min - below * span) / step, 6))
    hi = math.ceil(round((stage_max + above * span) / step, 6))
    decimals = max(0, -math.floor(math.log10(step)) + 1)
    return np.round(np.arange(lo, hi + 1) * step, decimals)


def _prob_label(prob: float) -> str:
    return f"{round(prob * 100):d}"


def rating_table(idata: az.InferenceData, seed: int, step: float, below: float, above: float,
                 probs=(0.9, 0.95), priors: Priors = Priors()) -> pd.DataFrame:
    """The station's rating table (SI units); see the module docstring."""
    const = idata.constant_data
    station = idata.attrs.get("station") or idata.posterior.attrs["station"]
    stage = const["stage"].values
    offset = float(const["stage_offset"])
    grid = stage_grid(stage.min(), stage.max(), step, below, above)
    samples = {k: idata.posterior[k].values.reshape(-1) for k in CURVE_SITES}
    typical_sd_log = float(np.median(const["discharge_sd_log"].values))
    curve, gauging = predict(
        station_keys(seed, station)["predict"], samples, grid - offset,
        float(const["stage_ref"]) - offset, typical_sd_log, priors,
    )
    table = pd.DataFrame({"stage_m": grid, "discharge_median_m3s": np.median(curve, axis=0)})
    for kind, draws in (("curve", curve), ("gauging", gauging)):
        for prob in probs:
            lo, hi = hpdi(draws, prob, axis=0)
            label = _prob_label(prob)
            table[f"{kind}_hpdi{label}_lower_m3s"] = lo
            table[f"{kind}_hpdi{label}_upper_m3s"] = hi
    table["extrapolated"] = (grid < stage.min() - 1e-9) | (grid > stage.max() + 1e-9)
    table.attrs.update({"station": station, "typical_gauging_sd_log": typical_sd_log})
    return table


def table_dataset(table: pd.DataFrame) -> xr.Dataset:
    ds = xr.Dataset.from_dataframe(table.set_index("stage_m"))
    ds["stage_m"].attrs.update(units="m", long_name="stage (station datum)")
    for name in ds.data_vars:
        if name.endswith("_m3s"):
            ds[name].attrs["units"] = "m3/s"
    ds["extrapolated"] = ds["extrapolated"].astype("int8")
    ds["extrapolated"].attrs["meaning"] = "1 where the stage lies outside the gauged range"
    ds.attrs.update({k: v for k, v in table.attrs.items()})
    ds.attrs["bands"] = (
        "curve_*: HPDI of the rating curve (parameter uncertainty); gauging_*: HPDI of a new gauging "
        "(plus residual spread and the station's typical gauging uncertainty)"
    )
    return ds


def parameter_summary(idata: az.InferenceData, prob: float = 0.9) -> dict:
    """Median and HPDI of each reported parameter (the report reads these, not the draws)."""
    out = {}
    label = _prob_label(prob)
    for name in PARAMETERS:
        draws = idata.posterior[name].values.reshape(-1).astype(np.float64)
        lo, hi = hpdi(draws, prob)
        out[f"{name}_median"] = float(np.median(draws))
        out[f"{name}_hpdi{label}_lower"] = float(lo)
        out[f"{name}_hpdi{label}_upper"] = float(hi)
    return out


def diagnostics(idata: az.InferenceData, thresholds: dict) -> dict:
    """Convergence diagnostics and pass/fail against ``thresholds``."""
    names = list(PARAMETERS)
    rhat = az.rhat(idata, var_names=names)
    ess_bulk = az.ess(idata, var_names=names, method="bulk")
    ess_tail = az.ess(idata, var_names=names, method="tail")
    out = {
        "station": idata.attrs.get("station"),
        # NaN (a parameter that never moved) propagates and fails the check
        "rhat_max": float(np.max([rhat[v].values for v in names])),
        "ess_bulk_min": float(np.min([ess_bulk[v].values for v in names])),
        "ess_tail_min": float(np.min([ess_tail[v].values for v in names])),
        "divergences": int(idata.sample_stats["diverging"].sum()),
        "bfmi_min": float(np.min(az.bfmi(idata))),
        "per_parameter": {
            v: {"rhat": float(rhat[v]), "ess_bulk": float(ess_bulk[v]), "ess_tail": float(ess_tail[v])} for v in names
        },
        "thresholds": dict(thresholds),
    }
    checks = {
        "rhat": out["rhat_max"] <= thresholds["rhat_max"],
        "ess_bulk": out["ess_bulk_min"] >= thresholds["ess_bulk_min"],
        "ess_tail": out["ess_tail_min"] >= thresholds["ess_tail_min"],
        "divergences": out["divergences"] <= thresholds["max_divergences"],
        "bfmi": out["bfmi_min"] >= thresholds["bfmi_min"],
    }
    out["checks"] = checks
    out["passed"] = all(checks.values())
    out["failures"] = [
        {"rhat": f"R-hat {out['rhat_max']:.4f} > {thresholds['rhat_max']}",
         "ess_bulk": f"bulk ESS {out['ess_bulk_min']:.1f} < {thresholds['ess_bulk_min']}",
         "ess_tail": f"tail ESS {out['ess_tail_min']:.1f} < {thresholds['ess_tail_min']}",
         "divergences": f"{out['divergences']} divergences > {thresholds['max_divergences']}",
         "bfmi": f"BFMI {out['bfmi_min']:.2f} < {thresholds['bfmi_min']}"}[k]
        for k, ok in checks.items() if not ok
    ]
    return out


def write_summary(table: pd.DataFrame, diag: dict, csv_path, nc_path, json_path) -> None:
    table.to_csv(csv_path, index=False, float_format="%.6g")
    table_dataset(table).to_netcdf(nc_path, engine="netcdf4")
    save_json(diag, json_path)


def run(fit_nc, table_csv, table_nc, diagnostics_json, seed: int, table_cfg: dict, thresholds: dict,
        priors: Priors = Priors()) -> None:
    """Pipeline step: rating table and diagnostics of one station."""
    from . import status

    idata = load_idata(fit_nc)
    reason = status.skipped(idata)
    if reason:
        pd.DataFrame(columns=["stage_m", "discharge_median_m3s", "extrapolated"]).to_csv(table_csv, index=False)
        xr.Dataset(attrs={"station": idata.attrs.get("station", ""), "skipped": reason}).to_netcdf(table_nc, engine="netcdf4")
        save_json({"station": idata.attrs.get("station"), "skipped": reason, "passed": False,
                   "failures": [reason]}, diagnostics_json)
        return
    table = rating_table(
        idata, seed, float(table_cfg["stage_step_m"]), float(table_cfg["extend_below"]),
        float(table_cfg["extend_above"]), tuple(table_cfg["hpdi_probs"]), priors,
    )
    diag = diagnostics(idata, thresholds)
    stage, q = idata.constant_data["stage"].values, idata.constant_data["discharge"].values
    diag["gauged"] = {"stage_min_m": float(stage.min()), "stage_max_m": float(stage.max()),
                      "discharge_min_m3s": float(q.min()), "discharge_max_m3s": float(q.max())}
    diag["parameters"] = parameter_summary(idata)
    write_summary(table, diag, table_csv, table_nc, diagnostics_json)
    print(json.dumps({k: diag[k] for k in ("rhat_max", "ess_bulk_min", "divergences", "passed")}))


def run_batch(fit_paths, outputs: dict, seed: int, table_cfg: dict, thresholds: dict,
              priors: Priors = Priors()) -> None:
    """Pipeline step for a batch of stations (one process, see :mod:`ratingflow.batches`)."""
    for i, fit_nc in enumerate(fit_paths):
        run(fit_nc, outputs["table"][i], outputs["nc"][i], outputs["diagnostics"][i], seed, table_cfg, thresholds,
            priors)
