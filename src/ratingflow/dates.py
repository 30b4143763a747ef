"""Dates of gaugings and rating periods: the ISO strings the clean stage writes, as timestamps."""
from __future__ import annotations

import numpy as np
import pandas as pd


def to_utc_naive(values) -> pd.Series:
    """ISO strings as written by clean (UTC with +00:00, naive, or '') as naive timestamps (NaT for '')."""
    s = pd.Series(values, dtype=object).fillna("").astype(str)
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]")
    aware = s.str.contains(r"(?:[+-]\d{2}:\d{2}|Z)$", regex=True)
    if aware.any():
        out[aware] = pd.to_datetime(s[aware], utc=True, format="mixed").dt.tz_convert(None)
    naive = ~aware & (s != "")
    if naive.any():
        out[naive] = pd.to_datetime(s[naive], format="mixed")
    return out


def period_index(times: np.ndarray, valid_from) -> np.ndarray:
    """Period number (0-based) of each naive-UTC time, from every period's ``valid_from`` (the first's is unused:
    the first period is open towards the past)."""
    starts = [pd.Timestamp(v) for v in list(valid_from)[1:]]
    if not starts:
        return np.zeros(len(times), int)
    return np.searchsorted(np.array(starts, dtype="datetime64[ns]"), times, side="right").astype(int)


def period_of(clean: pd.DataFrame, periods: pd.DataFrame) -> np.ndarray:
    """Period number (0-based) of each clean gauging, from the periods table's ``valid_from`` dates."""
    return period_index(to_utc_naive(clean["datetime"]).to_numpy(), periods["valid_from"])
