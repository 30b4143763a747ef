"""Clean: one station's raw gaugings -> SI gaugings, a table of rejected rows, and a status.

Every raw data row of the station ends in exactly one of the two tables. Rows keep their line
number in the raw file (the header is line 1); rejected rows keep their original text, a reason
code and a readable reason. Suspect gaugings (large standardized residual from a robust
preliminary fit) are flagged and kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .io import save_json
from .plausibility import unit_flags
from .robust import suspect_gaugings
from .runtime import progress
from .rawfile import MISSING, CleaningError, datetimes, fail, numbers, read_csv, read_excel, unique
from .sheet import EXCEL_SUFFIXES, StationSpec
from .units import discharge_to_m3s, stage_to_m, uncertainty_to_sd_m3s, usgs_quality_percent

#: a station needs at least this many valid gaugings to be fitted
MIN_GAUGINGS = 3
#: gaugings dated before this are rejected (config earliest_gauging_date)
EARLIEST_DATE = "1850-01-01"

CLEAN_COLUMNS = ["line", "datetime", "stage_m", "discharge_m3s", "discharge_sd_m3s", "uncertainty_source",
                 "robust_z", "suspect"]

#: reason codes, in the order they are checked
REASONS = {
    "empty_row": "empty row",
    "missing_value": "missing value",
    "unparseable_number": "unparseable number",
    "non_finite": "non-finite number",
    "discharge_not_positive": "discharge <= 0",
    "invalid_uncertainty": "invalid uncertainty",
    "unparseable_datetime": "unparseable date-time",
    "date_in_future": "dated in the future",
    "date_before_earliest": "dated before the earliest plausible date",
    "outside_validity_window": "outside the validity window",
    "excluded_by_sheet": "excluded by the sheet",
    "exact_duplicate": "exact duplicate of an earlier row",
}


@dataclass
class CleanResult:
    clean: pd.DataFrame
    rejected: pd.DataFrame
    status: dict = field(default_factory=dict)


def read_raw(spec: StationSpec, path: str | Path) -> pd.DataFrame:
    """The station's raw rows as text, with their line numbers in the file (CSV) or their row numbers in
    the worksheet (Excel)."""
    path = Path(path)
    if not path.exists():
        fail(spec, path, "file not found")
    reader = read_excel if path.suffix.lower() in EXCEL_SUFFIXES else read_csv
    header, rows, lines = reader(spec, path)
    header = unique(header)
    raw = pd.DataFrame(rows, columns=header, dtype=object).astype(str) if rows else pd.DataFrame(
        {h: pd.Series([], dtype=object) for h in header})
    needed = {
        "stage_column": spec.stage_column,
        "discharge_column": spec.discharge_column,
        "uncertainty_column": spec.uncertainty_column,
        "datetime_column": spec.datetime_column,
        "station_column": spec.station_column,
    }
    for sheet_column, name in needed.items():
        if name and name not in raw.columns:
            hint = ""
            if len(raw.columns) == 1:
                for sep in (";", "\t", ",", "|"):
                    if sep != spec.delimiter and sep in raw.columns[0]:
                        hint = f"; the header looks {sep!r}-delimited (sheet column 'delimiter')"
            fail(spec, path, f"row 1: no column {name!r} (sheet column {sheet_column}); "
                              f"columns are {', '.join(map(repr, raw.columns))}{hint}")
    raw.insert(0, "line", np.asarray(lines, dtype=np.int64))
    if spec.station_column:
        raw = raw[raw[spec.station_column].str.strip() == spec.code]
    return raw.reset_index(drop=True)


def _window_bound(value: str, timezone: str) -> pd.Timestamp:
    t = pd.Timestamp(value)
    if t.tzinfo is None and timezone:
        t = t.tz_localize(timezone)
    return t


def _in_window(when: pd.Series, spec: StationSpec) -> np.ndarray:
    """True where the gauging lies inside the sheet's validity window (rows without a date: False).

    ``when`` holds what :func:`ratingflow.rawfile.datetimes` wrote: UTC times ending in +00:00, naive times, or ''.
    """
    when = pd.Series(when, dtype=object).reset_index(drop=True)
    aware = when.str.endswith("+00:00").to_numpy()
    utc = pd.to_datetime(when.where(aware), utc=True)
    naive = pd.to_datetime(when.where(~aware & (when != "")))
    ok = (when != "").to_numpy().copy()
    for bound, after in ((spec.valid_from, True), (spec.valid_to, False)):
        if not bound:
            continue
        b = _window_bound(bound, spec.timezone)
        b_utc = b.tz_convert("UTC") if b.tzinfo else b.tz_localize("UTC")
        b_naive = b_utc.tz_convert(None) if b.tzinfo else b
        inside_utc = (utc >= b_utc) if after else (utc <= b_utc)
        inside_naive = (naive >= b_naive) if after else (naive <= b_naive)
        ok &= np.where(aware, inside_utc.to_numpy(), inside_naive.to_numpy())
    return ok


def _date_checks(when: pd.Series, earliest: str, now: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """(in the future, before ``earliest``) for the ISO strings :func:`ratingflow.rawfile.datetimes` wrote ('' where none).
    A naive time counts as UTC; "future" allows one day, so that a local time late today is not refused."""
    when = pd.Series(when, dtype=object).reset_index(drop=True)
    parsed = pd.to_datetime(when.where(when != ""), utc=True, format="mixed")
    limit = (now if now.tzinfo else now.tz_localize("UTC")) + pd.Timedelta(days=1)
    first = pd.Timestamp(earliest)
    first = first if first.tzinfo else first.tz_localize("UTC")
    known = parsed.notna().to_numpy()
    return known & (parsed > limit).to_numpy(), known & (parsed < first).to_numpy()


def clean(spec: StationSpec, path: str | Path, default_uncertainty: dict, suspect_z: float = 4.0,
          usgs_quality: dict | None = None, earliest: str = EARLIEST_DATE,
          now: pd.Timestamp | None = None) -> CleanResult:
    """Clean one station's raw file.

    Args:
        spec: the station's sheet row.
        path: the raw file.
        default_uncertainty: ``{"kind": <relative kind>, "value": x}`` for gaugings that state none.
        suspect_z: robust standardized residual above which a gauging is flagged as suspect.
        usgs_quality: per cent (2 SD) per USGS quality rating, if not the defaults.
        earliest: gaugings dated before this are rejected (and those more than a day after ``now``).
        now: the present (default: the clock), for tests.

    Raises:
        CleaningError: the file cannot be read as the sheet says (names station, file, row, column).
    """
    raw = read_raw(spec, path)
    n = len(raw)
    data_columns = [c for c in raw.columns if c != "line"]
    codes = [[] for _ in range(n)]  # (code, detail) per row

    def flag(mask, code, detail):
        for i in np.flatnonzero(mask):
            codes[i].append((code, detail))

    text = raw[data_columns].apply(lambda c: c.str.strip())
    empty = (text == "").all(axis=1).to_numpy() if data_columns else np.ones(n, bool)
    flag(empty, "empty_row", "")
    live = ~empty

    stage, problem = numbers(raw[spec.stage_column], spec.decimal)
    for code in ("missing_value", "unparseable_number", "non_finite"):
        flag(live & (problem == code), code, f"stage in column {spec.stage_column!r}")
    discharge, problem = numbers(raw[spec.discharge_column], spec.decimal)
    for code in ("missing_value", "unparseable_number", "non_finite"):
        flag(live & (problem == code), code, f"discharge in column {spec.discharge_column!r}")
    # checked after conversion: a tiny positive number can underflow to 0 m3/s
    with np.errstate(invalid="ignore"):
        positive = discharge_to_m3s(discharge, spec.discharge_unit) > 0
    flag(live & (problem == "") & ~positive, "discharge_not_positive", f"column {spec.discharge_column!r}")

    uncertainty = np.full(n, np.nan)
    from_file = np.zeros(n, bool)
    if spec.uncertainty_column:
        column = raw[spec.uncertainty_column]
        missing = column.str.strip().str.lower().isin(MISSING).to_numpy()
        if spec.uncertainty_kind == "usgs_quality":
            pct, unknown = usgs_quality_percent(column, usgs_quality)
            flag(live & unknown & ~missing, "invalid_uncertainty",
                 f"unknown quality code in column {spec.uncertainty_column!r}")
            uncertainty, from_file = pct, ~unknown & ~missing
        else:
            values, problem = numbers(column, spec.decimal)
            bad = (problem == "unparseable_number") | (problem == "non_finite") | ((problem == "") & (values < 0))
            flag(live & bad, "invalid_uncertainty", f"column {spec.uncertainty_column!r}")
            uncertainty, from_file = values, problem == ""

    when = pd.Series([""] * n, dtype=object)
    if spec.datetime_column:
        when, problem = datetimes(raw[spec.datetime_column], spec.timezone, spec.dayfirst)
        flag(live & (problem != ""), "unparseable_datetime", f"column {spec.datetime_column!r}")
        now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
        future, early = _date_checks(when, earliest, now)
        flag(live & future, "date_in_future", f"column {spec.datetime_column!r}, after {now:%Y-%m-%d}")
        flag(live & early, "date_before_earliest", f"column {spec.datetime_column!r}, before {earliest} (config "
                                                   "earliest_gauging_date)")
        if spec.valid_from or spec.valid_to:
            flag(live & (problem == "") & ~_in_window(when, spec), "outside_validity_window",
                 f"{spec.valid_from or '...'} to {spec.valid_to or '...'}")
    excluded = raw["line"].isin(spec.excluded_lines()).to_numpy()
    dates = spec.excluded_dates()
    if dates and spec.datetime_column:
        local = raw[spec.datetime_column].str.strip().str[:10]
        excluded = excluded | local.isin(dates).to_numpy()
    flag(live & excluded, "excluded_by_sheet", "sheet column 'exclude'")

    ok = np.array([not c for c in codes], dtype=bool)
    duplicate = np.zeros(n, bool)
    if ok.any():
        duplicate[ok] = text[ok].duplicated(keep="first").to_numpy()
    flag(duplicate, "exact_duplicate", "")
    ok &= ~duplicate

    good = pd.DataFrame({"line": raw["line"].to_numpy()[ok], "datetime": when.to_numpy()[ok]})
    good["stage_m"] = stage_to_m(stage[ok], spec.stage_unit) + spec.datum_offset_m
    good["discharge_m3s"] = discharge_to_m3s(discharge[ok], spec.discharge_unit)
    q = good["discharge_m3s"].to_numpy()
    sd = uncertainty_to_sd_m3s(
        np.full(len(q), float(default_uncertainty["value"])), default_uncertainty["kind"], q, "m3/s"
    )
    use_file = from_file[ok]
    if use_file.any():
        kind = "percent_2sd" if spec.uncertainty_kind == "usgs_quality" else spec.uncertainty_kind
        sd[use_file] = uncertainty_to_sd_m3s(uncertainty[ok][use_file], kind, q[use_file], spec.discharge_unit)
    good["discharge_sd_m3s"] = sd
    good["uncertainty_source"] = np.where(use_file, "file", "default")
    good["robust_z"], good["suspect"] = suspect_gaugings(good["stage_m"].to_numpy(), q, suspect_z)

    bad_rows = ~ok
    rejected = raw[bad_rows].copy()
    rejected.insert(1, "reason_code", [codes[i][0][0] for i in np.flatnonzero(bad_rows)])
    rejected.insert(2, "reason", [
        "; ".join(REASONS[c] + (f" ({d})" if d else "") for c, d in codes[i]) for i in np.flatnonzero(bad_rows)
    ])
    if len(good) + len(rejected) != n:
        raise AssertionError(f"station {spec.station_id}: {n} raw rows but {len(good)} clean + {len(rejected)} rejected")
    enough = len(good) >= MIN_GAUGINGS
    status = _status(
        spec, path, "ok" if enough else "insufficient data",
        "" if enough else f"{len(good)} valid gauging(s); at least {MIN_GAUGINGS} are needed",
        raw_rows=n,
        clean_rows=len(good),
        rejected_rows=len(rejected),
        rejected_by_reason=rejected["reason_code"].value_counts().to_dict(),
        suspect_lines=good.loc[good["suspect"], "line"].astype(int).tolist(),
        default_uncertainty_rows=int((~use_file).sum()),
        warnings=unit_flags(spec.stage_unit, spec.discharge_unit, good["stage_m"].to_numpy(), q),
    )
    return CleanResult(good[CLEAN_COLUMNS], rejected, status)


def _status(spec: StationSpec, path, status: str, message: str, **counts) -> dict:
    """The station's status record (results/clean/{station}.status.json)."""
    return {"station": spec.station_id, "file": str(path), "status": status, "message": message,
            "raw_rows": 0, "clean_rows": 0, "rejected_rows": 0, "rejected_by_reason": {}, "suspect_lines": [],
            "default_uncertainty_rows": 0, "warnings": [], **counts}


