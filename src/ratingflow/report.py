"""Report: one row per station with data counts, parameters, diagnostics, verdicts and flags."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import status as station_status
from .io import csv_reader, load_json
from .reuse import RowCache
from .sheet import StationSpec

#: the per-station files the report reads, by input name
INPUTS = ("status", "prior", "diagnostics", "models", "periods_status", "periods", "shifts", "discharge")


class StrictModeError(RuntimeError):
    """Strict mode and at least one station was not fitted or did not pass its checks."""


def station_row(spec: StationSpec, status_json, prior_json, diagnostics_json, models_csv, periods_json=None,
                periods_csv=None, shifts_csv=None, discharge_json=None, read=pd.read_csv) -> dict:
    """``read``: the CSV reader (:func:`ratingflow.io.csv_reader` in :func:`run`)."""
    status = load_json(status_json)
    periods_status = load_json(periods_json) if periods_json else {}
    if status.get("status") == station_status.OK and station_status.skip_reason(periods_status):
        status = {**status, "status": periods_status["status"], "message": periods_status["message"]}
    row = {
        "station_id": spec.station_id,
        "name": spec.name,
        "status": status["status"],
        "flags": "",
        "gaugings_raw": status["raw_rows"],
        "gaugings_used": status["clean_rows"],
        "gaugings_rejected": status["rejected_rows"],
        "rejected_by_reason": "; ".join(f"{k}: {v}" for k, v in status["rejected_by_reason"].items()),
        "gaugings_default_uncertainty": status["default_uncertainty_rows"],
        "suspect_gaugings": len(status["suspect_lines"]),
        "suspect_lines": " ".join(map(str, status["suspect_lines"])),
        "high_leverage_lines": "",
    }
    warnings = list(status.get("warnings", [])) + list(periods_status.get("warnings", []))
    series, series_flags = discharge_columns(discharge_json)
    row.update(series)
    reason = station_status.skip_reason(status)
    if reason:
        row["flags"] = "; ".join([reason, *warnings, *series_flags])
        return row
    prior = load_json(prior_json)
    diag = load_json(diagnostics_json)
    flags = [*warnings, *diag["failures"], *diag.get("plausibility", []), *series_flags]
    if not prior["passed"]:
        flags.append(
            f"prior check: {prior['share_inside']:.0%} of gaugings inside the prior predictive "
            f"{prior['interval']:.0%} range (< {prior['min_share']:.0%})"
        )
    model = diag["model"]
    if spec.controls is not None and model["name"] != "gplm" and model["n_segments"] != spec.controls:
        flags.append(f"sheet says {spec.controls} control(s); PSIS-LOO chose {model['description']}")
    flags.extend(breakpoint_disagreements(spec.expected_breakpoints(), diag["parameters"]))
    models = read(models_csv)
    elpd = "; ".join(f"{r.model}: {r.reason}" if not bool(getattr(r, "fitted", True)) else
                     f"{r.model}: {r.elpd_loo:.1f} (SE {r.se:.1f}, diff {r.elpd_diff:.1f} +- {r.dse:.1f}, "
                     f"weight {r.weight:.2f}, {int(r.n_pareto_k_high)} with Pareto k > 0.7)" for r in models.itertuples())
    if status["suspect_lines"]:
        flags.append(f"suspect gaugings at raw lines {row['suspect_lines']} (kept)")
    row["high_leverage_lines"] = " ".join(f"{g['line']} (k {g['pareto_k']:.2f})" for g in diag.get("influential", []))
    row.update({
        "status": "flagged" if flags else "ok",
        "flags": "; ".join(flags),
        "model": model["name"],
        "model_choice": model["choice"],
        "equation": "; ".join(model["equations"]["text"]),
        "table_bands": model.get("bands") or "the chosen model's draws",
        "candidates_elpd": elpd,
        **diag["gauged"],
        **diag["parameters"],
        "rhat_max": diag["rhat_max"],
        "ess_bulk_min": diag["ess_bulk_min"],
        "ess_tail_min": diag["ess_tail_min"],
        "divergences": diag["divergences"],
        "bfmi_min": diag.get("bfmi_min"),  # NUTS's; importance draws have their weights' Pareto k
        "importance_pareto_k": diag.get("pareto_k"),
        "diagnostics_passed": diag["passed"],
        "prior_share_inside": prior["share_inside"],
        "prior_check_passed": prior["passed"],
        **_period_columns(diag, shifts_csv, read),
    })
    return row


def discharge_columns(discharge_json) -> tuple[dict, list[str]]:
    """The station's discharge series (results/discharge/{station}.status.json) as report columns, and the flags it
    raises: a record that could not be read, too many steps beyond the limit, rejected or unsorted stage rows."""
    if not discharge_json:
        return {}, []
    d = load_json(discharge_json)
    counts = d.get("flag_counts", {})
    columns = {"discharge_status": d.get("status", ""), "discharge_steps": d.get("steps", 0),
               "discharge_from": d.get("first", ""), "discharge_to": d.get("last", ""),
               "stage_rows_raw": d.get("raw_rows", 0), "stage_rows_rejected": d.get("rejected_rows", 0),
               "steps_above_gauged": counts.get("above_gauged", 0), "steps_below_gauged": counts.get("below_gauged", 0),
               "steps_beyond_limit": counts.get("beyond_limit", 0), "discharge_gaps": d.get("gaps", 0),
               "discharge_gap_hours": d.get("gap_hours", 0.0), "discharge_bands": d.get("bands", "")}
    flags = []
    if d.get("status") in ("error", "flagged"):
        flags.append(f"discharge series: {d.get('message')}")
    if d.get("rejected_rows"):
        reasons = ", ".join(f"{k}: {v}" for k, v in d.get("rejected_by_reason", {}).items())
        flags.append(f"{d['rejected_rows']} stage row(s) rejected ({reasons}; see discharge/{d['station']}.rejected.csv)")
    if d.get("sorted"):
        flags.append(f"stage record out of time order ({d['out_of_order_rows']} row(s)): sorted")
    return columns, flags


def _period_columns(diag: dict, shifts_csv, read=pd.read_csv) -> dict:
    """The station's rating periods as the chosen model fitted them, and its shifts by source."""
    periods = diag.get("periods") or [{"period": 1, "valid_from": ""}]
    out = {"periods": len(periods), "current_period": periods[-1]["period"],
           "current_period_valid_from": periods[-1]["valid_from"]}
    if shifts_csv:
        shifts = read(shifts_csv, dtype=str, keep_default_na=False)
        applied = shifts[shifts["status"] == "applied"]
        out["shifts_known"] = " ".join(applied.loc[applied["source"] == "known", "date"].str[:10])
        out["shifts_detected"] = " ".join(f"{a[:10]}..{b[:10]}" for a, b in applied.loc[
            applied["source"] == "detected", ["interval_start", "interval_end"]].itertuples(index=False))
        out["shifts"] = "; ".join(filter(None, [f"known: {out['shifts_known']}" if out["shifts_known"] else "",
                                                f"detected: {out['shifts_detected']}" if out["shifts_detected"] else ""]))
    current = periods[-1]
    out["period"] = (f"period {current['period']} of {len(periods)}, valid from {current['valid_from'][:16]}"
                     if len(periods) > 1 else "one rating")
    return out


