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

import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

QUANTILES = (0.1, 0.5, 0.9)
BAND = "curve_hpdi90"


def latest_snapshot(history: Path, station: str) -> Path | None:
    folder = Path(history) / station
    stamps = sorted(p for p in folder.glob("*") if (p / "table.csv").exists()) if folder.exists() else []
    return stamps[-1] if stamps else None


def _gauging_keys(clean: pd.DataFrame) -> list[tuple]:
    """A gauging's identity: date-time, stage and discharge (rounded), not its line in the file."""
    return [(str(d), round(float(h), 6), round(float(q), 9))
            for d, h, q in zip(clean["datetime"].fillna(""), clean["stage_m"], clean["discharge_m3s"])]


def station_changes(station: str, table_csv, clean_csv, previous: Path | None) -> dict:
    row: dict = {"station_id": station, "previous_rating": "" if previous is None else previous.name}
    table = pd.read_csv(table_csv)
    clean = pd.read_csv(clean_csv, keep_default_na=False)
    if table.empty:
        row["change"] = "not fitted"
        return row
    if previous is None:
        row.update(change="first rating", new_gaugings=len(clean))
        return row
    before = pd.read_csv(previous / "table.csv")
    before_clean = pd.read_csv(previous / "clean.csv", keep_default_na=False)
    old, now = set(_gauging_keys(before_clean)), _gauging_keys(clean)
    new_lines = [int(line) for line, key in zip(clean["line"], now) if key not in old]
    row.update(new_gaugings=len(new_lines), new_gauging_lines=" ".join(map(str, new_lines)),
               removed_gaugings=len(old - set(now)))
    shifted = []
    for q in QUANTILES:
        stage = float(np.quantile(before_clean["stage_m"], q))
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
    row["change"] = ("possible rating shift (" + "; ".join(shifted) + ")") if shifted else (
        "refitted" if new_lines or row["removed_gaugings"] else "unchanged")
    return row



def run_changes(stations, tables, cleans, history, out_csv) -> pd.DataFrame:
    """Pipeline step: one row per station, against its latest archived rating."""
    rows = [station_changes(s, t, c, latest_snapshot(Path(history), s)) for s, t, c in zip(stations, tables, cleans)]
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
