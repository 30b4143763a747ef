"""Report: one row per station with data counts, parameters, diagnostics, verdicts and flags."""
from __future__ import annotations

import json

import arviz as az
import numpy as np
import pandas as pd
from numpyro.diagnostics import hpdi

from .model import PARAMETERS
from .sheet import StationSpec


def _parameter_columns(idata: az.InferenceData, prob: float = 0.9) -> dict:
    out = {}
    label = f"{round(prob * 100):d}"
    for name in PARAMETERS:
        draws = idata.posterior[name].values.reshape(-1).astype(np.float64)
        lo, hi = hpdi(draws, prob)
        out[f"{name}_median"] = float(np.median(draws))
        out[f"{name}_hpdi{label}_lower"] = float(lo)
        out[f"{name}_hpdi{label}_upper"] = float(hi)
    return out


def station_row(spec: StationSpec, clean_csv, rejected_csv, prior_json, fit_nc, diagnostics_json) -> dict:
    clean = pd.read_csv(clean_csv)
    rejected = pd.read_csv(rejected_csv)
    with open(prior_json) as fh:
        prior = json.load(fh)
    with open(diagnostics_json) as fh:
        diag = json.load(fh)
    idata = az.from_netcdf(fit_nc)
    flags = list(diag["failures"])
    if not prior["passed"]:
        flags.append(
            f"prior check: {prior['share_inside']:.0%} of gaugings inside the prior predictive "
            f"{prior['interval']:.0%} range (< {prior['min_share']:.0%})"
        )
    if spec.controls > 1:
        flags.append(f"sheet says {spec.controls} controls; a single power law was fitted")
    n_default = int((clean["uncertainty_source"] == "default").sum())
    row = {
        "station_id": spec.station_id,
        "name": spec.name,
        "status": "flagged" if flags else "ok",
        "flags": "; ".join(flags),
        "gaugings_used": len(clean),
        "gaugings_rejected": len(rejected),
        "gaugings_default_uncertainty": n_default,
        "stage_min_m": float(clean["stage_m"].min()),
        "stage_max_m": float(clean["stage_m"].max()),
        "discharge_min_m3s": float(clean["discharge_m3s"].min()),
        "discharge_max_m3s": float(clean["discharge_m3s"].max()),
        **_parameter_columns(idata),
        "rhat_max": diag["rhat_max"],
        "ess_bulk_min": diag["ess_bulk_min"],
        "ess_tail_min": diag["ess_tail_min"],
        "divergences": diag["divergences"],
        "bfmi_min": diag["bfmi_min"],
        "diagnostics_passed": diag["passed"],
        "prior_share_inside": prior["share_inside"],
        "prior_check_passed": prior["passed"],
    }
    return row


def stations_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def run(specs: list[StationSpec], inputs: dict[str, list[str]], out_csv) -> pd.DataFrame:
    """Pipeline step: ``inputs`` maps clean/rejected/prior/fit/diagnostics to per-station paths in
    the order of ``specs``."""
    rows = [
        station_row(spec, *(inputs[k][i] for k in ("clean", "rejected", "prior", "fit", "diagnostics")))
        for i, spec in enumerate(specs)
    ]
    table = stations_table(rows)
    table.to_csv(out_csv, index=False, float_format="%.6g")
    flagged = table[table["status"] != "ok"]
    print(f"{len(table)} stations, {len(flagged)} flagged")
    for _, row in flagged.iterrows():
        print(f"  {row['station_id']}: {row['flags']}")
    return table
