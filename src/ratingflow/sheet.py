"""The station sheet: one row per station, saying where its gaugings are and how to read them."""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from .units import DISCHARGE_UNITS, STAGE_UNITS, UNCERTAINTY_KINDS

STATION_ID = re.compile(r"^[A-Za-z0-9_-]+$")


class SheetError(ValueError):
    """The station sheet is wrong; the message names the sheet, row and column."""


@dataclass(frozen=True)
class StationSpec:
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
    controls: int = 1
    notes: str = ""

    @property
    def units(self) -> dict[str, str]:
        return {"stage": self.stage_unit, "discharge": self.discharge_unit}


REQUIRED = ["station_id", "name", "file", "stage_column", "stage_unit", "discharge_column", "discharge_unit"]


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
    root = raw_dir.resolve()
    target = (raw_dir / spec.file).resolve()
    if Path(spec.file).is_absolute() or root not in target.parents:
        fail("file", f"{spec.file!r} points outside {raw_dir}")
    if spec.controls < 1:
        fail("controls", "must be at least 1")


def load_sheet(path: str | Path, raw_dir: str | Path) -> dict[str, StationSpec]:
    """Read and check the sheet; returns the stations keyed by id, in sheet order."""
    path, raw_dir = Path(path), Path(raw_dir)
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment=None)
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise SheetError(f"{path}: missing column(s) {', '.join(missing)}")
    known = {f.name for f in fields(StationSpec)}
    stations: dict[str, StationSpec] = {}
    for i, row in table.iterrows():
        where = f"{path}, row {i + 2} (station {row['station_id']!r})"
        values = {k: v.strip() for k, v in row.items() if k in known}
        try:
            values["controls"] = int(values.get("controls") or 1)
        except ValueError:
            raise SheetError(f"{where}, column 'controls': {row['controls']!r} is not a whole number") from None
        values["delimiter"] = {"": ",", "tab": "\t", "\\t": "\t"}.get(values.get("delimiter", ""), values.get("delimiter"))
        spec = StationSpec(**values)
        _check_row(spec, where, raw_dir)
        if spec.station_id in stations:
            raise SheetError(f"{where}, column 'station_id': {spec.station_id!r} appears twice")
        stations[spec.station_id] = spec
    if not stations:
        raise SheetError(f"{path}: no stations")
    return stations
