"""Unit conversion to SI (stage in m, discharge in m3/s) and gauging-uncertainty kinds."""
from __future__ import annotations

import numpy as np

FOOT = 0.3048
STAGE_UNITS = {"m": 1.0, "cm": 0.01, "ft": FOOT}
DISCHARGE_UNITS = {"m3/s": 1.0, "l/s": 1e-3, "cfs": FOOT**3}

#: how a file states a gauging's uncertainty -> factor giving 1-SD *relative* (or absolute) uncertainty
UNCERTAINTY_KINDS = {
    "absolute_sd": "1 SD in the file's discharge unit",
    "percent_sd": "1 SD in per cent of discharge",
    "percent_2sd": "expanded (95 %, 2 SD) in per cent of discharge",
    "fraction_sd": "1 SD as a fraction of discharge",
    "fraction_2sd": "expanded (95 %, 2 SD) as a fraction of discharge",
    "usgs_quality": "USGS measurement rating (Excellent/Good/Fair/Poor or E/G/F/P), read as per cent at 2 SD",
}

#: USGS measurement ratings as expanded (2 SD) per cent of discharge; the config may override
USGS_QUALITY_PERCENT_2SD = {"excellent": 2.0, "good": 5.0, "fair": 8.0, "poor": 12.0}


def usgs_quality_percent(codes, table: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per cent (2 SD) for each quality code, and a mask of codes that are not known."""
    table = {k.lower(): float(v) for k, v in (table or USGS_QUALITY_PERCENT_2SD).items()}
    by_letter = {k[0]: v for k, v in table.items()}
    out, unknown = [], []
    for code in codes:
        key = str(code).strip().lower()
        value = table.get(key, by_letter.get(key) if len(key) == 1 else None)
        out.append(np.nan if value is None else value)
        unknown.append(value is None)
    return np.asarray(out, float), np.asarray(unknown, bool)


def _lookup(table: dict, unit: str, what: str) -> float:
    try:
        return table[unit]
    except KeyError:
        raise ValueError(f"unknown {what} unit {unit!r}; known: {', '.join(table)}") from None


def stage_to_m(values, unit: str) -> np.ndarray:
    return np.asarray(values, float) * _lookup(STAGE_UNITS, unit, "stage")


def discharge_to_m3s(values, unit: str) -> np.ndarray:
    return np.asarray(values, float) * _lookup(DISCHARGE_UNITS, unit, "discharge")


def uncertainty_to_sd_m3s(values, kind: str, discharge_m3s, discharge_unit: str) -> np.ndarray:
    """Convert a file's uncertainty column to an absolute 1-SD in m3/s."""
    values = np.asarray(values, float)
    discharge_m3s = np.asarray(discharge_m3s, float)
    if kind == "absolute_sd":
        return discharge_to_m3s(values, discharge_unit)
    relative = {
        "percent_sd": values / 100.0,
        "percent_2sd": values / 200.0,
        "fraction_sd": values,
        "fraction_2sd": values / 2.0,
    }
    if kind not in relative:
        raise ValueError(f"unknown uncertainty kind {kind!r}; known: {', '.join(UNCERTAINTY_KINDS)}")
    return relative[kind] * discharge_m3s
