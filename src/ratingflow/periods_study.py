"""Simulation check of shift detection: stations with one shift of known date and size, or none.

``python -m ratingflow.periods_study --real goudet isere [--without-known]`` prints the periods and shifts
of stations of the sheet instead.

``python -m ratingflow.periods_study --stations 300 --out docs/periods_study.md`` draws the stations
from :func:`ratingflow.synthetic.dated_station` (a third each: no shift, an offset change, a
coefficient change; 20-120 gaugings over 15 years), runs :func:`ratingflow.periods.station_periods`
with the config's ``periods`` settings, and reports:

* the detection rate of shifts that change discharge at the median gauged stage by at least 15 %;
* the share of stations without a shift that get one;
* the share of detected shifts that lie between the two gaugings bracketing the true date;

each with its Wilson 95 % interval, and the wall time.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .intervals import wilson
from .periods import PeriodSettings, station_periods
from .synthetic import SHIFT_KINDS, dated_station


def simulate(n_stations: int, seed: int, settings: PeriodSettings) -> pd.DataFrame:
    """One row per station: its truth and what detection found."""
    rng = np.random.default_rng(seed)
    rows = []
    empty = pd.DataFrame(columns=["date", "line", "where", "detail"])
    for i in range(n_stations):
        kind = SHIFT_KINDS[i % len(SHIFT_KINDS)]
        clean, truth = dated_station(rng, f"shift{i:04d}", kind, int(rng.integers(20, 121)))
        _, shifts, _ = station_periods(truth.station_id, clean, empty, settings, seed + i)
        found = shifts[shifts["source"] == "detected"]
        located = False
        if truth.index > 0 and len(found):
            t = pd.to_datetime(clean["datetime"]).to_numpy()
            bracket = (t[truth.index - 1], t[truth.index])
            located = bool(((pd.to_datetime(found["interval_start"]).to_numpy() == bracket[0])
                            & (pd.to_datetime(found["interval_end"]).to_numpy() == bracket[1])).any())
        rows.append({"station": truth.station_id, "kind": kind, "n": truth.n, "ratio": truth.ratio,
                     "detected": len(found), "located": located})
    return pd.DataFrame(rows)


def report(table: pd.DataFrame, settings: PeriodSettings, wall: float, seed: int) -> str:
    shifted_rows = table[table["kind"] != "none"]
    big = shifted_rows[np.abs(np.log(shifted_rows["ratio"])) >= np.log(1.15) - 1e-12]
    null = table[table["kind"] == "none"]
    hits = int((big["detected"] > 0).sum())
    false = int((null["detected"] > 0).sum())
    found = shifted_rows[shifted_rows["detected"] > 0]
    located = int(found["located"].sum())

    def line(name, k, n, target):
        lo, hi = wilson(k, n)
        return f"| {name} | {k} / {n} = {100 * k / max(n, 1):.1f} % | {100 * lo:.1f}-{100 * hi:.1f} % | {target} |"

    per_kind = []
    for kind in ("offset", "coefficient"):
        part = big[big["kind"] == kind]
        per_kind.append(line(f"detected, {kind} change >= 15 %", int((part["detected"] > 0).sum()), len(part),
                             ">= 90 %"))
    return "\n".join([
        "# Shift detection on simulated stations",
        "",
        f"`python -m ratingflow.periods_study --stations {len(table)} --seed {seed}`: {len(table)} one-control "
        f"stations, 20-120 dated gaugings each over 15 years; a third without a shift, a third with an offset "
        f"change and a third with a coefficient change of 15-50 % in discharge at the median gauged stage. "
        f"Settings: {settings}. Wall time {wall:.1f} s.",
        "",
        "| measure | result | Wilson 95 % | target |",
        "|---|---|---|---|",
        line("shifts >= 15 % detected", hits, len(big), ">= 90 %"),
        *per_kind,
        line("stations without a shift that get one", false, len(null), "<= 5 %"),
        line("detected shifts between the two gaugings around the true date", located, len(found), ">= 80 %"),
        "",
    ])


def real_stations(names: list[str], config_path: str, without_known: bool) -> None:
    """Print the periods and shifts of stations of the sheet, as the pipeline finds them."""
    import yaml

    from .clean import clean as clean_station
    from .keys import station_seed
    from .periods import known_shifts
    from .sheet import load_sheet

    config = yaml.safe_load(Path(config_path).read_text())
    sheet = load_sheet(config["stations"], config["raw_dir"])
    settings = PeriodSettings.from_config(config.get("periods"))
    pd.set_option("display.width", 250)
    for sid in names:
        spec = sheet[sid]
        clean = clean_station(spec, Path(config["raw_dir"]) / spec.file, config["default_uncertainty"]).clean
        known = known_shifts(spec, config["raw_dir"])
        if without_known:
            known = known.iloc[0:0]
        periods, shifts, _ = station_periods(sid, clean, known, settings, station_seed(config["seed"], sid))
        print(f"== {sid}: {len(clean)} gaugings, {len(known)} known shift date(s) used, {len(periods)} period(s)")
        print(periods.drop(columns=["current"]).to_string(index=False))
        if len(shifts):
            print(shifts.drop(columns=["line", "detail"]).to_string(index=False))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", nargs="+", metavar="STATION",
                        help="instead of the simulation: the periods of these stations of the sheet")
    parser.add_argument("--without-known", action="store_true", help="with --real: ignore the sheet's shift dates")
    parser.add_argument("--stations", type=int, default=300)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--config", help="config file whose 'periods' section to use (default: the defaults)")
    parser.add_argument("--out", help="write the report here (markdown)")
    args = parser.parse_args(argv)
    if args.real:
        real_stations(args.real, args.config or "config/config.yaml", args.without_known)
        return
    cfg = {}
    if args.config:
        import yaml

        cfg = yaml.safe_load(Path(args.config).read_text()).get("periods", {})
    settings = PeriodSettings.from_config(cfg)
    start = time.perf_counter()
    table = simulate(args.stations, args.seed, settings)
    text = report(table, settings, time.perf_counter() - start, args.seed)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
