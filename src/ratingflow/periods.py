"""Pipeline stage ``periods``: a station's rating periods from its known shift dates and from shifts
detected in its dated gaugings.

Known shifts are the service's dates (sheet column ``shift_dates`` or the file in ``shifts_file``).
Detected shifts come from residual segmentation in time (after Darienzo et al. 2021): a timeless
curve is fitted by profile least squares to the gaugings of a period, and its standardized residuals,
taken in time order, are split where their mean steps. A split is kept when

* a permutation test of the largest step over all admissible split points gives ``p <= max_p_value``
  (the residuals' order in time is shuffled, so the test holds for any number of gaugings),
* the step in ln Q is at least ``min_shift`` (a rating change a hydrographer would act on), and
* each side holds ``min_gaugings`` gaugings spanning ``min_days``.

Each side is then searched again (recursion), inside every period between known shifts. A detected
shift can only be located between two gaugings: it is reported as that interval, and the new period
starts at the later gauging. See docs/periods.md for the choice and its simulation check.

The stage reads the clean gaugings and writes, per station, the periods (``{station}.periods.csv``)
and every shift considered with what became of it (``{station}.shifts.csv``): applied, merged
(a period of fewer than ``min_known_gaugings`` gaugings joins the neighbour whose curve fits it
better), or ignored (before the first or after the last gauging).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from .data import StationData
from .dates import to_utc_naive
from .initial import profile_fit, residuals
from .candidates import Candidate, Structure

PERIOD_COLUMNS = ["period", "valid_from", "valid_to", "first_gauging", "last_gauging", "n_gaugings",
                  "start_source", "current"]
SHIFT_COLUMNS = ["date", "source", "status", "interval_start", "interval_end", "step_percent", "p_value",
                 "line", "detail"]


class ShiftError(ValueError):
    """Known shift dates that cannot be used; the message names the station, the file and the line."""


@dataclass(frozen=True)
class PeriodSettings:
    """The ``periods`` section of the config."""

    detect: bool = True
    min_gaugings: int = 6  # per detected period
    min_days: float = 60.0  # shortest detected period
    max_p_value: float = 0.01  # evidence: permutation p-value of the step
    min_shift: float = 0.07  # smallest step in ln Q that opens a period (0.07: about 7 %)
    permutations: int = 999
    min_known_gaugings: int = 3  # a period between known shifts with fewer is merged with a neighbour
    max_periods: int = 16

    @classmethod
    def from_config(cls, cfg: dict | None) -> "PeriodSettings":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (cfg or {}).items() if k in known})


def known_shifts(spec, raw_dir) -> pd.DataFrame:
    """The sheet's shift dates as a table (date, line, where) in time order, UTC where the station has
    a time zone. Unsorted dates are sorted (and the table says so in ``detail``); unparseable or
    duplicated ones raise :class:`ShiftError` naming the sheet column or the file line."""
    rows = []
    if spec.shift_dates:
        for token in [t.strip() for t in spec.shift_dates.split(";") if t.strip()]:
            rows.append((token, 0, "sheet column 'shift_dates'"))
    if spec.shifts_file:
        path = Path(raw_dir) / spec.shifts_file
        if not path.exists():
            raise ShiftError(f"station {spec.station_id}: shifts_file {path} does not exist")
        lines = path.read_text(encoding=spec.encoding).splitlines()
        column = 0
        header = [c.strip() for c in lines[0].split(spec.delimiter)] if lines else []
        if spec.shifts_column:
            if spec.shifts_column not in header:
                raise ShiftError(f"station {spec.station_id}: {path}, line 1: no column {spec.shifts_column!r} "
                                 f"(columns: {', '.join(header)})")
            column = header.index(spec.shifts_column)
        for number, line in enumerate(lines[1:], start=2):
            cells = line.split(spec.delimiter)
            if not line.strip() or not cells[column].strip():
                continue  # blank lines carry no date
            rows.append((cells[column].strip(), number, f"{path}, line {number}"))
    if not rows:
        return pd.DataFrame(columns=["date", "line", "where", "detail"])
    if not spec.datetime_column:
        raise ShiftError(f"station {spec.station_id}: shift dates are given ({rows[0][2]}) but the gaugings have "
                         "no dates (sheet column 'datetime_column' is empty)")
    dates = []
    for text, number, where in rows:
        try:
            t = pd.to_datetime(text, dayfirst=spec.dayfirst, format="mixed")
        except (ValueError, OverflowError):
            raise ShiftError(f"station {spec.station_id}: {where}: {text!r} is not a date") from None
        if t.tzinfo is None and spec.timezone:
            t = t.tz_localize(spec.timezone)
        dates.append(t.tz_convert("UTC").tz_localize(None) if t.tzinfo else t)
    table = pd.DataFrame({"date": dates, "line": [r[1] for r in rows], "where": [r[2] for r in rows], "detail": ""})
    if table["date"].duplicated().any():
        dup = table[table["date"].duplicated(keep=False)]
        raise ShiftError(f"station {spec.station_id}: shift date {dup['date'].iloc[0]} appears twice "
                         f"({'; '.join(dup['where'])})")
    if not table["date"].is_monotonic_increasing:
        table["detail"] = "the shift dates were not in time order; sorted"
        table = table.sort_values("date", kind="stable").reset_index(drop=True)
    return table


# ------------------------------------------------------------------------------------------ detection
def _timeless_residuals(station: StationData) -> tuple[np.ndarray, np.ndarray]:
    """Residuals of ln Q from the better (BIC) of a 1- and 2-segment least-squares curve, and their SD."""
    best = None
    for name in ("seg1", "seg2") if station.n >= 12 else ("seg1",):
        candidate = Candidate(name)
        fit = profile_fit(station, candidate, Structure(max_segments=candidate.n_segments))
        resid = residuals(station.stage, station.discharge, fit)
        sd = np.sqrt(station.sd_log**2 + fit["sigma"] ** 2)
        bic = float(np.sum((resid / sd) ** 2) + np.sum(np.log(sd**2)) + (3 + 2 * (candidate.n_segments - 1))
                    * np.log(station.n))
        if best is None or bic < best[0]:
            best = (bic, resid, sd)
    return best[1], best[2]


def _admissible(times: np.ndarray, settings: PeriodSettings) -> np.ndarray:
    """Split positions k (the later side starts at gauging k) that leave both sides long enough."""
    n = len(times)
    k = np.arange(settings.min_gaugings, n - settings.min_gaugings + 1)
    if len(k) == 0:
        return k
    day = np.timedelta64(1, "D")
    left = (times[k - 1] - times[0]) / day >= settings.min_days
    right = (times[-1] - times[k]) / day >= settings.min_days
    return k[left & right]


def _step_statistic(z: np.ndarray, splits: np.ndarray) -> np.ndarray:
    """|mean after - mean before| / sqrt(1/n1 + 1/n2) at each split, for z of shape (..., n)."""
    n = z.shape[-1]
    total = z.sum(axis=-1, keepdims=True)
    before = np.cumsum(z, axis=-1)[..., splits - 1]
    n1 = splits.astype(float)
    n2 = n - n1
    diff = (total - before) / n2 - before / n1
    return np.abs(diff) / np.sqrt(1 / n1 + 1 / n2)


def best_split(station: StationData, times: np.ndarray, settings: PeriodSettings, rng: np.random.Generator):
    """The strongest step in the residuals of ``station`` (gaugings in time order) that passes the
    settings, as (k, p_value, step), or None."""
    splits = _admissible(times, settings)
    if len(splits) == 0:
        return None
    resid, sd = _timeless_residuals(station)
    z = resid / sd
    z = (z - z.mean()) / max(z.std(), 1e-12)
    stat = _step_statistic(z, splits)
    j = int(np.argmax(stat))
    k = int(splits[j])
    shuffled = np.stack([rng.permutation(z) for _ in range(settings.permutations)])
    null = _step_statistic(shuffled, splits).max(axis=-1)
    p_value = float((1 + np.sum(null >= stat[j])) / (1 + settings.permutations))
    w = 1 / sd**2
    step = float(np.sum(w[k:] * resid[k:]) / np.sum(w[k:]) - np.sum(w[:k] * resid[:k]) / np.sum(w[:k]))
    if p_value > settings.max_p_value or abs(step) < settings.min_shift:
        return None
    k = _locate(station, splits, sd)
    step = float(np.sum(w[k:] * resid[k:]) / np.sum(w[k:]) - np.sum(w[:k] * resid[:k]) / np.sum(w[:k]))
    return k, p_value, step


def _locate(station: StationData, splits: np.ndarray, sd: np.ndarray) -> int:
    """Where the shift lies: the split whose two separate 1-segment curves fit best (weighted SSE).

    The residual step locates a shift only roughly (the timeless curve is a compromise between the
    periods); two curves fitted on either side place it between the right pair of gaugings far more
    often (docs/periods_study.md)."""
    idx = np.arange(station.n)
    best, best_k = np.inf, int(splits[0])
    for k in splits:
        total = 0.0
        for part in (idx[:k], idx[k:]):
            fit = profile_fit(_subset(station, part), Candidate("seg1"), Structure())
            total += float(np.sum((residuals(station.stage[part], station.discharge[part], fit) / sd[part]) ** 2))
        if total < best:
            best, best_k = total, int(k)
    return best_k


def _subset(station: StationData, idx: np.ndarray) -> StationData:
    return StationData(station.station_id, station.stage[idx], station.discharge[idx], station.discharge_sd[idx],
                       station.h0_range)


def detect(station: StationData, times: np.ndarray, settings: PeriodSettings, rng: np.random.Generator,
           offset: int = 0) -> list[tuple[int, float, float]]:
    """Detected shifts inside one stretch of gaugings (time order), recursively: (index of the first
    gauging of the new period, p-value, step in ln Q), in time order."""
    found = best_split(station, times, settings, rng)
    if found is None:
        return []
    k, p_value, step = found
    idx = np.arange(station.n)
    left = detect(_subset(station, idx[:k]), times[:k], settings, rng, offset)
    right = detect(_subset(station, idx[k:]), times[k:], settings, rng, offset + k)
    return left + [(offset + k, p_value, step)] + right


# ------------------------------------------------------------------------------------------- periods
def _fit_error(station: StationData, fit_idx: np.ndarray, test_idx: np.ndarray) -> float:
    """Mean squared residual of the gaugings ``test_idx`` from the 1-segment curve of ``fit_idx``."""
    fit = profile_fit(_subset(station, fit_idx), Candidate("seg1"), Structure())
    return float(np.mean(residuals(station.stage[test_idx], station.discharge[test_idx], fit) ** 2))


def station_periods(station_id: str, clean: pd.DataFrame, known: pd.DataFrame, settings: PeriodSettings,
                    seed: int) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """(periods, shifts, period of each clean gauging) of one station.

    ``clean``: the station's clean gaugings (clean stage output); ``known``: :func:`known_shifts`.
    Undated gaugings (or a station without dates) give one timeless period and no detection.
    """
    times = to_utc_naive(clean["datetime"]) if "datetime" in clean else pd.Series(pd.NaT, index=clean.index)
    shifts = []
    if times.isna().any():
        for _, row in known.iterrows():
            shifts.append({"date": row["date"], "source": "known", "status": "ignored", "line": row["line"],
                           "detail": "the station has undated gaugings: one timeless rating"})
        period = np.zeros(len(clean), int)
        return _period_table(times, period, []), _shift_table(shifts), period
    order = np.argsort(times.to_numpy(), kind="stable")
    t = times.to_numpy()[order]
    station = StationData(station_id, clean["stage_m"].to_numpy(float)[order], clean["discharge_m3s"].to_numpy(float)[order],
                          clean["discharge_sd_m3s"].to_numpy(float)[order])
    # known shifts: the index of the first gauging on or after each date
    boundaries = []  # (index, date, source, p, step, interval)
    for _, row in known.iterrows():
        date = np.datetime64(row["date"])
        base = {"date": row["date"], "source": "known", "line": row["line"], "detail": row["detail"]}
        if date <= t[0]:
            shifts.append({**base, "status": "ignored", "detail": _join(row["detail"], "on or before the first gauging")})
        elif date > t[-1]:
            shifts.append({**base, "status": "ignored",
                           "detail": _join(row["detail"], "after the last gauging: no gauging of the new period yet")})
        else:
            k = int(np.searchsorted(t, date, side="left"))
            boundaries.append({**base, "index": k, "status": "applied", "interval_start": t[k - 1],
                               "interval_end": t[k]})
    boundaries = _merge_small(station, boundaries, shifts, settings)
    if settings.detect:
        rng = np.random.default_rng([seed, 1401])
        cuts = [0] + [b["index"] for b in boundaries] + [station.n]
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            idx = np.arange(lo, hi)
            for k, p_value, step in detect(_subset(station, idx), t[lo:hi], settings, rng, offset=lo):
                boundaries.append({"date": pd.Timestamp(t[k]), "source": "detected", "status": "applied", "index": k,
                                   "interval_start": t[k - 1], "interval_end": t[k], "p_value": p_value,
                                   "step_percent": 100 * np.expm1(step), "line": 0, "detail": ""})
        boundaries.sort(key=lambda b: b["index"])
    if len(boundaries) + 1 > settings.max_periods:
        raise ShiftError(f"station {station_id}: {len(boundaries) + 1} periods, more than periods.max_periods "
                         f"({settings.max_periods})")
    sorted_period = np.zeros(station.n, int)
    for b in boundaries:
        sorted_period[b["index"]:] += 1
    period = np.empty(station.n, int)
    period[order] = sorted_period
    shifts = shifts + boundaries
    return _period_table(times, period, boundaries), _shift_table(shifts), period


def _join(*parts) -> str:
    return "; ".join(p for p in parts if p)


def _merge_small(station: StationData, boundaries: list, shifts: list, settings: PeriodSettings) -> list:
    """Drop known shifts until every period holds ``min_known_gaugings`` gaugings: a small period joins
    the neighbour whose least-squares curve fits its gaugings better; the dropped shift is reported."""
    boundaries = list(boundaries)
    while boundaries:
        cuts = [0] + [b["index"] for b in boundaries] + [station.n]
        sizes = np.diff(cuts)
        small = [p for p, size in enumerate(sizes) if size < settings.min_known_gaugings]
        if not small:
            break
        p = small[0]
        idx = np.arange(cuts[p], cuts[p + 1])
        errors = {}
        if p > 0:
            errors["previous"] = (_fit_error(station, np.arange(cuts[p - 1], cuts[p]), idx)
                                  if sizes[p - 1] >= 3 and len(idx) else np.inf)
        if p + 1 < len(sizes):
            errors["following"] = (_fit_error(station, np.arange(cuts[p + 1], cuts[p + 2]), idx)
                                   if sizes[p + 1] >= 3 and len(idx) else np.inf)
        side = min(errors, key=lambda s: (errors[s], s != "previous"))
        gone = boundaries.pop(p - 1 if side == "previous" else p)  # the shift at its start, or at its end
        shifts.append({**{k: v for k, v in gone.items() if k != "index"}, "status": "merged",
                       "detail": _join(gone.get("detail", ""), f"period of {sizes[p]} gauging(s) (fewer than "
                                       f"periods.min_known_gaugings = {settings.min_known_gaugings}) joined the "
                                       f"{side} period")})
    return boundaries


def _shift_table(shifts: list) -> pd.DataFrame:
    table = pd.DataFrame([{k: s.get(k, "") for k in SHIFT_COLUMNS} for s in shifts], columns=SHIFT_COLUMNS)
    for column in ("date", "interval_start", "interval_end"):
        table[column] = [_iso(v) for v in table[column]]
    return table.sort_values("date", kind="stable").reset_index(drop=True)


def _iso(value) -> str:
    if value is None or value == "" or pd.isna(value):
        return ""
    return pd.Timestamp(value).isoformat()


def _period_table(times: pd.Series, period: np.ndarray, boundaries: list) -> pd.DataFrame:
    rows = []
    n_periods = int(period.max()) + 1 if len(period) else 1
    for p in range(n_periods):
        members = period == p
        start = boundaries[p - 1] if p > 0 else None
        end = boundaries[p] if p < len(boundaries) else None
        when = times[members]
        rows.append({
            "period": p + 1,
            "valid_from": "" if start is None else _iso(start["date"] if start["source"] == "known" else start["interval_end"]),
            "valid_to": "" if end is None else _iso(end["date"] if end["source"] == "known" else end["interval_end"]),
            "first_gauging": _iso(when.min()) if when.notna().any() else "",
            "last_gauging": _iso(when.max()) if when.notna().any() else "",
            "n_gaugings": int(members.sum()),
            "start_source": "" if start is None else start["source"],
            "current": p == n_periods - 1,
        })
    return pd.DataFrame(rows, columns=PERIOD_COLUMNS)


# -------------------------------------------------------------------------------------------- stage
def run(spec, clean_path, status_path, raw_dir, periods_path, shifts_path, out_status_path,
        settings: PeriodSettings, seed: int) -> dict:
    """One station: periods and shifts written, and a status (``ok``; ``error`` with the message when
    its shift dates cannot be used, so that the fit skips it and the others go on). A station that
    clean skipped gets empty tables and clean's status."""
    from . import status as station_status
    from .io import load_json, save_json
    from .keys import station_seed
    from .runtime import progress

    info = load_json(status_path)
    periods, shifts = pd.DataFrame(columns=PERIOD_COLUMNS), pd.DataFrame(columns=SHIFT_COLUMNS)
    result = {"station": spec.station_id, "status": info.get("status"), "message": info.get("message", ""),
              "warnings": []}
    if not station_status.skip_reason(info):
        clean = pd.read_csv(clean_path, dtype={"datetime": str}, keep_default_na=False)
        try:
            known = known_shifts(spec, raw_dir)
            periods, shifts, _ = station_periods(spec.station_id, clean, known, settings,
                                                 station_seed(seed, spec.station_id))
        except ShiftError as err:
            result.update(status="error", message=str(err))
        result["warnings"] = [f"shift {row.date} ({row.source}) {row.status}: {row.detail}"
                              for row in shifts.itertuples() if row.status != "applied" or row.detail]
    periods.to_csv(periods_path, index=False)
    shifts.to_csv(shifts_path, index=False)
    result["periods"] = len(periods)
    save_json(result, out_status_path)
    progress(f"station {spec.station_id}: {len(periods)} period(s); "
             f"{int((shifts['status'] == 'applied').sum()) if len(shifts) else 0} shift(s) applied"
             + "".join(f"; {w}" for w in result["warnings"]) + (f"; {result['message']}" if result["message"] else ""))
    return result


def run_batch(specs, clean_paths, status_paths, raw_dir, periods_paths, shifts_paths, out_status_paths,
              settings: dict, seed: int) -> None:
    """Pipeline step for a batch of stations."""
    parsed = PeriodSettings.from_config(settings)
    for spec, clean, status, periods, shifts, out in zip(specs, clean_paths, status_paths, periods_paths,
                                                         shifts_paths, out_status_paths):
        run(spec, clean, status, raw_dir, periods, shifts, out, parsed, seed)

