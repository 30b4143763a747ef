"""Synthetic stations with known ratings: raw files, sheet rows and the truth, from one seed.

Each station has one or two controls. One control: Q = a (H - h0)^b. Two controls: a section
control below the breakpoint H_b (Q = a1 (H - h01)^b1, b1 in 2.0-2.8) and a channel control above
(Q = a2 (H - h02)^b2, b2 in 1.3-1.9, h01 <= h02 < H_b, a2 chosen so that Q is continuous at H_b).
Gaugings (15-200) cover 2-3 orders of magnitude of discharge; each has a stated gauging
uncertainty of 2-8 % (1 SD, in the file) and scatter of that size plus a residual sigma.
A quarter of the stations are written in ft and cfs, some with a datum hundreds of metres below.

The one generator of the project: the benchmark, the coverage study and the tests draw from it
(:func:`draw_station`, :func:`two_controls`, :func:`gaugings`).

``python -m ratingflow.synthetic N OUT [--seed S]`` writes OUT/data/raw/*.csv,
OUT/config/stations.tsv and OUT/truth.csv.
"""
from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .data import StationData
from .units import FOOT

SHEET_COLUMNS = ["station_id", "name", "file", "stage_column", "stage_unit", "discharge_column", "discharge_unit",
                 "uncertainty_column", "uncertainty_kind", "datetime_column", "controls", "notes"]


@dataclass
class Truth:
    station_id: str
    controls: int
    a: float
    b: float
    h0: float
    sigma: float
    breakpoint: float = float("nan")  # two controls: the stage where the channel control takes over
    a2: float = float("nan")
    b2: float = float("nan")
    h02: float = float("nan")
    n: int = 0
    units: str = "m"

    def discharge(self, stage: np.ndarray) -> np.ndarray:
        """True discharge [m3/s] at stage [m]; 0 at or below h0."""
        stage = np.asarray(stage, float)
        low = self.a * np.clip(stage - self.h0, 0, None) ** self.b
        if self.controls == 1:
            return low
        high = self.a2 * np.clip(stage - self.h02, 0, None) ** self.b2
        return np.where(stage < self.breakpoint, low, high)


def two_controls(station_id: str, a: float, b: float, h0: float, sigma: float, breakpoint: float, b2: float,
                 h02: float | None = None) -> Truth:
    """A two-control truth with discharge continuous at the breakpoint; ``h02`` None: both controls
    share h0 (the default segmented model's form)."""
    h02 = h0 if h02 is None else h02
    a2 = a * (breakpoint - h0) ** b / (breakpoint - h02) ** b2
    return Truth(station_id, 2, a, b, h0, sigma, breakpoint, a2, b2, h02)


def station_data(truth: Truth, table: pd.DataFrame) -> StationData:
    """The model's view of gaugings drawn by :func:`gaugings` (SI units)."""
    return StationData(truth.station_id, table["stage"].to_numpy(float), table["q"].to_numpy(float),
                       table["q_sigma"].to_numpy(float))


def simulated(rng: np.random.Generator, n: int, prefix: str) -> tuple[list[StationData], list[Truth]]:
    """``n`` stations of the studies: a truth each (:func:`draw_truth`) and 15-200 gaugings."""
    stations, truths = [], []
    for i in range(n):
        truth = draw_truth(rng, f"{prefix}{i:04d}")
        stations.append(station_data(truth, gaugings(rng, truth, int(rng.integers(15, 201)))))
        truths.append(truth)
    return stations, truths


def draw_station(rng: np.random.Generator, station_id: str, n: int, two_control_share: float = 0.3):
    """(StationData, Truth): a truth from :func:`draw_truth` and n gaugings of it."""
    truth = draw_truth(rng, station_id, two_control_share)
    truth.n = n
    return station_data(truth, gaugings(rng, truth, n)), truth


def draw_truth(rng: np.random.Generator, station_id: str, two_control_share: float = 0.3) -> Truth:
    controls = 2 if rng.random() < two_control_share else 1
    datum = rng.choice([0.0, 0.0, 0.0, float(rng.uniform(100, 500))])
    h0 = datum + float(rng.uniform(-1.0, 2.0))
    a = float(np.exp(rng.normal(np.log(20.0), 1.2)))
    sigma = float(rng.uniform(0.01, 0.05))
    if controls == 1:
        return Truth(station_id, 1, a, float(rng.uniform(1.4, 2.6)), h0, sigma)
    b1 = float(rng.uniform(2.0, 2.8))
    breakpoint = h0 + float(rng.uniform(0.3, 1.0))
    b2 = float(rng.uniform(1.3, 1.9))
    h02 = h0 + float(rng.uniform(0.0, 0.6)) * (breakpoint - h0)
    return two_controls(station_id, a, b1, h0, sigma, breakpoint, b2, h02)


def gaugings(rng: np.random.Generator, truth: Truth, n: int) -> pd.DataFrame:
    """n gaugings in SI over 2-3 orders of magnitude of discharge."""
    orders = rng.uniform(2.0, 3.0)
    depth_max = float(rng.uniform(1.5, 5.0)) if truth.controls == 1 else (truth.breakpoint - truth.h0) * rng.uniform(2.5, 5)
    # the lowest gauging: where the true discharge is 10^orders below the highest one
    fine = np.geomspace(depth_max * 1e-6, depth_max, 4000)
    log_q = np.log10(np.maximum(truth.discharge(truth.h0 + fine), 1e-300))
    depth_min = float(np.interp(log_q[-1] - orders, log_q, fine))
    # stratified in log depth, so that the gaugings span the whole range
    u = (rng.permutation(n) + rng.uniform(0, 1, n)) / n
    depth = np.exp(np.log(depth_min) + u * (np.log(depth_max) - np.log(depth_min)))
    stage = np.round(truth.h0 + depth, 3)
    rel_sd = rng.uniform(0.02, 0.08, n)
    sd_log = np.sqrt(np.log1p(rel_sd**2))
    q = truth.discharge(stage) * np.exp(rng.normal(0.0, np.sqrt(truth.sigma**2 + sd_log**2)))
    start = np.datetime64("2010-01-01T00:00")
    minutes = np.sort(rng.integers(0, 15 * 365 * 24 * 60, n))
    when = (start + minutes.astype("timedelta64[m]")).astype(str)
    return pd.DataFrame({"datetime": when, "stage": stage, "q": q, "q_sigma": rel_sd * q})


