"""Pipeline stage ``discharge``: a station's stage record through its ratings, with their uncertainty.

Per station with a ``stage_file`` in the sheet, ``results/discharge/``:

* ``{station}.nc`` and ``{station}.csv``: at every time step the stage, the rating period used, the median
  discharge, its 90 and 95 % HPDI, and flags;
* ``{station}.daily.csv`` / ``.monthly.csv`` / ``.annual.csv`` (also in the netCDF): mean discharge and volume,
  computed per posterior draw and summarised afterwards (never from the bounds), with the share of time covered;
* ``{station}.gaps.csv``: every stretch without discharge and why; ``{station}.rejected.csv``: stage rows not used,
  with line and reason; ``{station}.status.json``: counts, flags, notes; ``{station}.png``: the hydrograph.

The bands combine the posterior draws (each a whole curve), the model's residual (structural) error and the stage
error of the record where it states one (:mod:`ratingflow.hydrograph`). Each step uses the rating period valid at its
time. A step above the highest or below the lowest gauging of its period is flagged; above the limit
(``max_depth_factor`` x the highest gauged depth above h0) its discharge is missing, never extrapolated silently. A
missing stage stays missing.
A station whose inputs (stage file, fit, settings) are those of its published series is not recomputed: its files
are linked from ``results/discharge/`` (``previous``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from . import mixture, reuse
from . import status as station_status
from .dates import period_index
from .io import load_groups, load_idata, save_json
from .intervals import prob_label
from .keys import discharge_key
from .candidates import Priors
from .rawfile import CleaningError
from .runtime import progress
from .sheet import StationSpec
from .stage_record import load_record

#: flag bits of a time step (CF ``flag_masks``)
FLAGS = {"missing_stage": 1, "below_gauged": 2, "above_gauged": 4, "beyond_limit": 8, "gap_before": 16}
#: what the station's files are called, by kind
SUFFIXES = {"nc": ".nc", "csv": ".csv", "daily": ".daily.csv", "monthly": ".monthly.csv", "annual": ".annual.csv",
            "gaps": ".gaps.csv", "rejected": ".rejected.csv", "plot": ".png"}
DEFAULTS = {"draws": 1000, "max_depth_factor": 1.5, "max_gap_hours": 24.0, "min_coverage": 0.95,
            "hpdi_probs": [0.9, 0.95], "stage_error": True}
#: a station is flagged when more than this share of its valid steps is beyond the limit
BEYOND_SHARE = 0.01
#: the code of the series: a change here recomputes every station's series
VERSION = "2"


def thinned(posterior, draws: int) -> dict[str, np.ndarray]:
    """``draws`` draws spread evenly over every chain (all of them when the fit has fewer)."""
    from .predict import SAMPLED_SITES, flat_draws

    flat = flat_draws(posterior, SAMPLED_SITES)
    total = len(flat["gap"])
    idx = np.unique(np.linspace(0, total - 1, min(draws, total)).round().astype(int))
    return {k: np.asarray(v[idx], np.float32) for k, v in flat.items()}


def ranges(views: list, factor: float) -> pd.DataFrame:
    """Per rating period: gauged stage range, median h0 and the limit above which discharge is missing."""
    rows = []
    for p, view in enumerate(views):
        stage = view.constant_data["stage"].values
        h0 = float(np.median(view.posterior["h0"].values))
        top = float(stage.max())
        rows.append({"period": p + 1, "valid_from": view.attrs.get("valid_from", ""),
                     "valid_to": view.attrs.get("valid_to", ""), "gauged_min_m": float(stage.min()),
                     "gauged_max_m": top, "h0_m": h0, "limit_m": h0 + factor * (top - h0)})
    return pd.DataFrame(rows)


def step_flags(stage: np.ndarray, part: np.ndarray, limits: pd.DataFrame) -> np.ndarray:
    lo, hi, limit = (limits[c].to_numpy()[part] for c in ("gauged_min_m", "gauged_max_m", "limit_m"))
    flags = np.zeros(len(stage), np.int16)
    with np.errstate(invalid="ignore"):
        flags |= np.where(np.isnan(stage), FLAGS["missing_stage"], 0).astype(np.int16)
        flags |= np.where(stage < lo - 1e-9, FLAGS["below_gauged"], 0).astype(np.int16)
        flags |= np.where(stage > hi + 1e-9, FLAGS["above_gauged"], 0).astype(np.int16)
        flags |= np.where(stage > limit, FLAGS["beyond_limit"], 0).astype(np.int16)
    return flags


def flag_names(flags: np.ndarray) -> list[str]:
    return [";".join(name for name, bit in FLAGS.items() if f & bit) for f in flags]


def gaps(time: np.ndarray, flags: np.ndarray, valid: np.ndarray, max_gap_s: float) -> pd.DataFrame:
    """Every stretch of time that no integrated interval covers, with its cause(s)."""
    cols = ["start", "end", "hours", "cause"]
    if len(time) < 2:
        return pd.DataFrame(columns=cols)
    dt = np.diff(time).astype("timedelta64[ns]").astype(np.int64) / 1e9
    used = valid[:-1] & valid[1:] & (dt <= max_gap_s)
    rows, i, n = [], 0, len(dt)
    while i < n:
        if used[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and not used[j + 1]:
            j += 1
        causes = []
        for k in range(i, j + 1):
            for end in (k, k + 1):
                if flags[end] & FLAGS["missing_stage"]:
                    causes.append("missing stage")
                elif flags[end] & FLAGS["beyond_limit"]:
                    causes.append("stage beyond the limit")
            if valid[k] and valid[k + 1] and dt[k] > max_gap_s:
                causes.append(f"no record for more than {max_gap_s / 3600:g} h")
        start, end = pd.Timestamp(time[i]), pd.Timestamp(time[j + 1])
        rows.append({"start": start.isoformat() + "Z", "end": end.isoformat() + "Z",
                     "hours": round((end - start).total_seconds() / 3600, 3), "cause": "; ".join(dict.fromkeys(causes))})
        i = j + 1
    return pd.DataFrame(rows, columns=cols)


def aggregates(volumes: np.ndarray, covered: np.ndarray, days: np.ndarray, probs, min_coverage: float) -> dict:
    """Daily, monthly and annual mean discharge and volume: per draw, then median and HPDI. Both are over the
    covered part of the window (``coverage``: its share; a gap is never filled, since the missing part is often a
    flood beyond the limit); a window covered less than ``min_coverage`` has none."""
    from .intervals import median_and_hpdi

    out = {}
    day_index = pd.DatetimeIndex(days.astype("datetime64[ns]"))
    for name, key in (("daily", day_index.normalize()), ("monthly", day_index.to_period("M").to_timestamp()),
                      ("annual", day_index.to_period("Y").to_timestamp())):
        starts, group = np.unique(key.to_numpy(), return_inverse=True)
        n = len(starts)
        vol = np.zeros((volumes.shape[0], n))
        np.add.at(vol.T, group, volumes.T)
        cov = np.bincount(group, covered, minlength=n)
        ends = {"daily": starts + np.timedelta64(1, "D"),
                "monthly": (pd.DatetimeIndex(starts) + pd.offsets.MonthBegin(1)).to_numpy(),
                "annual": (pd.DatetimeIndex(starts) + pd.offsets.YearBegin(1)).to_numpy()}[name]
        share = cov / (ends - starts).astype("timedelta64[s]").astype(float)
        ok = share >= min_coverage - 1e-12
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(ok, vol / np.where(cov > 0, cov, 1.0), np.nan)
        table = pd.DataFrame({"start": pd.DatetimeIndex(starts).strftime("%Y-%m-%d"), "coverage": share.round(6)})
        for what, draws, unit in (("mean_discharge", mean, "m3s"), ("volume", np.where(ok, vol, np.nan), "m3")):
            median, bands = median_and_hpdi(np.where(ok, draws, 0.0), probs)
            table[f"{what}_median_{unit}"] = np.where(ok, median, np.nan)
            for prob, (lo, hi) in bands.items():
                table[f"{what}_hpdi{prob_label(prob)}_lower_{unit}"] = np.where(ok, lo, np.nan)
                table[f"{what}_hpdi{prob_label(prob)}_upper_{unit}"] = np.where(ok, hi, np.nan)
        out[name] = table
        out[name + "_draws"] = (starts, np.where(ok, vol, np.nan))
    return out


def unit_hint(stage: np.ndarray, lo: float, hi: float) -> str:
    """A hint when the record's stages lie far from the gauged range but would fit it in another unit."""
    med = float(np.nanmedian(stage))
    span = max(hi - lo, 0.05)
    if lo - span <= med <= hi + span:
        return ""
    for factor, words in ((0.01, "cm read as m"), (100.0, "m read as cm"), (0.3048, "ft read as m"),
                          (1 / 0.3048, "m read as ft")):
        if lo - span <= med * factor <= hi + span:
            return f"; the record's median stage {med:g} m would fit the gauged range {lo:g}-{hi:g} m if it were {words}"
    return f"; the record's median stage {med:g} m lies far from the gauged range {lo:g}-{hi:g} m (datum?)"


