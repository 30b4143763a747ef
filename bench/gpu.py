"""GPU benchmark of the fit stage (issue 16, item 6): prints figures, asserts nothing.

    python bench/gpu.py --stations 10000 --settings 4096 1024 --pilot 1024 --budget 360 [--out gpu.jsonl]

N synthetic stations of the pipeline's benchmark (``ratingflow.synthetic``: 15-200 gaugings, 30 % with two
controls) go through the fit stage's fit-and-choose (:func:`ratingflow.choice.fit_and_choose`: profile screen,
batched NUTS of the candidates the screen keeps, PSIS-LOO choice) with the default config's sampler and models,
in one process, on whatever device JAX finds (``--device gpu`` on a GPU machine). Reading the clean files and
writing the InferenceData are left out: CPU work that the jobs share.

The screen and the choice are NumPy/ArviZ work on the CPU, one station at a time; here they run in a pool of
``--workers`` processes (the sampling waits for the screen, the choice for the sampling), so that the figures
show what the device does:

1. screen: every station, in the pool (the pilot's stations first, the others while the pilot samples);
2. pilot: the first ``--pilot`` stations of the 33-64-gauging bucket, sampled once per ``chains_per_step``
   setting (``--settings``); each pays its programs' tracing and compilation (another setting is another
   program shape), reported apart from the sampling;
3. full: all N stations sampled with the setting that sampled the pilot fastest. When the time left
   (``--budget``, seconds from the start) looks too short, the largest number of stations that fits is
   run and the time for N extrapolated (said so in the output);
4. choice: PSIS-LOO choice of ``--choose`` stations of the full run, in the pool: seconds per station and the
   share whose chosen model passes the gate's R-hat, bulk-ESS and divergence thresholds (config ``diagnostics``).

Printed, and written as JSON lines to ``--out``: device and versions, then per step its seconds; compile and
trace seconds are JAX's own compile-time events.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "config.yaml"


def stations(n: int, seed: int) -> list:
    """The pipeline benchmark's synthetic stations (as ``synthetic.generate`` draws them), in SI units."""
    from ratingflow.synthetic import draw_station

    rng = np.random.default_rng(seed)
    return [draw_station(rng, f"syn{i:05d}", int(rng.integers(15, 201)))[0] for i in range(n)]


def _worker_init() -> None:
    os.environ["JAX_PLATFORMS"] = "cpu"  # the pool's processes never touch the device


def _screen(args):
    from ratingflow.screen import candidates_to_fit

    data, candidates, structure, z = args
    return candidates_to_fit(data, candidates, structure, z)


def _choose(args):
    from ratingflow.choice import choose
    from ratingflow.posterior import gate

    fits, screened, se_factor, thresholds = args
    choice = choose(fits, se_factor, screened)
    row = choice.table.loc[choice.table["chosen"]].iloc[0]
    # the table holds R-hat, bulk ESS and divergences: the gate's other checks are left out
    checks, _ = gate({k: row[k] for k in ("rhat_max", "ess_bulk_min", "divergences")}, thresholds)
    return choice.chosen, all(checks.values())


class Compile:
    """JAX's compile and trace seconds since the last :meth:`take`."""

    def __init__(self):
        self.spent = {"compile": 0.0, "trace": 0.0}

    def listen(self, event: str, seconds: float, **_) -> None:
        if event.endswith("backend_compile_duration"):
            self.spent["compile"] += seconds
        elif event.endswith(("jaxpr_trace_duration", "jaxpr_to_mlir_module_duration")):
            self.spent["trace"] += seconds

    def take(self) -> dict:
        out, self.spent = self.spent, {"compile": 0.0, "trace": 0.0}
        return {k: round(v, 2) for k, v in out.items()}