def generate(n_stations: int, out: str | Path, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write N synthetic stations under ``out``; returns (sheet, truth)."""
    out = Path(out)
    raw_dir = out / "data" / "raw" / "synthetic"
    raw_dir.mkdir(parents=True, exist_ok=True)
    (out / "config").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sheet, truths = [], []
    for i in range(n_stations):
        sid = f"syn{i:04d}"
        truth = draw_truth(rng, sid)
        truth.n = int(rng.integers(15, 201))
        table = gaugings(rng, truth, truth.n)
        feet = rng.random() < 0.25
        truth.units = "ft" if feet else "m"
        if feet:
            table["stage"] = (table["stage"] / FOOT).round(3)
            table[["q", "q_sigma"]] = table[["q", "q_sigma"]] / FOOT**3
        table["q"] = table["q"].map(lambda v: float(f"{v:.5g}"))
        table["q_sigma"] = table["q_sigma"].map(lambda v: float(f"{v:.3g}"))
        table.to_csv(raw_dir / f"{sid}.csv", index=False)
        sheet.append({
            "station_id": sid, "name": f"synthetic station {i}", "file": f"synthetic/{sid}.csv",
            "stage_column": "stage", "stage_unit": "ft" if feet else "m", "discharge_column": "q",
            "discharge_unit": "cfs" if feet else "m3/s", "uncertainty_column": "q_sigma",
            "uncertainty_kind": "absolute_sd", "datetime_column": "datetime", "controls": truth.controls,
            "notes": "synthetic",
        })
        truths.append(asdict(truth))
    sheet_df, truth_df = pd.DataFrame(sheet, columns=SHEET_COLUMNS), pd.DataFrame(truths)
    sheet_df.to_csv(out / "config" / "stations.tsv", sep="\t", index=False)
    truth_df.to_csv(out / "truth.csv", index=False)
    return sheet_df, truth_df


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, help="number of stations")
    parser.add_argument("out", help="output folder")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    sheet, truth = generate(args.n, args.out, args.seed)
    print(f"{len(sheet)} stations ({(truth['controls'] == 2).sum()} with two controls) written to {args.out}")


if __name__ == "__main__":
    main()


#: kinds of rating shift the generator draws: none, a change of zero-flow stage (bed scour or deposit),
#: a change of the coefficient (width, roughness)
SHIFT_KINDS = ("none", "offset", "coefficient")


@dataclass
class ShiftTruth:
    station_id: str
    kind: str
    date: str = ""  # the true date of the shift (ISO)
    index: int = -1  # the first gauging after it (time order)
    ratio: float = 1.0  # discharge after / before at the median gauged stage
    n: int = 0


def shifted(truth: Truth, kind: str, ratio: float, stage: float) -> Truth:
    """``truth`` after a shift that multiplies discharge at ``stage`` by ``ratio`` (one control)."""
    if kind == "coefficient":
        return Truth(truth.station_id, 1, truth.a * ratio, truth.b, truth.h0, truth.sigma)
    depth = stage - truth.h0
    return Truth(truth.station_id, 1, truth.a, truth.b, truth.h0 + depth * (1 - ratio ** (1 / truth.b)), truth.sigma)


def dated_station(rng: np.random.Generator, station_id: str, kind: str, n: int,
                  ratio_range: tuple[float, float] = (1.15, 1.5)) -> tuple[pd.DataFrame, ShiftTruth]:
    """A one-control station with n dated gaugings (the clean stage's columns) and at most one shift.

    The shift falls between 30 % and 70 % of the record, in time order, and changes discharge at the
    median gauged stage by a factor drawn from ``ratio_range`` (up or down at random). Flows are drawn
    alike before and after, so an offset change moves the gauged stages."""
    truth = draw_truth(rng, station_id, two_control_share=0.0)
    table = gaugings(rng, truth, n).sort_values("datetime", kind="stable").reset_index(drop=True)
    info = ShiftTruth(station_id, kind, n=n)
    if kind != "none":
        k = int(rng.integers(int(0.3 * n), int(0.7 * n) + 1))
        ratio = float(rng.uniform(*ratio_range)) ** rng.choice([-1.0, 1.0])
        after = shifted(truth, kind, ratio, float(np.median(table["stage"])))
        # the same flows after the shift: each later gauging's depth is redrawn for its discharge
        later = gaugings(rng, after, n).sort_values("datetime", kind="stable").reset_index(drop=True)
        table.loc[k:, ["stage", "q", "q_sigma"]] = later.loc[k:, ["stage", "q", "q_sigma"]].to_numpy()
        t0, t1 = np.datetime64(table["datetime"].iloc[k - 1]), np.datetime64(table["datetime"].iloc[k])
        info.date = str(t0 + (t1 - t0) // 2)
        info.index, info.ratio = k, ratio
    clean = pd.DataFrame({"datetime": table["datetime"], "stage_m": table["stage"], "discharge_m3s": table["q"],
                          "discharge_sd_m3s": table["q_sigma"]})
    return clean, info
