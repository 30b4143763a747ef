"""Fit stations with USGS ratingcurve (PyMC NUTS, its defaults); runs in its own virtual environment.

Usage: python ratingcurve_fit.py FILE [FILE ...]   (CSV with columns stage, q, q_sigma)
Prints one JSON line per station: {"file": ..., "seconds": ..., "n": ...}, or {"file": ..., "error": ...}
when ratingcurve cannot fit it. Stops after --max-ok successful fits.
"""
import json
import sys
import time
import warnings

import pandas as pd

warnings.filterwarnings("ignore")

from ratingcurve.ratings import PowerLawRating  # noqa: E402

args = sys.argv[1:]
max_ok = int(args.pop(1)) if args[0] == "--max-ok" else len(args)
if args[0] == "--max-ok":
    args = args[1:]
ok = 0
for path in args:
    df = pd.read_csv(path)
    start = time.perf_counter()
    try:
        rating = PowerLawRating(segments=1)
        rating.fit(df["stage"].to_numpy(), df["q"].to_numpy(), df["q_sigma"].to_numpy(), method="nuts",
                   progressbar=False)
    except Exception as err:  # ratingcurve's own failure on this station: reported, not hidden
        print(json.dumps({"file": path, "error": f"{type(err).__name__}: {str(err).splitlines()[0]}"}), flush=True)
        continue
    print(json.dumps({"file": path, "seconds": time.perf_counter() - start, "n": len(df)}), flush=True)
    ok += 1
    if ok >= max_ok:
        break
