"""Benchmark: what rating periods cost a dated station (issue 14).

    .venv/bin/python bench/periods.py [--stations 8] [--samples 1000]

Draws dated one-control stations with one shift each (ratingflow.synthetic.dated_station, 40 gaugings), and in
one process, on the same stations and with the config's sampler and candidates:

1. the timeless fit alone (what a station without periods costs: round one of ``ratingflow.fit``);
2. shift detection (``ratingflow.periods.station_periods``);
3. the second round with rating periods (``ratingflow.fit.period_round``).

Each fit is run twice and the second (warm: compiled programs in memory) is timed, so that the ratio compares
sampling, not compilation. Prints the seconds and the ratio (detection + both rounds) / timeless fit, against
the target of at most 1.5.
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=8)
    parser.add_argument("--gaugings", type=int, default=40)
    parser.add_argument("--samples", type=int, default=1000, help="warm-up and sampling iterations per chain")
    args = parser.parse_args()
    from ratingflow.runtime import configure_jax

    configure_jax(threads=0, cache_dir=str(ROOT / ".cache" / "jax"))
    from ratingflow.choice import fit_and_choose
    from ratingflow.data import StationData
    from ratingflow.fit import period_round
    from ratingflow.candidates import ModelSettings, Priors
    from ratingflow.periods import PeriodSettings, station_periods
    from ratingflow.sampler import SamplerSettings, driver_cache
    from ratingflow.synthetic import dated_station

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["sampler"].update(num_warmup=args.samples, num_samples=args.samples)
    models, settings = ModelSettings.from_config(config["models"]), SamplerSettings.from_config(config["sampler"])
    priors, period_settings = Priors.from_config(config.get("priors")), PeriodSettings.from_config(config.get("periods"))
    rng = np.random.default_rng(16)
    empty = pd.DataFrame(columns=["date", "line", "where", "detail"])
    cleans = [dated_station(rng, f"bench{i}", ("offset", "coefficient")[i % 2], args.gaugings)[0]
              for i in range(args.stations)]
    start = time.perf_counter()
    periods = [station_periods(f"bench{i}", c, empty, period_settings, i)[2] for i, c in enumerate(cleans)]
    detect_s = time.perf_counter() - start
    stations = []
    for i, (clean, period) in enumerate(zip(cleans, periods)):
        st = StationData.from_clean(f"bench{i}", clean)
        stations.append(StationData(st.station_id, st.stage, st.discharge, st.discharge_sd,
                                    period=period if period.max() > 0 else None))
    candidates = models.candidate_list()
    driver_for = driver_cache(models.structure(candidates), settings, priors)

    times = {}
    for attempt in ("cold", "warm"):
        start = time.perf_counter()
        choices = fit_and_choose(driver_for(), stations, candidates, 0, models.se_factor)
        times[f"timeless_{attempt}"] = time.perf_counter() - start
        start = time.perf_counter()
        final = period_round(driver_for, stations, choices, 0, models.se_factor)
        times[f"periods_{attempt}"] = time.perf_counter() - start
    with_periods = sum(st.n_periods > 1 for st in stations)
    ratio = (detect_s + times["timeless_warm"] + times["periods_warm"]) / times["timeless_warm"]
    print(f"machine: {platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores")
    print(f"{args.stations} dated stations x {args.gaugings} gaugings, one shift each; {with_periods} got periods; "
          f"candidates {list(models.candidates)}; {settings.num_chains} chains x {args.samples}+{args.samples}")
    print(f"shift detection: {detect_s:.1f} s ({detect_s / args.stations:.2f} s per station)")
    for attempt in ("cold", "warm"):
        print(f"{attempt}: timeless fit {times[f'timeless_{attempt}']:.1f} s, rating-period round "
              f"{times[f'periods_{attempt}']:.1f} s")
    print(f"ratio (detection + timeless + periods) / timeless, warm: {ratio:.2f} (target <= 1.5)")
    print("chosen: " + ", ".join(pd.Series([c.chosen for c in final]).value_counts().to_dict().__repr__().split(", ")))


if __name__ == "__main__":
    main()