def compute(spec: StationSpec, stage_path, idata, settings: dict, seed: int, priors: Priors = Priors(),
            stored_groups: dict | None = None) -> dict:
    """The discharge series of one station (see the module docstring); returns the pieces :func:`write` writes.
    ``stored_groups``: the fit file's mixture groups (:func:`ratingflow.io.load_groups`), where it lists a mixture."""
    # JAX, NumPyro and ArviZ (2 s to import) only here: a job whose stations have no stage record never needs them
    from .hydrograph import discharge_series, windows
    from .posterior import model_of, period_views

    settings = {**DEFAULTS, **settings}
    record, rejected, info = load_record(spec, stage_path)
    views = period_views(idata)
    time = record["time"].to_numpy()
    stage = record["stage_m"].to_numpy()
    part = period_index(time, [v.attrs.get("valid_from", "") for v in views])
    limits = ranges(views, float(settings["max_depth_factor"]))
    flags = step_flags(stage, part, limits)
    valid = ~np.isnan(stage) & ~(flags & FLAGS["beyond_limit"]).astype(bool)
    max_gap = float(settings["max_gap_hours"]) * 3600
    win = windows(time, valid, max_gap)
    if len(time) > 1:
        dt = np.diff(time).astype("timedelta64[ns]").astype(np.int64) / 1e9
        flags[1:] |= np.where(dt > max_gap, FLAGS["gap_before"], 0).astype(np.int16)
    components = None
    if len(views) == 1 and len(mixture.listed(idata.attrs)) > 1:  # a timeless fit's stacking mixture
        components = mixture.components(idata, stored_groups, int(settings["draws"]))
    draws, contexts, offsets = [], [], []
    structure = None
    for view in views:
        _, structure, context = model_of(view)
        if components is None:  # the mixture brings its own draws
            draws.append(thinned(view.posterior, int(settings["draws"])))
        contexts.append(context)
        offsets.append(float(view.constant_data["stage_offset"]))
    if draws:
        n_draws = min(len(d["gap"]) for d in draws)
        draws = [{k: v[:n_draws] for k, v in d.items()} for d in draws]
    listed = [{"model": c.name, "weight": c.weight} for c in components or []]
    stage_rel = np.where(valid, stage - np.asarray(offsets)[part], 0.0)
    use_error = bool(settings["stage_error"])
    zeros = np.zeros(len(time))
    probs = tuple(settings["hpdi_probs"])
    series = discharge_series(
        discharge_key(seed, spec.station_id), draws, stage_rel,
        record["nonsys_sd_m"].to_numpy() if use_error else zeros,
        record["sys_index"].to_numpy() if use_error else np.full(len(time), -1),
        record["sys_sd_m"].to_numpy() if use_error else zeros, valid, win, contexts, structure, priors, probs, part,
        components)
    table = pd.DataFrame({"time": pd.DatetimeIndex(time).strftime("%Y-%m-%dT%H:%M:%SZ"), "line": record["line"],
                          "stage_m": stage, "period": part + 1, "discharge_median_m3s": series.median})
    for prob in probs:
        lo, hi = series.bounds[prob]
        table[f"discharge_hpdi{prob_label(prob)}_lower_m3s"] = lo
        table[f"discharge_hpdi{prob_label(prob)}_upper_m3s"] = hi
    table["flags"] = flag_names(flags)
    agg = aggregates(series.daily_volume, win.covered, win.days, probs, float(settings["min_coverage"]))
    gap_table = gaps(time, flags, valid, max_gap)
    n_valid = int((~np.isnan(stage)).sum())
    counts = {name: int((flags & bit).astype(bool).sum()) for name, bit in FLAGS.items()}
    warnings = list(info["notes"])
    extrapolated = counts["above_gauged"] - counts["beyond_limit"]
    if extrapolated:
        warnings.append(f"{extrapolated} step(s) ({extrapolated / max(n_valid, 1):.1%}) above the highest gauging of "
                        "their period, below the limit: extrapolated, flagged")
    beyond = ""
    if counts["beyond_limit"]:
        share = counts["beyond_limit"] / max(n_valid, 1)
        beyond = (f"{counts['beyond_limit']} step(s) ({share:.1%}) beyond the limit ({settings['max_depth_factor']} x "
                  "the highest gauged depth above h0): discharge missing"
                  + (unit_hint(stage, float(limits["gauged_min_m"].min()), float(limits["gauged_max_m"].max()))
                     if share > BEYOND_SHARE else ""))
        warnings.append(beyond)
    if len(gap_table):
        warnings.append(f"{len(gap_table)} gap(s) in the discharge series, {gap_table['hours'].sum():.1f} h in all")
    flagged = counts["beyond_limit"] > BEYOND_SHARE * max(n_valid, 1)
    summary = {
        "status": "flagged" if flagged else station_status.OK, "message": beyond if flagged else "",
        **info, "steps": len(time), "steps_computed": int(valid.sum()), "flag_counts": counts,
        "first": table["time"].iloc[0] if len(table) else "", "last": table["time"].iloc[-1] if len(table) else "",
        "gaps": len(gap_table), "gap_hours": float(gap_table["hours"].sum()) if len(gap_table) else 0.0,
        "warnings": warnings, "draws": len(series.daily_volume), "periods": limits.to_dict("records"),
        "mixture": mixture.describe(listed) if components else "",
        "bands": "posterior draws (whole curves"
                 + (f"; the candidates mixed by their stacking weights, {mixture.describe(listed)}" if components else "")
                 + ") + residual (structural) error"
                 + (f" + stage error ({info['stage_error']})" if use_error and info["stage_error"] != "none" else ""),
    }
    return {"table": table, "flags": flags, "aggregates": agg, "gaps": gap_table, "rejected": rejected,
            "status": summary, "limits": limits}


