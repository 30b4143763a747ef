"""The station sheet: one row per station, saying where its gaugings are and how to read them."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

import pandas as pd

from .units import DISCHARGE_UNITS, STAGE_UNITS, UNCERTAINTY_KINDS

#: file endings read as Excel workbooks (openpyxl); any other file is read as delimited text
EXCEL_SUFFIXES = (".xlsx", ".xlsm")

STATION_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_LINE_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
_RANGE = re.compile(r"^\s*(-?\d+(?:\.\d*)?)\s*-\s*(-?\d+(?:\.\d*)?)\s*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class SheetError(ValueError):
    """The station sheet is wrong; the message names the sheet, row and column."""


@dataclass(frozen=True)
class StationSpec:
    """One sheet row. Empty strings mean "not given"."""

    station_id: str
    name: str
    file: str
    stage_column: str
    stage_unit: str
    discharge_column: str
    discharge_unit: str
    uncertainty_column: str = ""
    uncertainty_kind: str = ""
    datetime_column: str = ""
    timezone: str = ""
    delimiter: str = ","
    decimal: str = "."
    encoding: str = "utf-8"
    station_column: str = ""  # long format: the column naming the station
    station_code: str = ""  # ... and this station's value in it (default: station_id)
    worksheet: str = ""  # Excel files (.xlsx): the worksheet holding the gaugings (default: the first)
    valid_from: str = ""  # use gaugings from this date-time on (inclusive)
    valid_to: str = ""  # ... up to this date-time (inclusive)
    datum_offset_m: float = 0.0  # added to every stage after conversion to m
    h0_min_m: float | None = None  # prior hint: zero-flow stage range from a survey (m, after offset)
    h0_max_m: float | None = None
    controls: int | None = None  # controls the hydrographer expects (compared with the model chosen)
    expected_breakpoints_m: str = ""  # the hydrographer's breakpoints [m], ';'-separated: compared, not a prior
    breakpoints_m: str = ""  # prior ranges of the breakpoints, 'lo-hi' [m, after offset], ';'-separated
    control_types: str = ""  # type of each control, lowest first, ';'-separated (exponent priors; candidates.CONTROL_TYPES)
    exclude: str = ""  # ';'-separated raw line numbers (12, 15-17) or dates (2019-06-10)
    dayfirst: bool = False  # dates such as 09/11/2018 read day first (gaugings and shift dates)
    shift_dates: str = ""  # known rating shifts, ';'-separated dates
    shifts_file: str = ""  # ... or a file of them (relative to raw_dir)
    shifts_column: str = ""  # its date column (default: the first)
    # the station's continuous stage record (discharge stage); an empty format option takes the gaugings' value
    stage_file: str = ""  # relative to raw_dir
    stage_time_column: str = ""
    stage_level_column: str = ""
    stage_level_unit: str = ""  # m, cm or ft (default: stage_unit)
    stage_timezone: str = ""  # IANA zone of times without an offset (default: timezone)
    stage_delimiter: str = ""
    stage_decimal: str = ""
    stage_encoding: str = ""
    stage_dayfirst: str = ""  # yes/no (default: dayfirst)
    stage_datum_offset_m: float | None = None  # added after conversion to m (default: datum_offset_m)
    # stage error, in stage_level_unit as 1 SD: independent at each step, and shared by the steps of one block
    stage_nonsys_sd_column: str = ""
    stage_sys_index_column: str = ""
    stage_sys_sd_column: str = ""
    notes: str = ""

    @property
    def code(self) -> str:
        return self.station_code or self.station_id

    def excluded_lines(self) -> set[int]:
        out: set[int] = set()
        for token in _tokens(self.exclude):
            m = _LINE_RANGE.match(token)
            if m:
                lo = int(m.group(1))
                out.update(range(lo, int(m.group(2) or lo) + 1))
        return out

    def breakpoint_ranges(self) -> tuple[tuple[float, float], ...] | None:
        """The sheet's breakpoint ranges [m], lowest first, or None."""
        ranges = []
        for token in _tokens(self.breakpoints_m):
            m = _RANGE.match(token)
            if not m:
                raise ValueError(f"{token!r} is not a range 'lo-hi' in m")
            ranges.append((float(m.group(1)), float(m.group(2))))
        return tuple(ranges) or None

    def control_type_list(self) -> list[str]:
        return _tokens(self.control_types)

    def expected_breakpoints(self) -> list[float]:
        return [float(t) for t in _tokens(self.expected_breakpoints_m)]

    def stage_record(self) -> "StationSpec | None":
        """The stage record read like a gauging file: a copy of this row whose file, columns and format options
        are the stage record's (empty options taken from the gaugings'); None without a stage_file."""
        if not self.stage_file:
            return None
        from dataclasses import replace

        return replace(
            self, file=self.stage_file, datetime_column=self.stage_time_column, stage_column=self.stage_level_column,
            stage_unit=self.stage_level_unit or self.stage_unit, timezone=self.stage_timezone or self.timezone,
            delimiter=_DELIMITERS.get(self.stage_delimiter.lower(), self.stage_delimiter) if self.stage_delimiter
            else self.delimiter,
            decimal=self.stage_decimal or self.decimal, encoding=self.stage_encoding or self.encoding,
            dayfirst=self.dayfirst if not self.stage_dayfirst else self.stage_dayfirst.lower() in ("yes", "true"),
            datum_offset_m=self.datum_offset_m if self.stage_datum_offset_m is None else self.stage_datum_offset_m,
            station_column="", worksheet="", uncertainty_column="", discharge_column="", exclude="",
            valid_from="", valid_to="")

    def excluded_dates(self) -> set[str]:
        return {t for t in _tokens(self.exclude) if _DATE.match(t)}


