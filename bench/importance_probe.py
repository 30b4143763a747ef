"""The BaRatin form's importance sampler on simulated stations: how many seg2 fits stand, and what they cost.
Prints figures, asserts nothing.

``.venv/bin/python bench/importance_probe.py [--stations 80] [--start 0] [--only 7,28]``: the coverage study's
simulated stations (``ratingflow.coverage_study.study.simulated_stations``, the config's seed), ``--start`` to
``--start + --stations``, each one's seg2 in the BaRatin form fitted by ``ratingflow.importance.GridImportance`` as
the pipeline's fit jobs do (JAX on one CPU thread), whatever the station's controls (the own-offsets round fits the
form at one-control stations too). Per fit: the weights' Pareto k, the ESS, the chains' R-hat, whether it stands
(``importance.STANDS`` and the Pareto k: else NUTS would take it), the stage that made it (1: adapted to a first
stage whose Pareto k failed) and its seconds; then the count that stand and the median seconds (the first fit,
which compiles, left out). To compare with another commit, run this file with that commit's ``src`` first on
``PYTHONPATH`` (a ``git worktree``); a commit before the second stage prints stage 0 for every fit.
"""
import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stations", type=int, default=80)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--only", default="", help="comma-separated station indices (of the simulation's order)")
    p.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    p.add_argument("--cache", default=str(ROOT / "bench" / "work" / ".cache" / "jax"))
    args = p.parse_args(argv)

    from ratingflow.runtime import configure_jax

    configure_jax(threads=1, cache_dir=args.cache)
    from dataclasses import replace

    import numpy as np
    import yaml

    from ratingflow import importance
    from ratingflow.candidates import Candidate, ModelSettings, Priors
    from ratingflow.coverage_study.study import simulated_stations
    from ratingflow.posterior import gate
    from ratingflow.sampler import SamplerSettings, driver_cache

    cfg = yaml.safe_load(open(args.config))
    seed = int(cfg["seed"])
    models, priors = ModelSettings.from_config(cfg["models"]), Priors.from_config(cfg.get("priors"))
    base = models.structure(models.candidate_list())
    form = replace(base, segment_offsets=True)
    grid = importance.grid_first(driver_cache(base, SamplerSettings.from_config(cfg["sampler"]), priors)(form))._grid(2)
    stations = simulated_stations(args.start + args.stations, seed)
    picked = [int(i) for i in args.only.split(",")] if args.only else range(args.start, args.start + args.stations)
    print(f"{ROOT}; ratingflow from {importance.__file__}; os.cpu_count() {os.cpu_count()}")
    rows = []
    for i in picked:
        st = stations[i]
        start = time.perf_counter()
        conv = grid.fit_one(st, Candidate("seg2"), seed).convergence
        seconds = time.perf_counter() - start
        failures = gate(conv, importance.STANDS)[1]
        rows.append((st.station_id, not failures, seconds))
        print(f"{st.station_id} n {st.n:3d}  k {conv['pareto_k']:7.3f}  ESS {conv['ess_bulk_min']:6.0f}  "
              f"R-hat {conv['rhat_max']:.4f}  stage {int('adapted' in conv['sampler'])}  "
              f"{'stands' if not failures else 'NUTS: ' + '; '.join(failures)}  {seconds:.2f} s", flush=True)
    stand = sum(ok for _, ok, _ in rows)
    print(f"\n{stand} of {len(rows)} fits stand; median {np.median([s for *_, s in rows[1:]] or [np.nan]):.2f} s a fit "
          f"(the first, which compiles, left out)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