def dataset(result: dict, station: str) -> xr.Dataset:
    """The series and its aggregates as netCDF: dimensions time, day, month, year."""
    table = result["table"]
    ds = xr.Dataset(coords={"time": pd.to_datetime(table["time"].str.rstrip("Z")).to_numpy()})
    for column in table.columns:
        if column.endswith("_m3s") or column in ("stage_m", "period", "line"):
            ds[column] = ("time", table[column].to_numpy())
    ds["flags"] = ("time", result["flags"])
    ds["flags"].attrs.update(flag_masks=np.array(list(FLAGS.values()), np.int16), flag_meanings=" ".join(FLAGS))
    for name, dim in (("daily", "day"), ("monthly", "month"), ("annual", "year")):
        agg = result["aggregates"][name]
        ds.coords[dim] = pd.to_datetime(agg["start"]).to_numpy()
        for column in agg.columns:
            if column != "start":
                ds[f"{name}_{column}"] = (dim, agg[column].to_numpy())
    for name in ds.data_vars:
        if name.endswith("_m3s"):
            ds[name].attrs["units"] = "m3/s"
        elif name.endswith("_m3"):
            ds[name].attrs["units"] = "m3"
    ds["stage_m"].attrs["units"] = "m"
    ds.attrs.update({"station": station, "bands": result["status"]["bands"], "draws": result["status"]["draws"],
                     "time_zone": "UTC", "periods": json.dumps(result["limits"].to_dict("records"))})
    return ds


