"""Clean: one raw gauging file -> SI gaugings plus a table of rejected rows with reasons.

Every raw data row ends in exactly one of the two tables. Rows keep their line number in the
raw file (the header is line 1), and rejected rows keep their original text.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .sheet import StationSpec
from .units import discharge_to_m3s, stage_to_m, uncertainty_to_sd_m3s

#: text read as "no value"
MISSING = {"", "na", "n/a", "null", "none", "-"}
#: USGS style "2020-05-21 14:13:41 [UTC-07:00]"
_BRACKET_OFFSET = re.compile(r"\s*\[UTC([+-]\d{2}:\d{2})\]\s*$")

CLEAN_COLUMNS = ["line", "datetime", "stage_m", "discharge_m3s", "discharge_sd_m3s", "uncertainty_source"]


class CleaningError(ValueError):
    """A raw file cannot be read as the sheet says; the message names station, file and column."""


def _parse_number(text: str) -> tuple[float, str | None]:
    """Value and problem (None, 'missing', 'unparseable', 'non-finite')."""
    t = text.strip()
    if t.lower() in MISSING:
        return math.nan, "missing"
    try:
        value = float(t)
    except ValueError:
        return math.nan, "unparseable"
    if not math.isfinite(value):
        return value, "non-finite"
    return value, None


def _parse_datetime(text: str, timezone: str) -> tuple[str, str | None]:
    t = _BRACKET_OFFSET.sub(r"\1", text.strip())
    if t.lower() in MISSING:
        return "", None  # a gauging without a date is still a gauging
    try:
        stamp = pd.Timestamp(t)
    except (ValueError, TypeError):
        return "", "unparseable"
    if stamp is pd.NaT:
        return "", "unparseable"
    if timezone and stamp.tzinfo is None:
        stamp = stamp.tz_localize(timezone)
    return stamp.isoformat(), None


def read_raw(spec: StationSpec, path: str | Path) -> pd.DataFrame:
    """The raw file as text, one row per data line, plus its line number."""
    try:
        raw = pd.read_csv(
            path, sep=spec.delimiter, dtype=str, keep_default_na=False, skip_blank_lines=False,
            encoding="utf-8-sig",
        )
    except UnicodeDecodeError as err:
        raise CleaningError(f"station {spec.station_id}: {path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except pd.errors.EmptyDataError:
        raise CleaningError(f"station {spec.station_id}: {path} is empty") from None
    raw.columns = [c.strip() for c in raw.columns]
    needed = {
        "stage_column": spec.stage_column,
        "discharge_column": spec.discharge_column,
        "uncertainty_column": spec.uncertainty_column,
        "datetime_column": spec.datetime_column,
    }
    for sheet_column, name in needed.items():
        if name and name not in raw.columns:
            raise CleaningError(
                f"station {spec.station_id}: {path} has no column {name!r} (sheet column {sheet_column}); "
                f"columns are {', '.join(map(repr, raw.columns))}"
            )
    raw.insert(0, "line", np.arange(len(raw)) + 2)
    return raw


def clean(spec: StationSpec, path: str | Path, default_uncertainty: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean one station's raw file.

    Args:
        spec: the station's sheet row.
        path: the raw file.
        default_uncertainty: ``{"kind": <relative kind>, "value": x}`` used where a gauging states none.

    Returns:
        (clean, rejected). ``clean`` has :data:`CLEAN_COLUMNS`; ``rejected`` has ``line``,
        ``reason`` and the raw columns as text.
    """
    raw = read_raw(spec, path)
    records, rejected = [], []
    seen: set[tuple] = set()
    data_columns = [c for c in raw.columns if c != "line"]
    for row in raw.itertuples(index=False):
        row = dict(zip(raw.columns, row))
        reasons = []
        if all(str(row[c]).strip() == "" for c in data_columns):
            rejected.append({"line": row["line"], "reason": "empty row", **row})
            continue
        stage, problem = _parse_number(row[spec.stage_column])
        if problem:
            reasons.append(f"{problem} stage in column {spec.stage_column!r}")
        discharge, problem = _parse_number(row[spec.discharge_column])
        if problem:
            reasons.append(f"{problem} discharge in column {spec.discharge_column!r}")
        elif discharge <= 0:
            reasons.append(f"discharge <= 0 in column {spec.discharge_column!r}")
        uncertainty, source = math.nan, "default"
        if spec.uncertainty_column:
            uncertainty, problem = _parse_number(row[spec.uncertainty_column])
            if problem in ("unparseable", "non-finite"):
                reasons.append(f"{problem} uncertainty in column {spec.uncertainty_column!r}")
            elif problem is None and uncertainty < 0:
                reasons.append(f"negative uncertainty in column {spec.uncertainty_column!r}")
            elif problem is None:
                source = "file"
        when = ""
        if spec.datetime_column:
            when, problem = _parse_datetime(row[spec.datetime_column], spec.timezone)
            if problem:
                reasons.append(f"{problem} date-time in column {spec.datetime_column!r}")
        key = tuple(str(row[c]).strip() for c in data_columns)
        if not reasons and key in seen:
            reasons.append("exact duplicate of an earlier row")
        if reasons:
            rejected.append({"line": row["line"], "reason": "; ".join(reasons), **row})
            continue
        seen.add(key)
        records.append((row["line"], when, stage, discharge, uncertainty, source))

    table = pd.DataFrame(records, columns=["line", "datetime", "stage", "discharge", "uncertainty", "uncertainty_source"])
    out = pd.DataFrame({"line": table["line"].astype(int), "datetime": table["datetime"]})
    out["stage_m"] = stage_to_m(table["stage"], spec.stage_unit)
    out["discharge_m3s"] = discharge_to_m3s(table["discharge"], spec.discharge_unit)
    sd = np.full(len(table), np.nan)
    from_file = (table["uncertainty_source"] == "file").to_numpy()
    if spec.uncertainty_column and from_file.any():
        sd[from_file] = uncertainty_to_sd_m3s(
            table.loc[from_file, "uncertainty"], spec.uncertainty_kind, out.loc[from_file, "discharge_m3s"], spec.discharge_unit
        )
    default_sd = uncertainty_to_sd_m3s(
        np.full(len(table), float(default_uncertainty["value"])), default_uncertainty["kind"], out["discharge_m3s"], "m3/s"
    )
    out["discharge_sd_m3s"] = np.where(from_file, sd, default_sd)
    out["uncertainty_source"] = table["uncertainty_source"]
    rejected_table = pd.DataFrame(rejected, columns=["line", "reason", *data_columns])
    if len(out) + len(rejected_table) != len(raw):
        raise AssertionError(
            f"station {spec.station_id}: {len(raw)} raw rows but {len(out)} clean + {len(rejected_table)} rejected"
        )
    return out[CLEAN_COLUMNS], rejected_table


def clean_to_files(spec: StationSpec, raw_path, clean_path, rejected_path, default_uncertainty: dict) -> None:
    good, bad = clean(spec, raw_path, default_uncertainty)
    good.to_csv(clean_path, index=False)
    bad.to_csv(rejected_path, index=False)
    print(f"station {spec.station_id}: {len(good)} gaugings kept, {len(bad)} rejected from {raw_path}")
