"""Leave-future-out check of rating periods on real stations (issue 14).

``python -m ratingflow.lfo_study --stations goudet vaubarlet --out docs/periods_lfo.md``: for every
``--every``-th gauging of the later half of each station's record, fit the gaugings before it (with the
sheet's shift dates known up to then, and shifts detected in those gaugings) and predict it: is it inside the
90 % HPDI of a new gauging at its stage (with its own stated uncertainty)? Two predictions per fold, from the
same fits:

* **with periods**: the model the pipeline chooses (timeless candidates, then the chosen segment count with
  rating periods), its current period's rating;
* **one timeless curve**: the best timeless candidate.

A gauging that follows a known shift with no gauging of the new period yet is predicted with the last
fitted period (as a service would until the first gauging after the shift); the report gives coverage with
and without those gaugings, with Wilson 95 % intervals.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd


def folds(clean: pd.DataFrame, every: int, start: float = 0.5) -> list[int]:
    n = len(clean)
    return list(range(max(int(start * n), 12), n, every))


def _new_gauging_band(fit, validity, x_abs: float, sd_log: float, key) -> tuple[float, float]:
    """90 % HPDI of a new gauging at stage ``x_abs`` from the fit's current period (or its one rating)."""
    from numpyro.diagnostics import hpdi

    from .idata import FitData
    from .posterior import inference_data, model_of, period_view
    from .predict import flat_draws, predict

    idata = inference_data(fit, FitData(), {}, validity=validity)
    view = period_view(idata, int(idata.attrs["periods"]) - 1) if int(idata.attrs.get("periods", 1)) > 1 else idata
    _, structure, context = model_of(view)
    offset = float(view.constant_data["stage_offset"])
    _, gauging = predict(key, flat_draws(view.posterior), np.array([x_abs - offset]), context, sd_log, structure)
    lo, hi = hpdi(gauging[:, 0], 0.9)
    return lo, hi


def run(stations: list[str], sheet_path, raw_dir, config: dict, every: int, seed: int):
    import jax

    from .choice import fit_and_choose
    from .clean import clean as clean_station
    from .data import StationData
    from .fit import period_round
    from .candidates import ModelSettings, Priors
    from .dates import to_utc_naive
    from .periods import PeriodSettings, known_shifts, station_periods
    from .sampler import SamplerSettings, driver_cache
    from .sheet import load_sheet

    sheet = load_sheet(sheet_path, raw_dir)
    models = ModelSettings.from_config(config["models"])
    settings = SamplerSettings.from_config(config["sampler"])
    priors = Priors.from_config(config.get("priors"))
    period_settings = PeriodSettings.from_config(config.get("periods"))
    jobs = []  # (station, fold index, training StationData, validity, test row, after a known shift)
    for sid in stations:
        spec = sheet[sid]
        clean = clean_station(spec, Path(raw_dir) / spec.file, config["default_uncertainty"]).clean
        clean = clean.iloc[np.argsort(to_utc_naive(clean["datetime"]).to_numpy(), kind="stable")].reset_index(drop=True)
        known_all = known_shifts(spec, raw_dir)
        t = to_utc_naive(clean["datetime"]).to_numpy()
        for c in folds(clean, every):
            train = clean.iloc[:c].reset_index(drop=True)
            known = known_all[known_all["date"] <= pd.Timestamp(t[c - 1])]
            periods, _, period = station_periods(sid, train, known, period_settings, seed)
            st = StationData.from_clean(f"{sid}-fold{c}", train)
            if len(periods) > 1:
                st = StationData(st.station_id, st.stage, st.discharge, st.discharge_sd, period=period)
            unseen = bool(((known_all["date"] > pd.Timestamp(t[c - 1])) & (known_all["date"] <= pd.Timestamp(t[c]))).any())
            jobs.append((sid, c, st, periods, clean.iloc[c], unseen))
    candidates = models.candidate_list()
    driver_for = driver_cache(models.structure(candidates), settings, priors)
    stations_data = [j[2] for j in jobs]
    start = time.perf_counter()
    choices = fit_and_choose(driver_for(), stations_data, candidates, seed, models.se_factor)
    timeless = [c.chosen for c in choices]
    choices = period_round(driver_for, stations_data, choices, seed, models.se_factor)
    wall = time.perf_counter() - start
    rows = []
    key = jax.random.PRNGKey(seed)
    for (sid, c, st, periods, test, unseen), choice, best_timeless in zip(jobs, choices, timeless):
        sd_log = float(np.sqrt(np.log1p((test["discharge_sd_m3s"] / test["discharge_m3s"]) ** 2)))
        key, k1, k2 = jax.random.split(key, 3)
        lo_p, hi_p = _new_gauging_band(choice.fit, periods, test["stage_m"], sd_log, k1)
        lo_t, hi_t = _new_gauging_band(choice.fits[best_timeless], periods, test["stage_m"], sd_log, k2)
        q = test["discharge_m3s"]
        rows.append({"station": sid, "fold": c, "test_datetime": test["datetime"], "chosen": choice.chosen,
                     "periods_fitted": len(periods), "after_unseen_shift": unseen,
                     "covered_periods": bool(lo_p <= q <= hi_p), "covered_timeless": bool(lo_t <= q <= hi_t),
                     "band_periods": f"{lo_p:.4g}-{hi_p:.4g}", "band_timeless": f"{lo_t:.4g}-{hi_t:.4g}", "q": q})
    return pd.DataFrame(rows), wall