def run(spec: StationSpec, raw_path, clean_path, rejected_path, status_path, settings: dict) -> dict:
    """Pipeline step. A file that cannot be read gives status 'error' with the message (and empty
    tables), so that the other stations go on; the report fails the run in strict mode."""
    try:
        result = clean(spec, raw_path, settings["default_uncertainty"], settings.get("suspect_z", 4.0),
                       settings.get("usgs_quality_percent"), settings.get("earliest_gauging_date", EARLIEST_DATE))
    except CleaningError as err:
        result = CleanResult(pd.DataFrame(columns=CLEAN_COLUMNS), pd.DataFrame(columns=["line", "reason_code", "reason"]),
                             _status(spec, raw_path, "error", str(err)))
    result.clean.to_csv(clean_path, index=False)
    result.rejected.to_csv(rejected_path, index=False)
    save_json(result.status, status_path)
    s = result.status
    progress(f"station {spec.station_id}: {s['status']} {s['message']} — {s['clean_rows']} gaugings kept, "
             f"{s['rejected_rows']} rejected, {len(s['suspect_lines'])} suspect, from {raw_path}"
             + "".join(f"; {w}" for w in s["warnings"]))
    return s


def run_batch(specs, raw_paths, clean_paths, rejected_paths, status_paths, settings: dict) -> None:
    """Pipeline step for a batch of stations (one process, see :mod:`ratingflow.batches`)."""
    for args in zip(specs, raw_paths, clean_paths, rejected_paths, status_paths):
        run(*args, settings)