def periods_table(specs: list[StationSpec], periods_csvs, fitted_periods, read=pd.read_csv) -> pd.DataFrame:
    """results/periods.csv: every station's rating periods (from the periods stage), and whether the
    chosen model gives each its own rating (``fitted_periods``: the periods it fitted, per station) or
    fits one timeless rating through them."""
    frames = []
    for spec, periods_csv, fitted in zip(specs, periods_csvs, fitted_periods):
        table = read(periods_csv, dtype=str, keep_default_na=False)
        if not len(table):
            continue
        table.insert(0, "station_id", spec.station_id)
        table["rating"] = ("own rating" if fitted > 1 else
                           "one timeless rating (PSIS-LOO chose it over rating periods)" if len(table) > 1 else
                           "one rating")
        frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["station_id", "period"])


def breakpoint_disagreements(expected: list[float], parameters: dict) -> list[str]:
    """The hydrographer's breakpoints (sheet) that lie outside the 90 % HPDI of every breakpoint of
    the chosen model, or that the model has no breakpoint for."""
    fitted = [(parameters[f"breakpoint_{k}_hpdi90_lower"], parameters[f"breakpoint_{k}_hpdi90_upper"])
              for k in range(1, 3) if f"breakpoint_{k}_median" in parameters]
    out = []
    for stage in expected:
        if not fitted:
            out.append(f"sheet expects a breakpoint at {stage:g} m; the model chosen has none")
        elif not any(lo <= stage <= hi for lo, hi in fitted):
            bands = ", ".join(f"{lo:.3f}-{hi:.3f} m" for lo, hi in fitted)
            out.append(f"sheet expects a breakpoint at {stage:g} m; outside the fitted 90 % HPDI ({bands})")
    return out


