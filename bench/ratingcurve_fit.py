"""Fit stations with USGS ratingcurve (PyMC NUTS, its defaults); runs in its own virtual environment.

Usage: python ratingcurve_fit.py [--max-ok K] [--segments 1,2,3] FILE [FILE ...]   (CSV: stage, q, q_sigma)
Prints one JSON line per station: {"file": ..., "seconds": ..., "n": ...}, or {"file": ..., "error": ...}
when ratingcurve cannot fit it. Stops after --max-ok successful fits. With --segments, every segment count
is fitted and compared by PSIS-LOO (ArviZ, on the log likelihood PyMC computes after sampling): "seconds"
is then the whole candidate set, "per_model" each fit's and "chosen" the segment count with the best elpd.
"""
import json
import sys
import time
import warnings

import pandas as pd

warnings.filterwarnings("ignore")

from ratingcurve.ratings import PowerLawRating  # noqa: E402

args = sys.argv[1:]
max_ok, segments = len(args), [1]
while args and args[0].startswith("--"):
    flag, value, args = args[0], args[1], args[2:]
    if flag == "--max-ok":
        max_ok = int(value)
    elif flag == "--segments":
        segments = [int(k) for k in value.split(",")]


def fit(df, k):
    rating = PowerLawRating(segments=k)
    trace = rating.fit(df["stage"].to_numpy(), df["q"].to_numpy(), df["q_sigma"].to_numpy(), method="nuts",
                       progressbar=False)
    if len(segments) == 1:
        return None
    import arviz as az
    import pymc as pm

    with rating if isinstance(rating, pm.Model) else rating.model:
        pm.compute_log_likelihood(trace, progressbar=False)
    return float(az.loo(trace).elpd_loo)


ok = 0
for path in args:
    df = pd.read_csv(path)
    start = time.perf_counter()
    per_model, elpd = [], {}
    try:
        for k in segments:
            t = time.perf_counter()
            elpd[k] = fit(df, k)
            per_model.append(time.perf_counter() - t)
    except Exception as err:  # ratingcurve's own failure on this station: reported, not hidden
        print(json.dumps({"file": path, "error": f"{type(err).__name__}: {str(err).splitlines()[0]}"}), flush=True)
        continue
    out = {"file": path, "seconds": time.perf_counter() - start, "n": len(df)}
    if len(segments) > 1:
        out.update(per_model=per_model, chosen=max(elpd, key=elpd.get))
    print(json.dumps(out), flush=True)
    ok += 1
    if ok >= max_ok:
        break
