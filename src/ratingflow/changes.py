"""What changed since the previous run, and the history of issued ratings.

After every run that produced new rating tables, ``archive`` copies each station's table and clean
gaugings into ``results/history/{station}/{UTC stamp}/`` (only when the table differs from the
latest copy), so an issued rating can be traced and is never silently overwritten.
Before that, ``changes`` compares each station's new table with its latest archived one: the new
gaugings, and the change of median discharge at the 10, 50 and 90 % quantiles of the previously
gauged stages, with the new curve's 90 % band; a new median outside the previous 90 % band is flagged
as a possible rating shift.
"""
from __future__ import annotations

import math
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from .history import CLEAN_CSV, TABLE_CSV, latest_snapshot, read_snapshot
from .history import gauging_keys as _gauging_keys
from .io import csv_reader
from .reuse import RowCache

QUANTILES = (0.1, 0.5, 0.9)
BAND = "curve_hpdi90"


#: new gaugings contradict the current rating when this many fall outside its 90 % new-gauging band
#: that a binomial(n, 0.1) count reaches it with at most this probability
CONTRADICTION_P = 0.01


def _current(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the current (last) rating period of a table."""
    return table[table["period"] == table["period"].max()] if "period" in table else table


def _binomial_tail(k: int, n: int, p: float) -> float:
    return float(sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1)))


def new_gauging_test(before: pd.DataFrame, clean: pd.DataFrame, new: np.ndarray) -> tuple[str, float]:
    """New gaugings against the previously issued current rating: how many lie outside its 90 % band
    for a new gauging, and the binomial probability of at least that many if the rating still holds."""
    rows = clean[new]
    if rows.empty or "gauging_hpdi90_lower_m3s" not in before:
        return "", 1.0
    h, q = rows["stage_m"].to_numpy(), rows["discharge_m3s"].to_numpy()
    lo = np.interp(h, before["stage_m"], before["gauging_hpdi90_lower_m3s"])
    hi = np.interp(h, before["stage_m"], before["gauging_hpdi90_upper_m3s"])
    median = np.interp(h, before["stage_m"], before["discharge_median_m3s"])
    k, n = int(np.sum((q < lo) | (q > hi))), len(q)
    p = _binomial_tail(k, n, 0.1)
    bias = 100 * np.expm1(np.median(np.log(q / np.maximum(median, 1e-12))))
    return (f"{k} of {n} new gauging(s) outside the previous current rating's 90 % band (binomial p = {p:.2g}; "
            f"median deviation {bias:+.0f} %)"), p


def station_changes(station: str, table_csv, clean_csv, previous: Path | None, shifts_csv=None) -> dict:
    row: dict = {"station_id": station, "previous_rating": "" if previous is None else previous.name}
    read = csv_reader()  # one per station: an unchanged station's files are its snapshot's bytes, parsed once
    table, clean = read(table_csv, **TABLE_CSV), read(clean_csv, **CLEAN_CSV)
    if table.empty:
        row["change"] = "not fitted"
        return row
    if previous is None:
        row.update(change="first rating", new_gaugings=len(clean))
        return row
    before_all, before_clean = read_snapshot(previous, read)
    before, table_all = _current(before_all), table
    table = _current(table_all)
    old, now = set(_gauging_keys(before_clean)), _gauging_keys(clean)
    is_new = np.array([key not in old for key in now], bool)
    new_lines = [int(line) for line, new in zip(clean["line"], is_new) if new]
    events = []
    if "valid_from" in table and table["valid_from"].iloc[0] != before["valid_from"].iloc[0]:
        start = table["valid_from"].iloc[0]
        events.append(f"new rating period {table['period'].iloc[0]} from {start or 'the start'}"
                      + _shift_evidence(shifts_csv, start))
    test, p_value = new_gauging_test(before, clean, is_new)
    row["new_gaugings_test"] = test
    if p_value < CONTRADICTION_P and not events:
        events.append("new gaugings contradict the current rating: " + test + "; a new period opens once "
                      "periods.min_gaugings gaugings after the shift show it (or give its date in the sheet)")
    row.update(new_gaugings=len(new_lines), new_gauging_lines=" ".join(map(str, new_lines)),
               removed_gaugings=len(old - set(now)))
    shifted = []
    gauged = before_clean["stage_m"]
    start = before["valid_from"].iloc[0] if "valid_from" in before else ""
    if start:  # the gaugings of the previous current period
        from .dates import to_utc_naive

        inside = (to_utc_naive(before_clean["datetime"]) >= pd.Timestamp(start)).to_numpy()
        gauged = gauged[inside] if inside.any() else gauged
    for q in QUANTILES:
        stage = float(np.quantile(gauged, q))
        label = f"p{round(q * 100)}"
        was = float(np.interp(stage, before["stage_m"], before["discharge_median_m3s"]))
        was_lo, was_hi = (float(np.interp(stage, before["stage_m"], before[f"{BAND}_{b}_m3s"])) for b in ("lower", "upper"))
        now = float(np.interp(stage, table["stage_m"], table["discharge_median_m3s"]))
        now_lo, now_hi = (float(np.interp(stage, table["stage_m"], table[f"{BAND}_{b}_m3s"])) for b in ("lower", "upper"))
        outside = not (was_lo <= now <= was_hi)
        row.update({
            f"stage_{label}_m": stage,
            f"discharge_{label}_before_m3s": was,
            f"discharge_{label}_now_m3s": now,
            f"change_{label}_pct": 100 * (now / was - 1) if was > 0 else np.nan,
            f"change_{label}_band90_pct": f"{100 * (now_lo / was - 1):.1f} to {100 * (now_hi / was - 1):.1f}" if was > 0 else "",
            f"shift_{label}": outside,
        })
        if outside:
            shifted.append(f"{label} stage {stage:.2f} m: {was:.4g} -> {now:.4g} m3/s")
    row["change"] = "; ".join(events) if events else (
        ("possible rating shift (" + "; ".join(shifted) + ")") if shifted else (
            "refitted" if new_lines or row["removed_gaugings"] else "unchanged"))
    if events and shifted:
        row["change"] += " (current rating against the previous one: " + "; ".join(shifted) + ")"
    return row


def _shift_evidence(shifts_csv, start: str) -> str:
    """What opened the period starting at ``start``: the known or detected shift, with its evidence."""
    if not shifts_csv or not Path(shifts_csv).exists():
        return ""
    shifts = pd.read_csv(shifts_csv, dtype=str, keep_default_na=False)
    applied = shifts[shifts["status"] == "applied"]
    for s in applied.itertuples():
        if s.source == "known" and s.date == start:
            return f" (known shift, sheet{', line ' + s.line if s.line not in ('', '0') else ''})"
        if s.source == "detected" and s.interval_end == start:
            return (f" (detected shift between the gaugings of {s.interval_start[:16]} and {s.interval_end[:16]}: step "
                    f"{float(s.step_percent):+.0f} %, permutation p = {float(s.p_value):.3g})")
    return ""



def run_changes(stations, tables, cleans, history, out_csv, shifts=None) -> pd.DataFrame:
    """Pipeline step: one row per station, against its latest archived rating."""
    shifts = shifts or [None] * len(stations)
    cache = RowCache(out_csv)  # an unchanged station's row is not computed again
    rows = []
    for s, t, c, sh in zip(stations, tables, cleans, shifts):
        previous = latest_snapshot(Path(history), s)
        files = [t, c, sh, *([previous / "table.csv", previous / "clean.csv"] if previous else [])]
        rows.append(cache.row(s, files, previous and previous.name,
                              lambda: station_changes(s, t, c, previous, sh)))  # noqa: B023 (called at once)
    cache.save()
    out = pd.DataFrame(rows)
    out.to_csv(out_csv, index=False, float_format="%.6g")
    for r in rows:
        if r.get("change") not in ("unchanged", "first rating"):
            print(f"{r['station_id']}: {r.get('change')}")
    return out


def run_archive(stations, tables, cleans, history, out_flag) -> list[str]:
    """Pipeline step: copy every changed table (and its gaugings) into the history."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H%M%S%fZ")
    archived = []
    for station, table_csv, clean_csv in zip(stations, tables, cleans):
        if pd.read_csv(table_csv).empty:
            continue
        last = latest_snapshot(Path(history), station)
        if last is not None and (last / "table.csv").read_bytes() == Path(table_csv).read_bytes():
            continue
        target = Path(history) / station / stamp
        target.mkdir(parents=True)
        shutil.copy(table_csv, target / "table.csv")
        shutil.copy(clean_csv, target / "clean.csv")
        archived.append(station)
    Path(out_flag).write_text(f"{stamp}: archived {len(archived)} rating table(s): {' '.join(archived)}\n")
    print(Path(out_flag).read_text())
    return archived