def write(result: dict, paths: dict, station: str, title: str, gaugings: pd.DataFrame | None) -> None:
    from .figures import plot_hydrograph

    dataset(result, station).to_netcdf(paths["nc"], engine="netcdf4")
    result["table"].to_csv(paths["csv"], index=False, float_format="%.6g")
    for name in ("daily", "monthly", "annual"):
        result["aggregates"][name].to_csv(paths[name], index=False, float_format="%.6g")
    result["gaps"].to_csv(paths["gaps"], index=False)
    result["rejected"].to_csv(paths["rejected"], index=False)
    plot_hydrograph(result["table"], gaugings, result["limits"], paths["plot"], title or station)


def _reuse(previous: Path | None, station: str, digest: str, paths: dict, status_path) -> bool:
    """Link the published files of a station whose inputs did not change; False when there are none."""
    if previous is None:
        return False
    old_status = previous / f"{station}.status.json"
    try:
        old = json.loads(old_status.read_text())
    except (OSError, ValueError):
        return False
    sources = {kind: previous / Path(path).name for kind, path in paths.items()}
    if old.get("inputs_digest") != digest or not all(p.exists() for p in sources.values()):
        return False
    for kind, source in sources.items():
        reuse.link(source, paths[kind])
    save_json({**old, "reused": True}, status_path)
    return True