UNASSIGNED_COLUMNS = ["file", "line", "station_code", "text"]


def unassigned_rows(specs: list[StationSpec], raw_dir) -> pd.DataFrame:
    """Rows of long-format files whose station code belongs to no station in the sheet.

    Such rows are nobody's raw rows, so no station's rejected table holds them; this table does.
    """
    from dataclasses import replace

    by_file: dict[tuple[str, str], list[StationSpec]] = {}
    for spec in specs:
        if spec.station_column:
            by_file.setdefault((spec.file, spec.station_column), []).append(spec)
    frames = []
    for (file, column), members in by_file.items():
        path = Path(raw_dir) / file
        try:
            raw = read_raw(replace(members[0], station_column=""), path)
        except CleaningError:
            continue  # the stations of this file report the error themselves
        codes = {m.code for m in members}
        if column not in raw.columns:
            continue
        left = raw[~raw[column].str.strip().isin(codes)]
        if left.empty:  # the normal case: every row of the export belongs to a station of the sheet
            continue
        text = [",".join(map(str, row)) for row in left.drop(columns="line").itertuples(index=False)]
        frames.append(pd.DataFrame({"file": file, "line": left["line"].to_numpy(),
                                    "station_code": left[column].str.strip().to_numpy(), "text": text}))
    if not frames:
        return pd.DataFrame(columns=UNASSIGNED_COLUMNS)
    return pd.concat(frames, ignore_index=True)
