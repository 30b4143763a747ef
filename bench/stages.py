"""Benchmark of the stages around the fit (issue 16, item 4): prints figures, asserts nothing.

``.venv/bin/python bench/stages.py [--stations 50]``

N synthetic stations of one shape bucket (33-64 gaugings: one batch job of the pipeline), a tenth of them with
discharge x 1e6 (a wrong unit: their prior check fails), go through the prior check, a seg1 fit
and summarise with the settings of config/config.yaml, each stage as a job would run it: a fresh Python process calling the stage's ``run_batch`` with
the persistent compilation cache. Every stage runs once to fill the cache and is then measured. Printed per
stage: the job's wall time, its start-up (imports, JAX set-up) and the seconds per station inside the job, so
that job-s per station at any batch size is start-up / batch size + the per-station figure.

Baseline in the same run: the prior check with ``figures: all`` (a figure for every station, as before this
option), and summarise drawing no figure, so the ratios do not depend on the machine's speed at the moment.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: the default config: the stages run with its settings (seg1 as the only candidate)
CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"


def job(spec_path: str) -> None:
    """One stage of one batch in this process, as a Snakemake job would run it; prints the seconds spent on the
    stations as JSON."""
    import yaml

    spec = json.loads(Path(spec_path).read_text())
    config = yaml.safe_load(CONFIG.read_text())
    from ratingflow.runtime import configure_jax

    # as the pipeline's jobs: summarise with NumPy's AVX2 sorts on AMD Zen 4 (NumPy is not imported yet)
    configure_jax(1, spec["cache"], avx2_sorts=spec["stage"] == "summarise")
    from ratingflow.candidates import ModelSettings, Priors

    models = ModelSettings(candidates=("seg1",))
    ids, work = spec["stations"], Path(spec["work"])
    clean = [str(work / "clean" / f"{s}.csv") for s in ids]
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    if spec["stage"] == "prior":
        from ratingflow import prior_check

        started = time.perf_counter()
        prior_check.run_batch(ids, {"clean": clean, "status": [c.replace(".csv", ".status.json") for c in clean]},
                              {k: [str(out / f"{s}.{e}") for s in ids] for k, e in
                               (("nc", "nc"), ("verdict", "json"), ("plot", "svg"))},
                              1, {**config["prior_check"], "figures": spec["figures"]}, Priors(), models)
    elif spec["stage"] == "fit":
        from ratingflow import fit
        from ratingflow.sampler import SamplerSettings

        started = time.perf_counter()
        prior = work / "prior"
        fit.run_batch(ids, clean, [str(prior / f"{s}.nc") for s in ids], [str(out / f"{s}.nc") for s in ids],
                      [str(out / f"{s}.models.csv") for s in ids], 1,
                      SamplerSettings.from_config(config["sampler"]), Priors(), models, {"config_hash": "bench"}, prior_json_paths=[str(prior / f"{s}.json") for s in ids])
    else:
        from ratingflow import figures, summarise

        if not spec["figures"]:
            figures.plot_fit = lambda *args, **kwargs: None  # the baseline: everything but the figure
        started = time.perf_counter()
        fits = work / "fit"
        summarise.run_batch([str(fits / f"{s}.nc") for s in ids],
                            {k: [str(out / f"{s}.{e}") for s in ids] for k, e in
                             (("table", "csv"), ("nc", "table.nc"), ("diagnostics", "json"), ("plot", "svg"))},
                            1, config["table"], config["diagnostics"], Priors(), clean_paths=clean)
    print(json.dumps({"stations_s": time.perf_counter() - started}))


def run_job(work: Path, cache: Path, stage: str, ids: list, out: Path, figures) -> dict:
    spec = work / f"{stage}.json"
    spec.write_text(json.dumps({"stage": stage, "stations": ids, "work": str(work), "cache": str(cache),
                                "out": str(out), "figures": figures}))
    start = time.perf_counter()
    result = subprocess.run([sys.executable, __file__, "--job", str(spec)], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode:
        sys.exit(f"{stage} job failed:\n{result.stderr[-3000:]}")
    stations_s = json.loads(result.stdout.strip().splitlines()[-1])["stations_s"]
    # start-up: everything but the stations (interpreter, imports, JAX set-up, reading the config)
    return {"wall_s": wall, "stations_s": stations_s, "startup_s": wall - stations_s}


def write_stations(work: Path, n: int) -> list:
    import numpy as np
    import pandas as pd

    from ratingflow.synthetic import draw_station

    rng = np.random.default_rng(16)
    (work / "clean").mkdir(parents=True)
    ids = []
    for i in range(n):
        station, _ = draw_station(rng, f"b{i:03d}", int(rng.integers(33, 65)))
        q = station.discharge * (1e6 if i % 10 == 9 else 1.0)  # a tenth far outside the prior (a wrong unit)
        pd.DataFrame({"line": np.arange(2, station.n + 2), "stage_m": station.stage, "discharge_m3s": q,
                      "discharge_sd_m3s": station.discharge_sd * q / station.discharge}).to_csv(
            work / "clean" / f"{station.station_id}.csv", index=False)
        (work / "clean" / f"{station.station_id}.status.json").write_text('{"status": "ok"}')
        ids.append(station.station_id)
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=50)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        return job(args.job)
    with tempfile.TemporaryDirectory(prefix="ratingflow-stages-") as tmp:
        work, cache = Path(tmp), Path(tmp) / "jax-cache"
        ids = write_stations(work, args.stations)
        n = len(ids)
        rows = []
        run_job(work, cache, "prior", ids, work / "prior", "flagged")  # fills the cache (and the fit's input)
        rows.append(("prior check (figures: flagged)", run_job(work, cache, "prior", ids, work / "p1", "flagged")))
        rows.append(("prior check (figures: all) - baseline", run_job(work, cache, "prior", ids, work / "p2", "all")))
        drawn = {name: len(list((work / name).glob("*.svg"))) for name in ("p1", "p2")}
        fit = run_job(work, cache, "fit", ids, work / "fit", None)
        run_job(work, cache, "summarise", ids, work / "s0", True)  # fills the cache
        rows.append(("summarise (with figures)", run_job(work, cache, "summarise", ids, work / "s1", True)))
        rows.append(("summarise without figures - baseline", run_job(work, cache, "summarise", ids, work / "s2", False)))
    print(f"{n} synthetic stations (one shape bucket, {n // 10} with discharge in the wrong unit); one process per job, "
          f"warm persistent compilation cache; seg1 fit job for summarise's input: {fit['wall_s']:.1f} s")
    print(f"prior figures drawn: {drawn['p1']} with figures: flagged, {drawn['p2']} with figures: all")
    print(f"{'stage':40s} {'job wall s':>10s} {'start-up s':>10s} {'s/station':>10s} {'job-s/station at 50':>20s}")
    for name, r in rows:
        per = r["stations_s"] / n
        print(f"{name:40s} {r['wall_s']:10.2f} {r['startup_s']:10.2f} {per:10.3f} {r['startup_s'] / 50 + per:20.3f}")
    prior, prior_all, summ, summ_bare = (r["stations_s"] for _, r in rows)
    print(f"prior check per station, flagged / all: {prior / prior_all:.2f}; summarise per station, with / without "
          f"figures: {summ / summ_bare:.2f} (the figure alone: {(summ - summ_bare) / n:.3f} s per station)")


if __name__ == "__main__":
    main()