def report(table: pd.DataFrame, wall: float, argv: str, settings: dict) -> str:
    from .intervals import wilson

    def cell(part, column):
        k, n = int(part[column].sum()), len(part)
        lo, hi = wilson(k, n)
        return f"{k} / {n} = {100 * k / max(n, 1):.0f} % ({100 * lo:.0f}-{100 * hi:.0f} %)"

    lines = ["# Leave-future-out check of rating periods", "",
             f"`python -m ratingflow.lfo_study {argv}`; sampler {settings}; fits {wall:.0f} s (2-core VM). "
             "Coverage of the 90 % HPDI of a new gauging (Wilson 95 % interval); target 85-95 % with periods.", "",
             "| station | predicted gaugings | with periods | one timeless curve |", "|---|---|---|---|"]
    for name, part in [*table.groupby("station"), ("all", table)]:
        lines.append(f"| {name} | all | {cell(part, 'covered_periods')} | {cell(part, 'covered_timeless')} |")
        same = part[~part["after_unseen_shift"]]
        lines.append(f"| {name} | not after an unseen known shift | {cell(same, 'covered_periods')} | "
                     f"{cell(same, 'covered_timeless')} |")
    lines += ["", "Models chosen in the folds: " + ", ".join(f"{m} {n}" for m, n in table["chosen"].value_counts().items()),
              ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    import sys

    import yaml

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", nargs="+", default=["goudet", "vaubarlet"])
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--every", type=int, default=2, help="predict every n-th gauging of the later half")
    parser.add_argument("--candidates", nargs="+", default=["seg1", "seg2"])
    parser.add_argument("--samples", type=int, default=500, help="warm-up and sampling iterations per chain")
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    from .runtime import configure_jax

    configure_jax(threads=0, cache_dir=".cache/jax")
    config = yaml.safe_load(Path(args.config).read_text())
    config["models"]["candidates"] = args.candidates
    config["sampler"].update(num_warmup=args.samples, num_samples=args.samples, num_chains=args.chains)
    table, wall = run(args.stations, config["stations"], config["raw_dir"], config, args.every, config["seed"])
    text = report(table, wall, " ".join(sys.argv[1:] if argv is None else argv), config["sampler"])
    print(text)
    if args.out:
        Path(args.out).write_text(text)
        table.to_csv(Path(args.out).with_suffix(".csv"), index=False)


if __name__ == "__main__":
    main()
