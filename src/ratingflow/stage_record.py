"""A station's continuous stage record: raw rows -> time steps in UTC with stage in m, and a table of rejected rows.

Every raw data row ends in exactly one of the two tables, as for gaugings (:mod:`ratingflow.clean`):

* a row whose stage is missing (empty, NA, ...) is *used* as a missing time step: its discharge is missing and
  the gap is reported, nothing is interpolated over it;
* a row whose time cannot be read, or whose stage or stage error is not a number, is rejected with its line and
  the column;
* a row at a time seen before is rejected (``duplicate_time``, naming the line it repeats);
* rows out of time order are sorted, and the status says how many were out of order.

Stage errors (optional, 1 SD in the file's stage unit, as BaRatinAGE's limnigraph): a non-systematic one,
independent at each step, and a systematic one shared by all steps with the same block index.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .rawfile import CleaningError, fail, numbers, read_csv, read_excel, times, unique
from .sheet import EXCEL_SUFFIXES, StationSpec
from .units import stage_to_m

RECORD_COLUMNS = ["line", "time", "stage_m", "nonsys_sd_m", "sys_index", "sys_sd_m"]

REASONS = {
    "empty_row": "empty row",
    "missing_time": "missing date-time",
    "unparseable_datetime": "unparseable date-time",
    "ambiguous_local_time": "ambiguous local time",
    "date_in_future": "dated in the future",
    "unparseable_number": "unparseable number",
    "non_finite": "non-finite number",
    "invalid_uncertainty": "invalid stage error",
    "duplicate_time": "duplicated time",
}


def read_record(spec: StationSpec, path) -> pd.DataFrame:
    """The stage record's rows as text with their line numbers; ``spec`` is ``StationSpec.stage_record()``."""
    path = Path(path)
    if not path.exists():
        fail(spec, path, "stage record not found (sheet column stage_file)")
    header, rows, lines = (read_excel if path.suffix.lower() in EXCEL_SUFFIXES else read_csv)(spec, path)
    header = unique(header)
    raw = pd.DataFrame(rows, columns=header, dtype=object).astype(str) if rows else pd.DataFrame(
        {h: pd.Series([], dtype=object) for h in header})
    for sheet_column, name in (("stage_time_column", spec.stage_time_column),
                               ("stage_level_column", spec.stage_level_column),
                               ("stage_nonsys_sd_column", spec.stage_nonsys_sd_column),
                               ("stage_sys_index_column", spec.stage_sys_index_column),
                               ("stage_sys_sd_column", spec.stage_sys_sd_column)):
        if name and name not in raw.columns:
            hint = ""
            if len(raw.columns) == 1:
                hint = next((f"; the header looks {sep!r}-delimited (sheet column 'stage_delimiter')"
                             for sep in (";", "\t", ",", "|") if sep != spec.delimiter and sep in raw.columns[0]), "")
            fail(spec, path, f"row 1: no column {name!r} (sheet column {sheet_column}); columns are "
                             f"{', '.join(map(repr, raw.columns))}{hint}")
    raw.insert(0, "line", np.asarray(lines, dtype=np.int64))
    return raw


