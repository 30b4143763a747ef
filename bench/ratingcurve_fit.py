"""Fit stations with USGS ratingcurve (PyMC NUTS, its defaults); runs in its own virtual environment.

Usage: python ratingcurve_fit.py FILE [FILE ...]   (CSV with columns stage, q, q_sigma)
Prints one JSON line per station: {"file": ..., "seconds": ..., "n": ...}.
"""
import json
import sys
import time
import warnings

import pandas as pd

warnings.filterwarnings("ignore")

from ratingcurve.ratings import PowerLawRating  # noqa: E402

for path in sys.argv[1:]:
    df = pd.read_csv(path)
    start = time.perf_counter()
    rating = PowerLawRating(segments=1)
    rating.fit(df["stage"].to_numpy(), df["q"].to_numpy(), df["q_sigma"].to_numpy(), method="nuts", progressbar=False)
    print(json.dumps({"file": path, "seconds": time.perf_counter() - start, "n": len(df)}), flush=True)
