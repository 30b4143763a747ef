"""Benchmark of the discharge series (issue 15): prints figures, asserts nothing.

``.venv/bin/python bench/discharge.py``:

1. one station, 5 years of 15-min stage (175 200 steps) x 1000 posterior draws, a two-segment rating with a stage
   error at each step and a systematic one per block: wall time (first call, with compilation; and warm), and
   the process's peak RSS. Targets: <= 10 s per station on 2 cores, peak RSS <= 1.5 GB.
2. ``--stations N`` stations of one year hourly each (default 200), through the same compiled program: total
   and per-station wall.

The baseline printed beside the series is the time to draw the same number of standard normals with NumPy in
the same run (a yardstick of the machine's speed at this moment: the machines are shared and noisy).
"""
import argparse
import resource
import time

import numpy as np


def fake_draws(rng, draws):
    return {"gap": rng.lognormal(np.log(0.3), 0.1, draws).astype(np.float32),
            "log_q_ref": rng.normal(2.0, 0.05, draws).astype(np.float32),
            "sigma": np.abs(rng.normal(0.05, 0.01, draws)).astype(np.float32),
            "b": rng.lognormal(np.log(1.8), 0.05, (draws, 2)).astype(np.float32),
            "break_u": rng.normal(0.0, 0.1, (draws, 1)).astype(np.float32)}


CONTEXT = {"stage_ref": np.float32(0.5), "span": np.float32(1.5), "gap_mean": np.float32(np.log(0.3)),
           "gap_sd": np.float32(2.0), "break_lo": np.array([0.2], np.float32), "break_hi": np.array([1.4], np.float32),
           "n_segments": np.int32(2), "gplm": np.float32(0.0)}


def one(steps, minutes, draws, rng, key):
    import jax

    from ratingflow.hydrograph import discharge_series, windows
    from ratingflow.candidates import Structure

    t = np.datetime64("2018-01-01") + np.arange(steps) * np.timedelta64(minutes, "m")
    h = (0.8 + 0.6 * np.sin(np.arange(steps) / (steps / 60.0)) ** 2).astype(np.float64)
    valid = np.ones(steps, bool)
    win = windows(t, valid, 6 * 3600)
    block = (np.arange(steps) * 8 // steps).astype(int)
    return discharge_series(jax.random.PRNGKey(key), fake_draws(rng, draws), h, np.full(steps, 0.005), block,
                            np.full(steps, 0.01), valid, win, CONTEXT, Structure(2, 0, False, 0.05))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=200)
    parser.add_argument("--draws", type=int, default=1000)
    args = parser.parse_args()
    from ratingflow.runtime import configure_jax

    configure_jax(threads=0, cache_dir=".cache/jax")
    rng = np.random.default_rng(0)
    steps = 5 * 365 * 96 + 96  # 5 years of 15-min steps
    start = time.perf_counter()
    rng.standard_normal((steps, args.draws), dtype=np.float32)
    baseline = time.perf_counter() - start
    start = time.perf_counter()
    one(steps, 15, args.draws, rng, 1)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    series = one(steps, 15, args.draws, rng, 2)
    warm = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"one station, {steps} steps x {args.draws} draws: {cold:.1f} s with compilation, {warm:.1f} s warm "
          f"(target <= 10 s); peak RSS {rss:.0f} MB (target <= 1536 MB); baseline (NumPy, {steps * args.draws:.3g} "
          f"normals) {baseline:.2f} s, ratio warm / baseline {warm / baseline:.1f}")
    assert np.isfinite(series.median).all()
    start = time.perf_counter()
    for i in range(args.stations):
        one(24 * 365, 60, args.draws, rng, 10 + i)
    total = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.stations} stations, 1 year hourly (8760 steps) x {args.draws} draws: {total:.0f} s, "
          f"{total / args.stations:.2f} s per station; peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