def run(spec: StationSpec, raw_dir, fit_nc, clean_csv, folder, settings: dict, seed: int, priors: Priors = Priors(),
        title: str = "", previous=None) -> dict:
    """Pipeline step for one station: writes ``folder/{station}.*`` (see :data:`SUFFIXES`); a station without a
    stage record or without a rating gets only its status, with the reason."""
    station = spec.station_id
    folder = Path(folder)
    status_path = folder / f"{station}.status.json"
    paths = {kind: folder / f"{station}{suffix}" for kind, suffix in SUFFIXES.items()}
    base = {"station": station, "stage_file": spec.stage_file}
    if not spec.stage_file:
        save_json({**base, "status": "no stage record", "message": "no stage_file in the sheet"}, status_path)
        progress(f"station {station}: no stage record (sheet column stage_file), no discharge series")
        return {}
    stage_path = Path(raw_dir) / spec.stage_file
    digest = reuse.digest([stage_path, fit_nc], {**DEFAULTS, **settings}, seed, VERSION)
    if _reuse(Path(previous) if previous else None, station, digest, paths, status_path):
        progress(f"station {station}: discharge series unchanged (stage record and rating as published), reused")
        return {}
    idata = load_idata(fit_nc)
    reason = station_status.skipped(idata)
    try:
        if reason:
            _, rejected, info = load_record(spec, stage_path)
            save_json({**base, **info, "status": "no rating", "inputs_digest": digest,
                       "message": f"the stage record has no rating to go through: the station was not fitted ({reason})"},
                      status_path)
            rejected.to_csv(paths["rejected"], index=False)
            progress(f"station {station}: no discharge series, the station was not fitted ({reason})")
            return {}
        mixed = len(mixture.listed(idata.attrs)) > 1
        result = compute(spec, stage_path, idata, settings, seed, priors,
                         load_groups(fit_nc, mixture.PREFIX) if mixed else None)
    except CleaningError as err:
        save_json({**base, "status": "error", "message": str(err), "inputs_digest": digest}, status_path)
        progress(f"station {station}: no discharge series: {err}")
        return {}
    gaugings = pd.read_csv(clean_csv, dtype={"datetime": str}, keep_default_na=False) if clean_csv else None
    write(result, paths, station, title, gaugings)
    summary = {**base, **result["status"], "inputs_digest": digest, "reused": False}
    save_json(summary, status_path)
    progress(f"station {station}: discharge series of {summary['steps']} steps ({summary['first']} to "
             f"{summary['last']}), {summary['gaps']} gap(s); " + "; ".join(summary["warnings"]))
    return summary


def run_batch(specs, raw_dir, fit_paths, clean_paths, folder, settings: dict, seed: int, priors: Priors = Priors(),
              titles=None, previous=None) -> None:
    """Pipeline step for a batch of stations (one process, one compiled program per model structure)."""
    os.makedirs(folder, exist_ok=True)
    for i, spec in enumerate(specs):
        run(spec, raw_dir, fit_paths[i], clean_paths[i], folder, settings, seed, priors,
            titles[i] if titles else "", previous)
