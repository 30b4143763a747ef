"""Raw text tables (delimited text or Excel) read as the sheet says: rows as text with their line numbers,
numbers and date-times parsed with a problem code per row. Shared by the stages that read raw files
(gaugings in ``clean``, stage records in ``discharge``); errors name the station, the file, the row and
the column."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

#: text read as "no value"
MISSING = {"", "na", "n/a", "null", "none", "-"}
#: USGS style "2020-05-21 14:13:41 [UTC-07:00]"
_BRACKET_OFFSET = re.compile(r"\s*\[UTC([+-]\d{2}:?\d{2})\]\s*$")
_HAS_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")


class CleaningError(ValueError):
    """A raw file cannot be read as the sheet says; the message names station, file, row and column."""


def fail(spec, path, message: str):
    raise CleaningError(f"station {spec.station_id}, file {path}: {message}")


#: day 0 of Excel's serial dates (1900 system, with its leap-year bug folded in)
EXCEL_EPOCH = pd.Timestamp("1899-12-30")


def _excel_text(value) -> str:
    """A cell as the text a CSV export would hold ('' for an empty cell)."""
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ") if hasattr(value, "hour") else value.isoformat()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def read_excel(spec, path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, rows as text and their spreadsheet row numbers (the header's row is 1). Date cells become ISO
    text; in the sheet's datetime column, numbers are Excel serial dates."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # openpyxl raises many kinds for a file that is not a workbook
        fail(spec, path, f"not a readable Excel workbook ({type(err).__name__}: {err})")
    try:
        if spec.worksheet and spec.worksheet not in book.sheetnames:
            fail(spec, path, f"no worksheet {spec.worksheet!r} (sheet column 'worksheet'); worksheets are "
                              f"{', '.join(map(repr, book.sheetnames))}")
        sheet = book[spec.worksheet] if spec.worksheet else book.worksheets[0]
        cells = list(sheet.iter_rows(values_only=True))
    finally:
        book.close()
    if not cells:
        fail(spec, path, "the worksheet is empty (no header)")
    header = [_excel_text(h).strip() for h in cells[0]]
    while header and header[-1] == "":
        header.pop()
    when = header.index(spec.datetime_column) if spec.datetime_column in header else None
    rows, lines = [], []
    for number, record in enumerate(cells[1:], start=2):
        values = list(record[: len(header)]) + [None] * max(0, len(header) - len(record))
        if any(v not in (None, "") for v in record[len(header):]):
            fail(spec, path, f"row {number}: values beyond the last named column")
        if when is not None and isinstance(values[when], (int, float)) and not isinstance(values[when], bool):
            values[when] = (EXCEL_EPOCH + pd.to_timedelta(float(values[when]), unit="D")).round("s").isoformat(sep=" ")
        rows.append([_excel_text(v) for v in values])
        lines.append(number)
    while rows and not any(rows[-1]):  # a worksheet's used range often ends in empty rows
        rows.pop(), lines.pop()
    return header, rows, lines


def read_csv(spec, path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, rows as text and their line numbers in the file (the header is line 1)."""
    data = path.read_bytes()
    try:
        data.decode(spec.encoding)
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        line_start = data.rfind(b"\n", 0, err.start) + 1
        field = data[line_start : err.start].count(spec.delimiter.encode())
        header = data.split(b"\n", 1)[0].decode(spec.encoding, errors="replace").split(spec.delimiter)
        column = f", column {header[field].strip()!r}" if field < len(header) else ""
        fail(spec, path, f"row {line}{column}: bytes that are not {spec.encoding} "
                          f"({data[err.start:err.start + 4]!r}); set the sheet column 'encoding' (for example latin-1)")
    except LookupError:
        fail(spec, path, f"unknown encoding {spec.encoding!r} (sheet column 'encoding')")
    text = data.decode(spec.encoding)
    if text.startswith("\ufeff"):
        text = text[1:]  # byte-order mark
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=spec.delimiter)
    try:
        header = next(reader)
    except StopIteration:
        fail(spec, path, "the file is empty (no header)")
    except csv.Error as err:
        fail(spec, path, f"row 1: {err}")
    header = [h.strip() for h in header]
    rows, lines, previous = [], [], reader.line_num
    try:
        for record in reader:
            lines.append(previous + 1)
            previous = reader.line_num
            if len(record) > len(header):
                fail(spec, path, f"row {lines[-1]}: wrong number of fields ({len(record)} where the header has "
                                  f"{len(header)}); check the sheet's delimiter {spec.delimiter!r} and decimal mark "
                                  f"{spec.decimal!r}, or quote the field")
            rows.append(record + [""] * (len(header) - len(record)))
    except csv.Error as err:
        fail(spec, path, f"row {previous + 1}: {err}")
    return header, rows, lines


def unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}.{seen[name] - 1}")
    return out


def numbers(text: pd.Series, decimal: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse numbers; returns values and a problem code per row ('' when fine)."""
    s = text.str.strip()
    missing = s.str.lower().isin(MISSING).to_numpy()
    if decimal == ",":
        s = s.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    values = pd.to_numeric(s, errors="coerce").to_numpy(float)
    is_nan_text = s.str.lower().str.lstrip("+-").isin(["nan"]).to_numpy()
    problem = np.full(len(s), "", dtype=object)
    problem[np.isnan(values) & ~is_nan_text] = "unparseable_number"
    problem[~np.isfinite(values) & (is_nan_text | ~np.isnan(values))] = "non_finite"
    problem[missing] = "missing_value"
    return values, problem


def datetimes(text: pd.Series, timezone: str, dayfirst: bool = False) -> tuple[pd.Series, np.ndarray]:
    """ISO 8601 strings (UTC where an offset or zone is known, else naive) and problems."""
    s = text.str.strip().str.replace(_BRACKET_OFFSET, r"\1", regex=True)
    missing = s.str.lower().isin(MISSING).to_numpy()
    out = pd.Series("", index=s.index, dtype=object)
    problem = np.full(len(s), "", dtype=object)
    aware = s.str.contains(_HAS_OFFSET).to_numpy() & ~missing
    naive = ~aware & ~missing
    if aware.any():
        parsed = pd.to_datetime(s[aware], errors="coerce", utc=True, format="mixed", dayfirst=dayfirst)
        out[aware] = parsed.map(lambda t: "" if pd.isna(t) else t.isoformat())
        problem[np.flatnonzero(aware)[parsed.isna().to_numpy()]] = "unparseable_datetime"
    if naive.any():
        parsed = pd.to_datetime(s[naive], errors="coerce", format="mixed", dayfirst=dayfirst)
        if timezone:
            parsed = parsed.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
        out[naive] = parsed.map(lambda t: "" if pd.isna(t) else t.isoformat())
        problem[np.flatnonzero(naive)[parsed.isna().to_numpy()]] = "unparseable_datetime"
    return out, problem


def _parse(s: pd.Series, dayfirst: bool, utc: bool) -> pd.Series:
    """Date-times, the format inferred from the first value and applied to all (fast on a long record); values
    in another format are parsed one by one."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not infer format": then every value is parsed on its own
        parsed = pd.to_datetime(s, errors="coerce", utc=utc, dayfirst=dayfirst)
    retry = parsed.isna()
    if retry.any():
        parsed[retry] = pd.to_datetime(s[retry], errors="coerce", utc=utc, format="mixed", dayfirst=dayfirst)
    return parsed


def times(text: pd.Series, timezone: str, dayfirst: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Date-times as naive UTC ``datetime64[ns]`` (a time without offset is in ``timezone``, or taken as UTC
    without one) and a problem code per row: ``missing_value``, ``unparseable_datetime``, or
    ``ambiguous_local_time`` (a local time that a change of daylight-saving time repeats or skips)."""
    s = text.str.strip().str.replace(_BRACKET_OFFSET, r"\1", regex=True)
    missing = s.str.lower().isin(MISSING).to_numpy()
    out = np.full(len(s), np.datetime64("NaT"), "datetime64[ns]")
    problem = np.full(len(s), "", dtype=object)
    problem[missing] = "missing_value"
    aware = s.str.contains(_HAS_OFFSET).to_numpy() & ~missing
    naive = ~aware & ~missing
    if aware.any():
        parsed = _parse(s[aware], dayfirst, True).dt.tz_convert(None)
        out[aware] = parsed.to_numpy()
    if naive.any():
        parsed = _parse(s[naive], dayfirst, False)
        out[naive] = parsed.to_numpy()
        if timezone:
            local = parsed.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert(None)
            problem[np.flatnonzero(naive)[local.isna().to_numpy() & parsed.notna().to_numpy()]] = "ambiguous_local_time"
            out[naive] = local.to_numpy()
    problem[~missing & np.isnat(out) & (problem == "")] = "unparseable_datetime"
    return out, problem