def sample(data: list, to_fit: list, screens: list, chains_per_step: int, config: dict, seed: int, keep: set):
    """The fit stage's sampling of ``data`` (fit_and_choose with the screen's answer given and the choice
    deferred); returns the fits and screen tables of the stations in ``keep``."""
    import ratingflow.choice as choice_module
    import ratingflow.screen as screen_module
    from ratingflow.candidates import ModelSettings, Priors
    from ratingflow.sampler import SamplerSettings, driver_cache

    settings = SamplerSettings.from_config({**config["sampler"], "chains_per_step": chains_per_step})
    models = ModelSettings.from_config(config["models"])
    candidates = models.candidate_list()
    kept: dict = {}
    answer = {id(st): (fit, table) for st, fit, table in zip(data, to_fit, screens)}

    def given(stations, *_):
        return [answer[id(st)][0] for st in stations], [answer[id(st)][1] for st in stations]

    def deferred(fits, se_factor, screened=None):
        station = next(iter(fits.values())).station.station_id
        if station in keep:
            kept[station] = (fits, screened)
        return None

    saved = screen_module.candidates_to_fit, choice_module.choose
    screen_module.candidates_to_fit, choice_module.choose = given, deferred
    try:
        choice_module.fit_and_choose(driver_cache(models.structure(candidates), settings, Priors()), data,
                                     candidates, seed, models.se_factor, screen_z=models.screen)
    finally:
        screen_module.candidates_to_fit, choice_module.choose = saved
    return kept


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=10000)
    parser.add_argument("--pilot", type=int, default=1024)
    parser.add_argument("--settings", type=int, nargs="+", default=[4096, 1024])
    parser.add_argument("--choose", type=int, default=1000, help="stations whose choice is timed")
    parser.add_argument("--budget", type=float, default=360.0, help="seconds from the start for the whole script")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--device", default="auto", choices=("cpu", "gpu", "auto"))
    parser.add_argument("--cache", default="/tmp/ratingflow-gpu-bench-cache")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    sink = open(args.out, "a") if args.out else None

    def emit(record: dict) -> None:
        record["elapsed_s"] = round(time.perf_counter() - started, 1)
        line = json.dumps(record)
        print(line, flush=True)
        if sink:
            sink.write(line + "\n")
            sink.flush()

    from ratingflow.runtime import configure_jax

    configure_jax(0, args.cache, args.device)
    import jax
    import jaxlib
    import numpyro

    from ratingflow.candidates import ModelSettings
    from ratingflow.data import bucket_size

    compiled = Compile()
    jax.monitoring.register_event_duration_secs_listener(compiled.listen)
    config = yaml.safe_load(CONFIG.read_text())
    emit({"step": "setup", "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
          "jax": jax.__version__, "jaxlib": jaxlib.__version__, "numpyro": numpyro.__version__,
          "python": sys.version.split()[0], "cpus": os.cpu_count(), "workers": args.workers,
          "sampler": config["sampler"], "models": config["models"]})
    pool = ProcessPoolExecutor(args.workers, mp_context=get_context("spawn"), initializer=_worker_init)

    t = time.perf_counter()
    data = stations(args.stations, args.seed)
    models = ModelSettings.from_config(config["models"])
    candidates = models.candidate_list()
    structure = models.structure(candidates)
    pilot = [i for i, st in enumerate(data) if bucket_size(st.n) == 64][: args.pilot]
    # the pilot's stations are screened first; the others while the pilot samples
    rest = sorted(set(range(len(data))) - set(pilot))

    def screened(order):
        chunk = -(-len(order) // (2 * args.workers))
        return [pool.submit(_screen, ([data[i] for i in order[k:k + chunk]], candidates, structure, models.screen))
                for k in range(0, len(order), chunk)]

    first, later = screened(pilot), screened(rest)
    to_fit, screens = [None] * len(data), [None] * len(data)

    def gather(order, futures) -> None:
        parts = [f.result() for f in futures]
        for i, fit, table in zip(order, (x for p in parts for x in p[0]), (x for p in parts for x in p[1])):
            to_fit[i], screens[i] = fit, table

    gather(pilot, first)
    emit({"step": "screen (pilot stations)", "stations": len(pilot), "wall_s": round(time.perf_counter() - t, 2)})

    results = []
    for setting in args.settings:
        compiled.take()
        t = time.perf_counter()
        sample([data[i] for i in pilot], [to_fit[i] for i in pilot], [screens[i] for i in pilot], setting,
               config, args.seed, set())
        wall = time.perf_counter() - t
        results.append({"step": "pilot", "chains_per_step": setting, "stations": len(pilot),
                        "fits": sum(len(to_fit[i]) for i in pilot), "wall_s": round(wall, 2), **compiled.take()})
        results[-1]["sampling_s"] = round(wall - results[-1]["compile"] - results[-1]["trace"], 2)
        emit(results[-1])
    t = time.perf_counter()
    gather(rest, later)
    kept = {}
    for fits in to_fit:
        key = "+".join(c.name for c in fits)
        kept[key] = kept.get(key, 0) + 1
    emit({"step": "screen (the others, beside the pilot)", "stations": len(rest),
          "waited_s": round(time.perf_counter() - t, 2), "candidates_kept": kept})
    best = min(results, key=lambda r: r["sampling_s"])
    left = args.budget - (time.perf_counter() - started)
    # the full run: the pilot's sampling seconds per station, and as much again for the other buckets' programs
    per_station = best["sampling_s"] / len(pilot)
    compile_guess = 4 * (best["compile"] + best["trace"])
    n = len(data)
    if per_station * n + compile_guess > 0.8 * left:
        n = max(0, int((0.8 * left - compile_guess) / per_station))
    if n < args.pilot:
        emit({"step": "full", "skipped": f"{left:.0f} s left; {per_station:.4f} s per station, "
                                         f"{compile_guess:.0f} s compile expected"})
        pool.shutdown()
        return 0
    keep = {data[i].station_id for i in range(min(args.choose, n))}
    compiled.take()
    t = time.perf_counter()
    fits = sample(data[:n], to_fit[:n], screens[:n], best["chains_per_step"], config, args.seed, keep)
    wall = time.perf_counter() - t
    full = {"step": "full", "chains_per_step": best["chains_per_step"], "stations": n,
            "fits": sum(len(f) for f in to_fit[:n]), "wall_s": round(wall, 2), **compiled.take()}
    full["stations_per_min"] = round(60 * n / wall, 1)
    if n < len(data):
        full["extrapolated_to"] = len(data)
        full["extrapolated_wall_s"] = round(full["compile"] + full["trace"]
                                            + (wall - full["compile"] - full["trace"]) * len(data) / n, 1)
    emit(full)

    t = time.perf_counter()
    gate = config["diagnostics"]
    answers = list(pool.map(_choose, [(f, s, models.se_factor, gate) for f, s in fits.values()], chunksize=8))
    chosen = {}
    for name, _ in answers:
        chosen[name] = chosen.get(name, 0) + 1
    emit({"step": "choice", "stations": len(answers), "wall_s": round(time.perf_counter() - t, 2),
          "workers": args.workers, "gate_pass": round(sum(p for _, p in answers) / max(len(answers), 1), 4),
          "chosen": chosen})
    pool.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
