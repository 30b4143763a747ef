"""ratingcurve 1.1.0 on cross-validation folds; runs in ratingcurve's own virtual environment.

Usage: python ratingcurve_cv.py JOBS.json
JOBS.json: a list of {"station", "fold", "segments", "train", "test", "stage", "q", "q_sigma"} (SI units,
indices into the station's gaugings). Prints one JSON line per fold: the held-out gaugings, whether
each lies inside ratingcurve's 90 % predictive interval, and its log predictive density of ln Q; or
{"station", "fold", "segments", "error"} when ratingcurve cannot fit the fold.

The predictive distribution of a held-out gauging follows ratingcurve's own likelihood:
z = (ln Q - m) / s with m, s the mean and SD of the training ln Q; z ~ Normal(a + b . X(h),
sqrt(sigma^2 + ln(1 + q_sigma / q)^2)), X(h) = ln(clip(h - hs, 0, inf) + ho).
"""
import json
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")

from ratingcurve.ratings import PowerLawRating  # noqa: E402

jobs = json.load(open(sys.argv[1]))
rng = np.random.default_rng(1)
for job in jobs:
    h, q, qs = (np.asarray(job[k], float) for k in ("stage", "q", "q_sigma"))
    train, test = np.asarray(job["train"]), np.asarray(job["test"])
    try:
        rating = PowerLawRating(segments=int(job["segments"]))
        rating.fit(h[train], q[train], qs[train], method="nuts", progressbar=False, random_seed=int(job["fold"]) + 1)
        post = rating.idata.posterior
        draws = post.sizes["chain"] * post.sizes["draw"]
        a = post["a"].values.reshape(draws, 1)
        b = post["b"].values.reshape(draws, -1)
        hs = post["hs"].values.reshape(draws, -1)
        sigma = post["sigma"].values.reshape(draws, 1)
    except Exception as err:  # ratingcurve's own failure on this fold: reported, not hidden
        print(json.dumps({"station": job["station"], "fold": job["fold"], "segments": job["segments"],
                          "error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"}), flush=True)
        continue
    ho = np.ones(b.shape[1])
    ho[0] = 0.0
    x = np.log(np.clip(h[test][None, None, :] - hs[:, :, None], 0, np.inf) + ho[None, :, None])  # (D, S, n)
    mu_z = a + np.einsum("ds,dsn->dn", b, x)
    m, s = rating.q_transform.mean_, rating.q_transform.std_
    log_mean = m + s * mu_z
    g = np.log1p(qs[test] / q[test])
    sd = s * np.sqrt(sigma**2 + g[None, :] ** 2)
    pred = log_mean + sd * rng.standard_normal(log_mean.shape)
    lo, hi = np.nanquantile(pred, [0.05, 0.95], axis=0)
    y = np.log(q[test])
    logp = -0.5 * ((y - log_mean) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)
    top = np.nanmax(logp, axis=0)
    lpd = top + np.log(np.nanmean(np.exp(logp - top), axis=0))
    print(json.dumps({"station": job["station"], "fold": job["fold"], "segments": job["segments"],
                      "test": [int(i) for i in test], "inside90": [bool(v) for v in (lo <= y) & (y <= hi)],
                      "lpd": [float(v) for v in lpd]}), flush=True)