def load_record(spec: StationSpec, path, now: pd.Timestamp | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Read and check a stage record (``spec`` is the station's sheet row).

    Returns:
        (record, rejected, status): the time steps sorted by time (:data:`RECORD_COLUMNS`; ``time`` naive UTC,
        ``stage_m`` NaN where the stage is missing, errors 0 where none is given, ``sys_index`` -1 without a
        systematic error); the rejected rows with ``reason_code`` and ``reason``; counts and notes.

    Raises:
        CleaningError: the file cannot be read as the sheet says (names station, file, row, column).
    """
    record_spec = spec.stage_record()
    raw = read_record(record_spec, path)
    n = len(raw)
    codes = [[] for _ in range(n)]

    def flag(mask, code, detail):
        for i in np.flatnonzero(mask):
            codes[i].append((code, detail))

    data = [c for c in raw.columns if c != "line"]
    text = raw[data].apply(lambda c: c.str.strip())
    live = ~((text == "").all(axis=1).to_numpy() if data else np.ones(n, bool))
    flag(~live, "empty_row", "")
    time_column = record_spec.stage_time_column
    time, problem = times(raw[time_column], record_spec.timezone, record_spec.dayfirst)
    flag(live & (problem == "missing_value"), "missing_time", f"column {time_column!r}")
    flag(live & (problem == "unparseable_datetime"), "unparseable_datetime", f"column {time_column!r}")
    flag(live & (problem == "ambiguous_local_time"), "ambiguous_local_time",
         f"column {time_column!r}: a local time in {record_spec.timezone} that the change of daylight-saving time "
         "repeats or skips; give the record in UTC or with an offset")
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    limit = (now.tz_convert(None) if now.tzinfo else now) + pd.Timedelta(days=1)
    flag(live & ~np.isnat(time) & (time > limit.to_datetime64()), "date_in_future", f"column {time_column!r}")

    stage, problem = numbers(raw[record_spec.stage_column], record_spec.decimal)
    for code in ("unparseable_number", "non_finite"):
        flag(live & (problem == code), code, f"stage in column {record_spec.stage_column!r}")
    stage = np.where(problem == "", stage, np.nan)
    errors, missing_errors = {}, 0
    for name, column in (("nonsys_sd_m", record_spec.stage_nonsys_sd_column), ("sys_sd_m", record_spec.stage_sys_sd_column),
                         ("sys_index", record_spec.stage_sys_index_column)):
        values = np.zeros(n) if name != "sys_index" else np.full(n, -1.0)
        if column:
            v, problem = numbers(raw[column], record_spec.decimal)
            bad = problem.astype(bool) & (problem != "missing_value")
            bad |= (problem == "") & ((v < 0) | ((v != np.round(v)) if name == "sys_index" else False))
            flag(live & bad, "invalid_uncertainty", f"column {column!r}")
            missing_errors += int((live & (problem == "missing_value") & np.isfinite(stage)).sum())
            values = np.where(problem == "", v, values)
        errors[name] = values
    ok = np.array([not c for c in codes], bool)
    # the first row at a time is kept, a later one at the same time rejected
    duplicate_of = np.zeros(n, np.int64)
    lines = raw["line"].to_numpy()
    kept = np.flatnonzero(ok)
    kept_times = pd.Series(time[kept])
    repeated = kept_times.duplicated(keep="first").to_numpy()
    first = pd.Series(lines[kept]).groupby(kept_times.to_numpy()).transform("first").to_numpy()
    duplicate_of[kept[repeated]] = first[repeated]
    for i in np.flatnonzero(duplicate_of):
        codes[i].append(("duplicate_time", f"same time as line {duplicate_of[i]}"))
    ok &= duplicate_of == 0

    unit = record_spec.stage_unit
    record = pd.DataFrame({
        "line": lines[ok], "time": time[ok],
        "stage_m": stage_to_m(stage[ok], unit) + record_spec.datum_offset_m,
        "nonsys_sd_m": stage_to_m(errors["nonsys_sd_m"][ok], unit),
        "sys_index": errors["sys_index"][ok].astype(np.int64),
        "sys_sd_m": stage_to_m(errors["sys_sd_m"][ok], unit),
    })
    out_of_order = int((np.diff(record["time"].to_numpy()) < np.timedelta64(0)).sum()) if len(record) > 1 else 0
    if out_of_order:
        record = record.sort_values("time", kind="stable").reset_index(drop=True)
    bad = ~ok
    rejected = raw[bad].copy()
    rejected.insert(1, "reason_code", [codes[i][0][0] for i in np.flatnonzero(bad)])
    rejected.insert(2, "reason", ["; ".join(REASONS[c] + (f" ({d})" if d else "") for c, d in codes[i])
                                  for i in np.flatnonzero(bad)])
    if len(record) + len(rejected) != n:
        raise AssertionError(f"station {spec.station_id}: {n} stage rows but {len(record)} used + {len(rejected)} rejected")
    notes = []
    if out_of_order:
        notes.append(f"{out_of_order} row(s) out of time order in {path}; the record was sorted by time")
    if missing_errors:
        notes.append(f"{missing_errors} step(s) with a stage but no stated stage error: no stage error used there")
    status = {"file": str(path), "raw_rows": n, "used_rows": len(record),
              "missing_stage_rows": int(record["stage_m"].isna().sum()), "rejected_rows": len(rejected),
              "rejected_by_reason": rejected["reason_code"].value_counts().to_dict(), "sorted": bool(out_of_order),
              "out_of_order_rows": out_of_order, "notes": notes,
              "stage_error": ("nonsys" if record_spec.stage_nonsys_sd_column else "")
              + ("+sys" if record_spec.stage_sys_sd_column else "") or "none"}
    return record, rejected, status


__all__ = ["CleaningError", "RECORD_COLUMNS", "REASONS", "load_record", "read_record"]
