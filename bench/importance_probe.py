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

``--nuts``: each fit that stands is also sampled by NUTS in the BaRatin form (the form's own settings, as where the
weights fail), with two seeds, and the posterior means of its parameters compared: the largest difference between
the importance draws and NUTS's, in posterior SDs (NUTS's), with its parameter, against the largest between NUTS's
two seeds (what Monte Carlo error alone gives). The gate's Pareto k and ESS say whether the weights are usable, not
whether the proposal missed posterior mass: this says that.
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
    p.add_argument("--nuts", action="store_true", help="compare each fit that stands with NUTS's (two seeds)")
    args = p.parse_args(argv)

    from ratingflow.runtime import configure_jax

    configure_jax(threads=1, cache_dir=args.cache)
    from dataclasses import replace

    import numpy as np
    import yaml

    from ratingflow import importance
    from ratingflow.candidates import Candidate, ModelSettings, Priors
    from ratingflow.coverage_study.study import simulated_stations
    from ratingflow.posterior import candidate_posterior, gate
    from ratingflow.sampler import SamplerSettings, driver_cache

    cfg = yaml.safe_load(open(args.config))
    seed = int(cfg["seed"])
    models, priors = ModelSettings.from_config(cfg["models"]), Priors.from_config(cfg.get("priors"))
    base = models.structure(models.candidate_list())
    # the form as the pipeline's own-offsets round fits it (its own rounding of a change of control, if configured)
    transition = cfg["models"].get("offsets_transition")
    form = replace(base, segment_offsets=True, transition=base.transition if transition is None else transition)
    nuts = driver_cache(base, SamplerSettings.from_config(cfg["sampler"]), priors)(form)
    grid = importance.grid_first(nuts)._grid(2)
    stations = simulated_stations(args.start + args.stations, seed)
    picked = [int(i) for i in args.only.split(",")] if args.only else range(args.start, args.start + args.stations)
    print(f"{ROOT}; ratingflow from {importance.__file__}; os.cpu_count() {os.cpu_count()}")
    rows, shifts = [], []
    for i in picked:
        st = stations[i]
        start = time.perf_counter()
        fit = grid.fit_one(st, Candidate("seg2"), seed)
        conv = fit.convergence
        seconds = time.perf_counter() - start
        failures = gate(conv, importance.STANDS)[1]
        rows.append((st.station_id, not failures, seconds))
        print(f"{st.station_id} n {st.n:3d}  k {conv['pareto_k']:7.3f}  ESS {conv['ess_bulk_min']:6.0f}  "
              f"R-hat {conv['rhat_max']:.4f}  stage {int('adapted' in conv['sampler'])}  "
              f"{'stands' if not failures else 'NUTS: ' + '; '.join(failures)}  {seconds:.2f} s", flush=True)
        if args.nuts and not failures:
            drawn = candidate_posterior(fit)
            first, second = (candidate_posterior(nuts.fit([st], [Candidate("seg2")], seed + k)[0]["seg2"]) for k in (0, 1))
            names, shift, spread = _mean_shifts(drawn, first, second)
            worst = int(np.argmax(shift))
            print(f"    against NUTS: largest shift of a posterior mean {shift[worst]:.2f} SD ({names[worst]}); NUTS's "
                  f"two seeds {spread.max():.2f} SD", flush=True)
            shifts.append((shift.max(), spread.max()))
    stand = sum(ok for _, ok, _ in rows)
    print(f"\n{stand} of {len(rows)} fits stand; median {np.median([s for *_, s in rows[1:]] or [np.nan]):.2f} s a fit "
          f"(the first, which compiles, left out)")
    if shifts:
        shift, spread = np.array(shifts).T
        print(f"against NUTS, largest shift of a posterior mean per fit: median {np.median(shift):.2f} SD, above 0.3 SD "
              f"{int(np.sum(shift > 0.3))} of {len(shift)}, largest {shift.max():.2f}; NUTS's two seeds: median "
              f"{np.median(spread):.2f}, largest {spread.max():.2f}")
    return 0


#: the BaRatin form's parameters compared with ``--nuts`` (each element of a vector site on its own)
SITES = ("log_a", "b", "offset", "breakpoint", "gap", "sigma")


def _mean_shifts(drawn: dict, first: dict, second: dict):
    """Per parameter element: its name, |mean(drawn) - mean(first)| and |mean(second) - mean(first)|, in SDs of
    ``first`` (elements with no spread left out)."""
    import numpy as np

    names, shift, spread = [], [], []
    for site in SITES:
        flat = [np.asarray(p[site], float).reshape(-1, int(np.prod(np.shape(p[site])[2:]))) for p in (drawn, first, second)]
        sd = flat[1].std(axis=0)
        for j in np.flatnonzero(sd > 0):
            names.append(f"{site}[{j}]")
            shift.append(abs(flat[0][:, j].mean() - flat[1][:, j].mean()) / sd[j])
            spread.append(abs(flat[2][:, j].mean() - flat[1][:, j].mean()) / sd[j])
    return names, np.array(shift), np.array(spread)


if __name__ == "__main__":
    sys.exit(main())