def run(specs: list[StationSpec], inputs: dict[str, list[str]], out_csv, unassigned_csv=None,
        changes_csv=None, models_out=None, periods_out=None) -> pd.DataFrame:
    """Pipeline step: ``inputs`` maps each name in :data:`INPUTS` to per-station paths in the order
    of ``specs``; ``unassigned_csv`` lists rows of long-format files that belong to no station."""
    cache = RowCache(out_csv)  # an unchanged station's row is not computed again
    # models.csv is read twice, most shift tables are the same header, and most files did not change since the last run
    read = csv_reader(cache.path.with_name(f"{Path(out_csv).stem}.frames.pkl"))
    rows = []
    for i, spec in enumerate(specs):
        files = [inputs[k][i] for k in INPUTS]
        rows.append(cache.row(spec.station_id, files, spec, lambda: station_row(spec, *files, read=read)))  # noqa: B023
    cache.save()
    table = pd.DataFrame(rows)
    if changes_csv is not None:
        changes = pd.read_csv(changes_csv, keep_default_na=False).set_index("station_id")
        table["change_since_previous_run"] = table["station_id"].map(changes["change"])
        if "new_gaugings" in changes:
            table["new_gaugings"] = table["station_id"].map(changes["new_gaugings"])
        flagged = table["change_since_previous_run"].astype(str).str.startswith(
            ("possible rating shift", "new rating period", "new gaugings contradict"))
        for i in table.index[flagged]:
            table.at[i, "flags"] = "; ".join(filter(None, [table.at[i, "flags"], table.at[i, "change_since_previous_run"]]))
            if table.at[i, "status"] == "ok":
                table.at[i, "status"] = "flagged"
    table.to_csv(out_csv, index=False, float_format="%.6g")
    if models_out is not None:
        frames = [read(path).assign(station_id=spec.station_id) for spec, path in zip(specs, inputs["models"])]
        models = pd.concat([f for f in frames if len(f)], ignore_index=True)
        models[["station_id", *[c for c in models.columns if c != "station_id"]]].to_csv(
            models_out, index=False, float_format="%.6g")
    if periods_out is not None:
        fitted = table["periods"].fillna(0).astype(int) if "periods" in table else [0] * len(table)
        periods_table(specs, inputs["periods"], list(fitted), read).to_csv(periods_out, index=False)
    read.save()
    not_ok = table[table["status"] != "ok"]
    print(f"{len(table)} stations, {len(not_ok)} not ok")
    for _, row in not_ok.iterrows():
        print(f"  {row['station_id']} [{row['status']}]: {row['flags']}")
    if unassigned_csv is not None:
        unassigned = pd.read_csv(unassigned_csv, dtype=str)
        if len(unassigned):
            print(f"WARNING: {len(unassigned)} row(s) of long-format files belong to no station in the sheet "
                  f"(codes {', '.join(sorted(set(unassigned['station_code'])))}); see {unassigned_csv}")
    return table


def strict_gate(stations_csv, out_flag) -> None:
    """Strict mode: fail (after everything else was written) when any station was not fitted or
    failed its convergence diagnostics. Flags such as suspect gaugings do not fail the run."""
    table = pd.read_csv(stations_csv, keep_default_na=False)
    failed = table[table["status"].isin(["error", "insufficient data"]) | (table["diagnostics_passed"].astype(str) == "False")]
    if len(failed):
        lines = "\n".join(f"  {r.station_id} [{r.status}]: {r.flags}" for r in failed.itertuples())
        raise StrictModeError(f"strict mode: {len(failed)} of {len(table)} station(s) not fitted or not converged\n{lines}")
    with open(out_flag, "w") as fh:
        fh.write(f"all {len(table)} stations fitted and converged\n")
