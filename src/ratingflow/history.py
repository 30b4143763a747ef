"""The history of issued ratings (``results/history/{station}/{UTC stamp}/``: ``table.csv`` and the
``clean.csv`` it was fitted to), read by the changes and summarise stages."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


def latest_snapshot(history, station: str) -> Path | None:
    folder = Path(history) / station
    stamps = sorted(p for p in folder.glob("*") if (p / "table.csv").exists()) if folder.exists() else []
    return stamps[-1] if stamps else None


def gauging_keys(clean: pd.DataFrame) -> list[tuple]:
    """A gauging's identity: date-time, stage and discharge (rounded), not its line in the file."""
    return [(str(d), round(float(h), 6), round(float(q), 9))
            for d, h, q in zip(clean["datetime"].fillna(""), clean["stage_m"], clean["discharge_m3s"])]


#: how a rating table and a clean table are read (dates as text, empty cells as '')
TABLE_CSV = {"dtype": {"valid_from": str, "valid_to": str}, "keep_default_na": False}
CLEAN_CSV = {"dtype": {"datetime": str}, "keep_default_na": False}


def read_snapshot(snapshot: Path, read=pd.read_csv) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(table, clean) of a snapshot; a table from before rating periods gets one open period. ``read``: the
    reader (``pd.read_csv``'s signature)."""
    table = read(snapshot / "table.csv", **TABLE_CSV)
    if "period" not in table:
        table.insert(0, "period", 1)
        table.insert(1, "valid_from", "")
        table.insert(2, "valid_to", "")
    clean = read(snapshot / "clean.csv", **CLEAN_CSV)
    return table, clean


def period_gaugings(clean: pd.DataFrame, valid_from: str, valid_to: str) -> set[tuple]:
    """The gaugings (keys) dated inside [valid_from, valid_to) ('' open)."""
    from .dates import to_utc_naive

    t = to_utc_naive(clean["datetime"])
    inside = pd.Series(True, index=clean.index)
    if valid_from:
        inside &= t >= pd.Timestamp(valid_from)
    if valid_to:
        inside &= t < pd.Timestamp(valid_to)
    return set(gauging_keys(clean[inside.to_numpy()]))


def keep_issued(table: pd.DataFrame, clean: pd.DataFrame, history, station: str) -> tuple[pd.DataFrame, list[str]]:
    """Past periods as they were issued: each period of the new ``table`` except the current one that
    the latest snapshot holds with the same start and the same gaugings is taken from the snapshot
    (closing an open period keeps its rating). Returns the table (column ``issued``: the snapshot's
    stamp for kept periods, '' for new ones) and one note per period kept or re-issued."""
    table = table.assign(issued="")
    snapshot = latest_snapshot(history, station) if history else None
    if snapshot is None or table["period"].nunique() < 2:
        return table, []
    old, old_clean = read_snapshot(snapshot)
    notes, parts = [], []
    current = table["period"].max()
    for period, part in table.groupby("period", sort=True):
        start, end = part["valid_from"].iloc[0], part["valid_to"].iloc[0]
        match = old[old["valid_from"] == start]
        if period == current or match.empty:
            parts.append(part)
            continue
        old_end = match["valid_to"].iloc[0]
        same = period_gaugings(old_clean, start, old_end) == period_gaugings(clean, start, end)
        if same and (old_end == end or old_end == ""):
            kept = match.drop(columns=[c for c in ("issued",) if c in match]).assign(period=period, valid_to=end,
                                                                                     issued=snapshot.name)
            parts.append(kept[[c for c in part.columns]])
            notes.append(f"period {period} (from {start or 'the start'}) kept as issued in {snapshot.name}")
        else:
            parts.append(part)
            notes.append(f"period {period} (from {start or 'the start'}) re-issued: its gaugings or dates changed "
                         f"since {snapshot.name}")
    return pd.concat(parts, ignore_index=True), notes