def _tokens(text: str) -> list[str]:
    return [t.strip() for t in text.split(";") if t.strip()]


REQUIRED = ["station_id", "name", "file", "stage_column", "stage_unit", "discharge_column", "discharge_unit"]
_FLOATS = {"datum_offset_m": 0.0, "h0_min_m": None, "h0_max_m": None, "stage_datum_offset_m": None}
_DELIMITERS = {"": ",", "tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";"}


def _check_row(spec: StationSpec, where: str, raw_dir: Path) -> None:
    def fail(column, message):
        raise SheetError(f"{where}, column {column!r}: {message}")

    if not STATION_ID.match(spec.station_id):
        fail("station_id", f"{spec.station_id!r} may hold only letters, digits, '-' and '_'")
    if spec.stage_unit not in STAGE_UNITS:
        fail("stage_unit", f"unknown unit {spec.stage_unit!r}; known: {', '.join(STAGE_UNITS)}")
    if spec.discharge_unit not in DISCHARGE_UNITS:
        fail("discharge_unit", f"unknown unit {spec.discharge_unit!r}; known: {', '.join(DISCHARGE_UNITS)}")
    if bool(spec.uncertainty_column) != bool(spec.uncertainty_kind):
        fail("uncertainty_kind", "uncertainty_column and uncertainty_kind go together")
    if spec.uncertainty_kind and spec.uncertainty_kind not in UNCERTAINTY_KINDS:
        fail("uncertainty_kind", f"unknown kind {spec.uncertainty_kind!r}; known: {', '.join(UNCERTAINTY_KINDS)}")
    if spec.decimal not in (".", ","):
        fail("decimal", f"{spec.decimal!r}: the decimal mark is '.' or ','")
    if spec.decimal == spec.delimiter:
        fail("decimal", "the decimal mark and the delimiter are the same")
    if not spec.file:
        fail("file", "empty")
    # a path inside raw_dir, by its text (no '..' out of it, not absolute); checked without touching
    # the file system, so that a sheet of 10 000 stations loads fast
    target = os.path.normpath(os.path.join("raw_dir", spec.file))
    if os.path.isabs(spec.file) or not target.startswith("raw_dir" + os.sep):
        fail("file", f"{spec.file!r} points outside {raw_dir}")
    if spec.controls is not None and not 1 <= spec.controls <= 3:
        fail("controls", "must be 1, 2 or 3")
    try:
        ranges = spec.breakpoint_ranges() or ()
    except ValueError as err:
        fail("breakpoints_m", str(err))
    try:
        spec.expected_breakpoints()
    except ValueError:
        fail("expected_breakpoints_m", f"{spec.expected_breakpoints_m!r} is not a ';'-separated list of stages in m")
    if len(ranges) > 2:
        fail("breakpoints_m", f"{len(ranges)} ranges; at most 2 breakpoints (3 segments)")
    for k, (lo, hi) in enumerate(ranges):
        if not lo < hi:
            fail("breakpoints_m", f"range {k + 1}: {lo:g}-{hi:g} is empty")
        if k and lo < ranges[k - 1][0]:
            fail("breakpoints_m", "ranges must be in increasing order")
    _check_control_types(spec, ranges, fail)
    if (spec.h0_min_m is None) != (spec.h0_max_m is None):
        fail("h0_max_m", "h0_min_m and h0_max_m go together")
    if spec.h0_min_m is not None and not spec.h0_min_m < spec.h0_max_m:
        fail("h0_max_m", "must be above h0_min_m")
    if (spec.valid_from or spec.valid_to) and not spec.datetime_column:
        fail("valid_from", "a validity window needs a datetime_column")
    for column in ("valid_from", "valid_to"):
        value = getattr(spec, column)
        if value and not _is_date(value):
            fail(column, f"{value!r} is not a date")
    for token in _tokens(spec.exclude):
        if not (_LINE_RANGE.match(token) or _DATE.match(token)):
            fail("exclude", f"{token!r} is neither a raw line number (12, 15-17) nor a date (2019-06-10)")
    if (spec.shift_dates or spec.shifts_file) and not spec.datetime_column:
        fail("shift_dates" if spec.shift_dates else "shifts_file",
             "rating-shift dates need dated gaugings, and datetime_column is empty")
    if spec.shifts_file:
        target = os.path.normpath(os.path.join("raw_dir", spec.shifts_file))
        if os.path.isabs(spec.shifts_file) or not target.startswith("raw_dir" + os.sep):
            fail("shifts_file", f"{spec.shifts_file!r} points outside {raw_dir}")
    if spec.timezone and not _known_timezone(spec.timezone):
        fail("timezone", f"unknown time zone {spec.timezone!r}")
    _check_stage_record(spec, fail, raw_dir)


def _check_control_types(spec: StationSpec, ranges, fail) -> None:
    from .candidates import CONTROL_TYPES

    types = spec.control_type_list()
    for name in types:
        if name not in CONTROL_TYPES:
            fail("control_types", f"unknown control type {name!r}; known: {', '.join(CONTROL_TYPES)}")
    if len(types) > 3:
        fail("control_types", f"{len(types)} controls; at most 3")
    if types and spec.controls is not None and len(types) != spec.controls:
        fail("control_types", f"{len(types)} types for {spec.controls} controls (column 'controls')")
    if types and ranges and len(ranges) != len(types) - 1:
        fail("control_types", f"{len(types)} controls need {len(types) - 1} breakpoint range(s) in breakpoints_m, "
                              f"not {len(ranges)}")


def _check_stage_record(spec: StationSpec, fail, raw_dir) -> None:
    """The stage-record columns of a sheet row (see :meth:`StationSpec.stage_record`)."""
    stage_columns = [f.name for f in fields(StationSpec) if f.name.startswith("stage_") and f.name not in
                     ("stage_column", "stage_unit", "stage_file") and getattr(spec, f.name) not in ("", None)]
    if not spec.stage_file:
        if stage_columns:
            fail(stage_columns[0], "a stage-record option without a stage_file")
        return
    target = os.path.normpath(os.path.join("raw_dir", spec.stage_file))
    if os.path.isabs(spec.stage_file) or not target.startswith("raw_dir" + os.sep):
        fail("stage_file", f"{spec.stage_file!r} points outside {raw_dir}")
    for column in ("stage_time_column", "stage_level_column"):
        if not getattr(spec, column):
            fail(column, "a stage_file needs its time and stage columns")
    if spec.stage_level_unit and spec.stage_level_unit not in STAGE_UNITS:
        fail("stage_level_unit", f"unknown unit {spec.stage_level_unit!r}; known: {', '.join(STAGE_UNITS)}")
    if spec.stage_timezone and not _known_timezone(spec.stage_timezone):
        fail("stage_timezone", f"unknown time zone {spec.stage_timezone!r}")
    if spec.stage_decimal not in ("", ".", ","):
        fail("stage_decimal", f"{spec.stage_decimal!r}: the decimal mark is '.' or ','")
    if bool(spec.stage_sys_index_column) != bool(spec.stage_sys_sd_column):
        fail("stage_sys_sd_column", "stage_sys_index_column and stage_sys_sd_column go together")
    record = spec.stage_record()
    if record.decimal == record.delimiter:
        fail("stage_decimal", "the stage record's decimal mark and delimiter are the same")


@lru_cache(maxsize=None)
def _is_date(text: str) -> bool:
    try:
        pd.Timestamp(text)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=None)
def _known_timezone(name: str) -> bool:
    try:
        pd.Timestamp("2000-01-01").tz_localize(name)
    except Exception:
        return False
    return True


def _spec_from_row(row: dict, where: str) -> StationSpec:
    known = {f.name for f in fields(StationSpec)}
    values = {k: str(v).strip() for k, v in row.items() if k in known}
    for column, default in _FLOATS.items():
        text = values.get(column, "")
        try:
            values[column] = float(text) if text else default
        except ValueError:
            raise SheetError(f"{where}, column {column!r}: {text!r} is not a number") from None
    try:
        values["controls"] = int(values["controls"]) if values.get("controls") else None
    except ValueError:
        raise SheetError(f"{where}, column 'controls': {row['controls']!r} is not a whole number") from None
    values["delimiter"] = _DELIMITERS.get(values.get("delimiter", "").lower(), values.get("delimiter"))
    values["decimal"] = values.get("decimal") or "."
    values["dayfirst"] = values.get("dayfirst", "").lower() in ("yes", "true")
    values["encoding"] = values.get("encoding") or "utf-8"
    return StationSpec(**values)


def load_sheet(path: str | Path, raw_dir: str | Path) -> dict[str, StationSpec]:
    """Read and check the sheet; returns the stations keyed by id, in sheet order."""
    path, raw_dir = Path(path), Path(raw_dir)
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise SheetError(f"{path}: missing column(s) {', '.join(missing)}")
    stations: dict[str, StationSpec] = {}
    for i, row in enumerate(table.to_dict("records")):
        where = f"{path}, row {i + 2} (station {row['station_id']!r})"
        spec = _spec_from_row(row, where)
        _check_row(spec, where, raw_dir)
        if spec.station_id in stations:
            raise SheetError(f"{where}, column 'station_id': {spec.station_id!r} appears twice")
        stations[spec.station_id] = spec
    if not stations:
        raise SheetError(f"{path}: no stations")
    return stations


def check_schema(table: pd.DataFrame, schema: dict, path) -> None:
    """Check the sheet against its JSON schema (``workflow/schemas/stations.schema.yaml``).

    The schema is per column, so each column's distinct values are checked once (fast for 10 000 rows).
    The first error names the file, the sheet line as a spreadsheet shows it (the header is line 1), the
    column and the value."""
    import jsonschema

    validator_cls = jsonschema.validators.validator_for(schema)
    missing = [c for c in schema.get("required", []) if c not in table.columns]
    if missing:
        raise SheetError(f"{path}: missing column(s) {', '.join(missing)}")
    for column, subschema in schema.get("properties", {}).items():
        if column not in table.columns:
            continue
        check = validator_cls(subschema)
        for value in table[column].unique():
            error = next(iter(check.iter_errors(value)), None)
            if error is not None:
                line = int(table.index[table[column] == value][0]) + 2
                raise SheetError(f"{path}, line {line}, column {column!r}: {value!r} {error.message.split(' ', 1)[-1]}"
                                 + (f" ({subschema['description']})" if "description" in subschema else ""))
